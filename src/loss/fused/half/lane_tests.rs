//! What the tests of the AVX2 and the AVX-512 half loops share: the check
//! that a sweep's next-row extremes are the row scan's that decides which
//! rows the loops take, for forward's sweep and the backward's, on rows
//! built to reach every case of the scans; the check of a level's vector
//! exps against the portable one; and the check of a level's Σexp and
//! backward sweeps against the portable ones.

use super::super::super::fast_exp::{exp_half, exp_nonpositive_f32, HALF_POLY, NORMAL_EXP_FLOOR, POLY};
use super::{class_backward_row, class_gradient_sum, exp_sum, widen_with_max, Bits, ClassGradient, Extremes};

/// A level's vector exps against the portable exp, bit for bit, with
/// either polynomial: `exps(d, poly)` gives the level's exp and its
/// normal-range exp of `lanes` values `d`. Inputs: every 61st negative f32
/// pattern (NaN included), densely where 2^n leaves the normal range, and
/// densely just above `NORMAL_EXP_FLOOR`; the normal-range exp is checked
/// from the floor on.
pub(super) fn check_vector_exps(lanes: usize, exps: impl Fn(&[f32], &[f32]) -> (Vec<f32>, Vec<f32>)) {
    let edge = (0..1 << 20).map(|i| -87.0 - 20.0 * i as f32 / (1 << 20) as f32);
    let above_floor = (0..1 << 20).map(|i| NORMAL_EXP_FLOOR + 2.0 * i as f32 / (1 << 20) as f32);
    let inputs: Vec<f32> = (0..=u32::MAX / 61)
        .map(|i| f32::from_bits(i.wrapping_mul(61) | 0x8000_0000))
        .chain(edge)
        .chain(above_floor)
        .collect();
    let exp_f32: fn(f32) -> f32 = exp_nonpositive_f32;
    for (poly, portable) in [(&POLY[..], exp_f32), (&HALF_POLY[..], exp_half)] {
        for chunk in inputs.chunks_exact(lanes) {
            let (e, e_normal) = exps(chunk, poly);
            for (l, &d) in chunk.iter().enumerate() {
                let expected = portable(d);
                assert_eq!(e[l].to_bits(), expected.to_bits(), "e^{d:e}");
                if d >= NORMAL_EXP_FLOOR {
                    assert_eq!(e_normal[l].to_bits(), expected.to_bits(), "normal e^{d:e}");
                }
            }
        }
    }
}

/// Kinds of rows [`check_next_max`] builds.
const KINDS: usize = 9;

/// A row of `n` values of kind `kind`, from `uniform` (values in [0, 1)):
/// 0 plain numbers; 1–3 with ±0, −inf, NaN of either sign or +inf, now and
/// then (1), often (2) or only (3); 4 negative numbers, −inf and rarely a
/// negative NaN; 5 numbers below zero and zeros of either sign (the max a
/// zero, −0 and +0 in every order); 6 subnormals and zeros of either sign;
/// 7 negative subnormals and −0; 8 −inf, now and then a negative NaN.
fn test_row<H: Bits>(kind: usize, n: usize, uniform: &mut impl FnMut() -> f64) -> Vec<H> {
    let nan = H::from_f64(f64::NAN).bits();
    let of = |v: f64| H::from_f64(v).bits();
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            let sign = if v < 0.5 { 0x8000 } else { 0 };
            // Subnormal in both types: the 7 low bits, exponent zero.
            let subnormal = (v * 1e6) as u16 & 0x7f;
            let special = [
                of(0.0),
                of(-0.0),
                of(f64::NEG_INFINITY),
                nan,
                nan | 0x8000,
                of(f64::INFINITY),
            ];
            let bits = match kind {
                0 => of((u - 0.5) * 40.0),
                1..=3 if u < [0.02, 0.3, 1.0][kind - 1] => special[(v * 6.0) as usize],
                1..=3 => of((v - 0.5) * 40.0),
                4 if u < 0.005 => nan | 0x8000,
                4 if u < 0.1 => of(f64::NEG_INFINITY),
                4 => of(-v * 40.0 - 1e-3),
                5 if u < 0.2 => sign,
                5 => of(-v * 20.0 - 1e-2),
                6 if u < 0.1 => sign,
                6 => sign | subnormal,
                7 => 0x8000 | if u < 0.1 { 0 } else { subnormal },
                _ if u < 0.05 => nan | 0x8000,
                _ => of(f64::NEG_INFINITY),
            };
            H::of_bits(bits)
        })
        .collect()
}

