//! What the tests of the AVX2 and the AVX-512 half loops share: a half
//! type's bit pattern, and the check that a sweep's next-row max is the
//! row max that decides which rows the loops take, for forward's sweep and
//! the backward's.

use half::{bf16, f16};

use super::super::super::element::Element;
use super::{widen_with_max, ClassGradient};

/// A half type's bit pattern.
pub(super) trait Bits {
    fn of_bits(bits: u16) -> Self;
    fn bits(self) -> u16;
}

impl Bits for f16 {
    fn of_bits(bits: u16) -> Self {
        f16::from_bits(bits)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

impl Bits for bf16 {
    fn of_bits(bits: u16) -> Self {
        bf16::from_bits(bits)
    }
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

/// The next row's max that `scan` (a level's `log_probability_sum` or
/// backward sweep over a finite row with its max, returning the next row's
/// max) finds is
/// `row_max`'s, bit for bit, and `row_max` is [`widen_with_max`]'s max
/// where `reduced.rs` finds a finite log-softmax, else `None`: 2000 rows of
/// every length up to `longest` with ±0, −inf, NaN, +inf or only −inf.
pub(super) fn check_next_max<H: Element>(
    longest: usize,
    row_max: impl Fn(&[H]) -> Option<f32>,
    scan: impl Fn(&[H], f32, &[H]) -> Option<Option<f32>>,
) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for round in 0..2000 {
        let n = 1 + round % longest;
        let mut row = |special: f64| -> Vec<H> {
            (0..n)
                .map(|_| {
                    let u = uniform();
                    let v = match (u < special, (u * 1000.0) as usize % 6) {
                        (false, _) => (uniform() - 0.5) * 40.0,
                        (true, 0) => 0.0,
                        (true, 1) => -0.0,
                        (true, 2 | 3) => f64::NEG_INFINITY,
                        (true, 4) => f64::NAN,
                        (true, _) => f64::INFINITY,
                    };
                    H::from_f64(v)
                })
                .collect()
        };
        let special = [0.0, 0.02, 0.3, 1.0][round % 4];
        let (src, next) = (row(0.0), row(special));
        let expected = row_max(&next);
        let found = scan(&src, row_max(&src).expect("a finite row"), &next);
        let bits = |m: Option<f32>| m.map(f32::to_bits);
        assert_eq!(bits(found.expect("scanned")), bits(expected), "round {round}");
        let mut copy = vec![0.0f32; n];
        let (max, _) = widen_with_max(&next, &mut copy);
        // As `reduced.rs` decides which rows have a finite log-softmax.
        if max.is_finite() && !copy.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            assert_eq!(bits(expected), Some(max.to_bits()), "round {round}");
        } else {
            assert_eq!(expected, None, "round {round}");
        }
    }
}

/// [`check_next_max`] on a level's forward scan (`forward`, as
/// `check_next_max`'s `scan`) and on its backward sweep, unweighted and
/// weighted: `backward(src, max, k, w, out, next)` runs the sweep with the
/// class gradient `k`, weighted by `w` unless `w` is empty, into `out`.
pub(super) fn check_next_max_of_sweeps<H: Element>(
    longest: usize,
    row_max: impl Fn(&[H]) -> Option<f32>,
    forward: impl Fn(&[H], f32, &[H]) -> Option<Option<f32>>,
    backward: impl Fn(&[H], f32, ClassGradient, &[f32], &mut [H], &[H]) -> Option<Option<f32>>,
) {
    check_next_max(longest, &row_max, forward);
    for weighted in [false, true] {
        check_next_max(longest, &row_max, |src, max, next| {
            let mut out = vec![H::from_f64(0.0); src.len()];
            let w = if weighted { vec![1.5; src.len()] } else { vec![] };
            backward(src, max, test_gradient(src.len()), &w, &mut out, next)
        });
    }
}

/// The class gradient the backward sweeps' tests use on `n` classes: a
/// small base, and the target a third of the way in.
pub(super) fn test_gradient(n: usize) -> ClassGradient {
    ClassGradient {
        base: -1e-5,
        target: n / 3,
        at_target: -0.5,
    }
}