/// The next row's extremes that `scan` (a level's `log_probability_sum`
/// or backward sweep over a finite row with its max, returning the next
/// row's extremes) finds are `row_max`'s, bit for bit; and `row_max` finds
/// [`widen_with_max`]'s max (its bits, ±0 included) and the row's min
/// where `reduced.rs` finds a finite log-softmax, else `None`. Rows of
/// every length up to `longest`, of every kind of [`test_row`], twice.
pub(super) fn check_next_max<H: Bits>(
    longest: usize,
    row_max: impl Fn(&[H]) -> Option<Extremes>,
    scan: impl Fn(&[H], f32, &[H]) -> Option<Option<Extremes>>,
) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for round in 0..2 * KINDS * longest {
        let (n, kind) = (1 + round % longest, round / longest % KINDS);
        let (src, next) = (test_row::<H>(0, n, &mut uniform), test_row::<H>(kind, n, &mut uniform));
        let expected = row_max(&next);
        let found = scan(&src, row_max(&src).expect("a finite row").max, &next);
        let bits = |e: Option<Extremes>| e.map(|e| (e.max.to_bits(), e.min.to_bits()));
        assert_eq!(bits(found.expect("scanned")), bits(expected), "round {round}");
        let mut copy = vec![0.0f32; n];
        let (max, _) = widen_with_max(&next, &mut copy);
        // As `reduced.rs` decides which rows have a finite log-softmax.
        if max.is_finite() && !copy.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
            let extremes = expected.expect("a finite row");
            assert_eq!(extremes.max.to_bits(), max.to_bits(), "round {round}");
            assert_eq!(
                extremes.min,
                copy.iter().fold(f32::INFINITY, |m, &v| m.min(v)),
                "round {round}"
            );
        } else {
            assert_eq!(expected, None, "round {round}");
        }
    }
}

/// [`check_next_max`] on a level's forward scan (`forward`, as
/// `check_next_max`'s `scan`) and on its backward sweep, unweighted and
/// weighted: `backward(src, row, k, w, out, next)` runs the sweep over `src`
/// of extremes `row` with the class gradient `k`, weighted by `w` unless `w`
/// is empty, into `out`.
pub(super) fn check_next_max_of_sweeps<H: Bits>(
    longest: usize,
    row_max: impl Fn(&[H]) -> Option<Extremes>,
    forward: impl Fn(&[H], f32, &[H]) -> Option<Option<Extremes>>,
    backward: impl Fn(&[H], Extremes, ClassGradient, &[f32], &mut [H], &[H]) -> Option<Option<Extremes>>,
) {
    check_next_max(longest, &row_max, forward);
    for weighted in [false, true] {
        check_next_max(longest, &row_max, |src, _, next| {
            let mut out = vec![H::from_f64(0.0); src.len()];
            let w = if weighted { vec![1.5; src.len()] } else { vec![] };
            let row = row_max(src).expect("a finite row");
            backward(src, row, test_gradient(src.len()), &w, &mut out, next)
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

/// A level's Σexp sweep and backward sweep against the portable ones, bit
/// for bit: rows of 40 and 16411 classes (the latter long enough for
/// streaming stores), spread over [−10, 10) with every lane's exp normal or
/// one lane's not (−80, whose exp is 0 where an unmasked exp's is
/// subnormal, or −inf), or over [−0.9, 0.9) or [−7, 7) (the long rows'
/// lps then take about 230 float16 patterns or 30 bfloat16 ones, 1600 or
/// 200); the
/// backward at every 2-byte offset from a 64-byte boundary, the target in
/// the first 16 classes, a third of the way in and in the last few (after
/// the last whole 16), unweighted and weighted (`backward` is weighted when
/// given weights), also with g = 0 off the target (where a subnormal e
/// would show in the sign of the gradient's zeros). `row_seen(row,
/// extremes, ln_sum)` and `out_seen(out, offset, at)` let the level check
/// what it decides per row (a table) and per output (its stores).
#[allow(clippy::type_complexity)]
pub(super) fn check_backward_sweeps<H: Bits>(
    row_max: impl Fn(&[H]) -> Option<Extremes>,
    sums: impl Fn(&[H], Extremes, ClassGradient) -> (f32, f32),
    backward: impl Fn(&[H], Extremes, f32, ClassGradient, f32, &[f32], &mut [H]) -> f32,
    mut row_seen: impl FnMut(&[H], Extremes, f32),
    out_seen: impl Fn(&[H], usize, &str),
) {
    for (n, spread, deep) in [40, 16411].into_iter().flat_map(|n| {
        [
            (n, 20.0, None),
            (n, 20.0, Some(-80.0)),
            (n, 20.0, Some(f64::NEG_INFINITY)),
            (n, 1.8, None),
            (n, 14.0, None),
        ]
    }) {
        let mut src: Vec<H> = (0..n)
            // The same values as i·7919 mod 1000 / 50 − 10 for the spread of 20.
            .map(|i| H::from_f64((i * 7919 % 1000) as f64 * spread / 1000.0 - spread / 2.0))
            .collect();
        if let Some(v) = deep {
            src[n / 2] = H::from_f64(v);
        }
        let row: Vec<f32> = src.iter().map(|v| v.widen_f32()).collect();
        let w: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 / 4.0).collect();
        let extremes = row_max(&src).expect("a finite row");
        let max = extremes.max;
        let k = test_gradient(n);
        let (sum_exp, sum_g) = sums(&src, extremes, k);
        let want = exp_sum::<H>(&row, max, &[]);
        assert_eq!(
            sum_exp.to_bits(),
            want.to_bits(),
            "Σ exp, {n} classes, {spread}, {deep:?}"
        );
        let want = class_gradient_sum::<H, false>(n, k, &[]);
        assert_eq!(sum_g.to_bits(), want.to_bits(), "Σg, {n} classes, {spread}, {deep:?}");
        let ln_sum = H::round_f32(H::round_f32(sum_exp).ln());
        row_seen(&src, extremes, ln_sum);
        let mut buffer = vec![H::from_f64(0.0); n + 64];
        let aligned = buffer.as_ptr().align_offset(64);
        let targets = [0, n / 3, n - 1].map(|target| ClassGradient { target, ..k });
        let zero_base = ClassGradient { base: 0.0, ..k };
        let cases = (0..16).flat_map(|o| targets.map(|k| (o, k)));
        for (offset, k) in cases.chain([(0, zero_base), (5, zero_base)]) {
            let at = format!(
                "{n} classes at {offset}, {spread}, {deep:?}, base {}, target {}",
                k.base, k.target
            );
            let out = &mut buffer[aligned + offset..aligned + offset + n];
            out_seen(out, offset, &at);
            let mut expected = vec![H::from_f64(0.0); n];
            for weights in [&[][..], &w] {
                let want = match weights.is_empty() {
                    true => class_backward_row::<H, true, false>(&row, max, ln_sum, k, &[], &mut expected),
                    false => class_backward_row::<H, true, true>(&row, max, ln_sum, k, weights, &mut expected),
                };
                let sum_g = match weights.is_empty() {
                    true => class_gradient_sum::<H, false>(n, k, &[]),
                    false => class_gradient_sum::<H, true>(n, k, weights),
                };
                let sum = backward(&src, extremes, ln_sum, k, sum_g, weights, out);
                let at = format!("{at}, {} weights", weights.len());
                assert_eq!(sum.to_bits(), want.to_bits(), "{at}");
                assert!(out.iter().zip(&expected).all(|(a, b)| a.bits() == b.bits()), "{at}");
            }
        }
    }
}
