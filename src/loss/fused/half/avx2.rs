//! The class-target row loops of `fused/half.rs` written with AVX2, FMA and
//! F16C intrinsics that read the float16/bfloat16 row itself, as
//! `half/avx512.rs` does on AVX-512: no f32 copy of the row is written or
//! read again, and f16 converts with `vcvtph2ps`/`vcvtps2ph`.
//!
//! Two 8-lane vectors hold the portable loops' 16 lanes (lane l sums the
//! classes c ≡ l mod 16, the last few classes go to lanes 0..; lanes 0–7
//! and 8–15, or for bf16 in the order its loads leave them, see
//! `Half8::to_order`), every step is the portable step (the exp is
//! `fast_exp`'s, see `fused/avx2.rs`; the backward gathers e^(lp) from
//! `exp_table.rs`, that exp's values of every half-precision lp), and the
//! rounding is `half_bits.rs`'s (tested on every 61st f32 pattern), so
//! every level gives the same bits. Rows holding NaN or +inf (or only
//! −inf) never come here: `row_max` turns them away.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use half::{bf16, f16};

use super::super::super::fast_exp::{HALF_POLY, NORMAL_EXP_FLOOR};
use super::super::avx2::{exp8_normal_with, exp8_with};
use super::super::lanes::{fold_lanes, LANES};
use super::exp_table::ExpTable;
use super::{lp_patterns, prefetch_next_line, BitVerdict, Bits, ClassGradient, Extremes, STREAM_ROW_BYTES};

/// Lanes per vector: half of the portable 16.
const HALF: usize = LANES / 2;

/// The most lp patterns a row's gradient table (see [`backward_sweep`])
/// holds: 16 KiB on the stack.
const GRADIENT_TABLE: usize = 4096;

/// `vcvtps2ph`'s immediate: round to nearest, ties to even.
const ROUND_NEAREST_EVEN: i32 = _MM_FROUND_TO_NEAREST_INT;

/// The portable 16 lanes: lanes 0–7 and 8–15.
type Lanes = [__m256; 2];

/// A half type's conversions on 8 lanes (and its table of exps).
pub(crate) trait Half8: ExpTable {
    /// Eight values (their bits) as f32, exactly (NaN aside: rows with NaN
    /// do not come here).
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn widen8(bits: __m128i) -> __m256;
    /// Each lane rounded to this type, as `Element::round_f32`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn round8(v: __m256) -> __m256;
    /// [`Half8::round8`] for lanes that hold no NaN.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn round8_number(v: __m256) -> __m256 {
        // SAFETY: the caller's promise.
        unsafe { Self::round8(v) }
    }
    /// Each lane rounded to this type, its bits, as `Element::narrow_f32`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn narrow8(v: __m256) -> __m128i;
    /// [`Half8::narrow8`] for lanes that hold no NaN.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn narrow8_number(v: __m256) -> __m128i {
        // SAFETY: the caller's promise.
        unsafe { Self::narrow8(v) }
    }
    /// [`Half8::round8_number`], and each rounded lane's bits in the low
    /// half of its 32 bits: its index in the type's [`ExpTable`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn round8_number_indexed(v: __m256) -> (__m256, __m256i);
    /// The 16 values at `p`, widened, in this type's lane order (see
    /// [`Half8::to_order`]).
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `p` must point at 16 values.
    unsafe fn widen16(p: *const Self) -> Lanes {
        // SAFETY: the caller's promise; `loadu` takes any alignment.
        unsafe {
            [
                Self::widen8(_mm_loadu_si128(p.cast())),
                Self::widen8(_mm_loadu_si128(p.add(HALF).cast())),
            ]
        }
    }
    /// [`Half8::narrow8`] of 16 lanes in this type's order: their 16
    /// patterns in class order, 0–7 and 8–15.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn narrow16(v: Lanes) -> [__m128i; 2] {
        // SAFETY: the caller's promise.
        unsafe { [Self::narrow8(v[0]), Self::narrow8(v[1])] }
    }
    /// [`Half8::narrow16`] for lanes that hold no NaN.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    unsafe fn narrow16_number(v: Lanes) -> [__m128i; 2] {
        // SAFETY: the caller's promise.
        unsafe { [Self::narrow8_number(v[0]), Self::narrow8_number(v[1])] }
    }
    /// Lanes in class order (lanes 0–7 and 8–15 of the portable loops) into
    /// this type's order, the order [`Half8::widen16`] loads in. The order
    /// is the same everywhere in a row's loop, so a lane sums the same
    /// classes in the same order either way; [`fold`] puts the lanes back
    /// first ([`Half8::from_order`]).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    unsafe fn to_order(v: Lanes) -> Lanes {
        v
    }
    /// [`Half8::to_order`] undone: this type's lanes in class order.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    unsafe fn from_order(v: Lanes) -> Lanes {
        v
    }
    /// 16 patterns, each in the low 16 bits of a 32-bit lane whose high 16
    /// are zero, in this type's lane order: as [`Half8::narrow16`] leaves
    /// them, in class order.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    unsafe fn pack16(v: [__m256i; 2]) -> [__m128i; 2];
}

impl Half8 for f16 {
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn widen8(bits: __m128i) -> __m256 {
        _mm256_cvtph_ps(bits)
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round8(v: __m256) -> __m256 {
        _mm256_cvtph_ps(_mm256_cvtps_ph::<ROUND_NEAREST_EVEN>(v))
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn narrow8(v: __m256) -> __m128i {
        _mm256_cvtps_ph::<ROUND_NEAREST_EVEN>(v)
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round8_number_indexed(v: __m256) -> (__m256, __m256i) {
        let bits = _mm256_cvtps_ph::<ROUND_NEAREST_EVEN>(v);
        (_mm256_cvtph_ps(bits), _mm256_cvtepu16_epi32(bits))
    }

    /// One pack (the high zeros make its unsigned saturation exact) and one
    /// permute (the pack works within 128-bit halves).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn pack16(v: [__m256i; 2]) -> [__m128i; 2] {
        let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(v[0], v[1]));
        [_mm256_castsi256_si128(packed), _mm256_extracti128_si256::<1>(packed)]
    }
}

/// bf16 rounding's integer step: 16 bits dropped to nearest, ties to even
/// (a carry moves into the exponent).
#[inline]
#[target_feature(enable = "avx2")]
fn bf16_nearest(bits: __m256i) -> __m256i {
    let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
    _mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)))
}

/// The high 16 bits of each 32-bit lane, in order.
#[inline]
#[target_feature(enable = "avx2")]
fn high_halves(v: __m256) -> __m128i {
    let high = _mm256_srli_epi32::<16>(_mm256_castps_si256(v));
    // Each lane is at most 0xffff, so the unsigned saturation never bites.
    _mm_packus_epi32(_mm256_castsi256_si128(high), _mm256_extracti128_si256::<1>(high))
}

/// The high 16 bits of each 32-bit lane of `v`, bf16's lanes (the even
/// classes, then the odd: see `to_order`), in class order: each even
/// class's bits shifted down beside its odd neighbour's, where
/// [`high_halves`] for each half takes two shifts and two shuffles.
#[inline]
#[target_feature(enable = "avx2")]
fn high_halves16(v: Lanes) -> [__m128i; 2] {
    let [even, odd] = v.map(|v| _mm256_castps_si256(v));
    let packed = _mm256_blend_epi16::<0b1010_1010>(_mm256_srli_epi32::<16>(even), odd);
    [_mm256_castsi256_si128(packed), _mm256_extracti128_si256::<1>(packed)]
}

impl Half8 for bf16 {
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn widen8(bits: __m128i) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(bits)))
    }

    /// `half_bits.rs`'s bf16 rounding: NaN made quiet, else [`bf16_nearest`].
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round8(v: __m256) -> __m256 {
        let bits = _mm256_castps_si256(v);
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x0040_0000));
        let rounded = _mm256_blendv_epi8(bf16_nearest(bits), quiet, nan);
        _mm256_castsi256_ps(_mm256_and_si256(rounded, _mm256_set1_epi32(0xffff_0000_u32 as i32)))
    }

    /// Without NaN, rounding is the integer step alone.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round8_number(v: __m256) -> __m256 {
        let nearest = bf16_nearest(_mm256_castps_si256(v));
        _mm256_castsi256_ps(_mm256_and_si256(nearest, _mm256_set1_epi32(0xffff_0000_u32 as i32)))
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn narrow8(v: __m256) -> __m128i {
        // SAFETY: the caller's promise.
        high_halves(unsafe { Self::round8(v) })
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn narrow8_number(v: __m256) -> __m128i {
        // SAFETY: the caller's promise.
        high_halves(unsafe { Self::round8_number(v) })
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn round8_number_indexed(v: __m256) -> (__m256, __m256i) {
        let nearest = bf16_nearest(_mm256_castps_si256(v));
        let rounded = _mm256_and_si256(nearest, _mm256_set1_epi32(0xffff_0000_u32 as i32));
        (_mm256_castsi256_ps(rounded), _mm256_srli_epi32::<16>(nearest))
    }

    /// One 32-byte load, a shift (the even classes) and an and (the odd),
    /// where two `widen8` take two zero extensions and two shifts; the
    /// lanes come out in [`Half8::to_order`]'s order.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn widen16(p: *const Self) -> Lanes {
        // SAFETY: the caller's promise; `loadu` takes any alignment.
        let v = unsafe { _mm256_loadu_si256(p.cast()) };
        let high = _mm256_and_si256(v, _mm256_set1_epi32(0xffff_0000_u32 as i32));
        [_mm256_slli_epi32::<16>(v), high].map(|v| _mm256_castsi256_ps(v))
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn narrow16(v: Lanes) -> [__m128i; 2] {
        // SAFETY: the caller's promise.
        high_halves16(v.map(|v| unsafe { Self::round8(v) }))
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn narrow16_number(v: Lanes) -> [__m128i; 2] {
        // SAFETY: the caller's promise.
        high_halves16(v.map(|v| unsafe { Self::round8_number(v) }))
    }

    /// The even classes (0, 2, …, 14) in the first vector, the odd in the
    /// second, as `widen16` leaves them.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn to_order(v: Lanes) -> Lanes {
        // Within each 128-bit half: two even (odd) classes of v[0], then two
        // of v[1]; the 64-bit pairs then go in class order.
        let even = _mm256_shuffle_ps::<0b10_00_10_00>(v[0], v[1]);
        let odd = _mm256_shuffle_ps::<0b11_01_11_01>(v[0], v[1]);
        [even, odd].map(|v| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v))))
    }

    /// Each odd class's pattern shifted up beside its even neighbour's.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn pack16(v: [__m256i; 2]) -> [__m128i; 2] {
        let packed = _mm256_or_si256(v[0], _mm256_slli_epi32::<16>(v[1]));
        [_mm256_castsi256_si128(packed), _mm256_extracti128_si256::<1>(packed)]
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn from_order(v: Lanes) -> Lanes {
        // Within each 128-bit half: classes 0–3 and 8–11, 4–7 and 12–15.
        let (low, high) = (_mm256_unpacklo_ps(v[0], v[1]), _mm256_unpackhi_ps(v[0], v[1]));
        [
            _mm256_permute2f128_ps::<0x20>(low, high),
            _mm256_permute2f128_ps::<0x31>(low, high),
        ]
    }
}

/// The 16 values from `src[start..]` (`start + 16 ≤ src.len()`), widened.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn load<H: Half8>(src: &[H], start: usize) -> Lanes {
    assert!(start + LANES <= src.len());
    // SAFETY: 16 values from `start` are in `src` (asserted); the CPU has
    // AVX2 and F16C (the caller's promise).
    unsafe { H::widen16(src.as_ptr().add(start)) }
}

/// 16 values in class order into `H`'s lanes (see [`Half8::to_order`]).
#[inline]
#[target_feature(enable = "avx2")]
fn to_lanes<H: Half8>(v: &[f32; LANES]) -> Lanes {
    // SAFETY: `v` holds 16 f32, two unaligned loads of 8; the CPU has AVX2
    // (this function's feature).
    unsafe { H::to_order([_mm256_loadu_ps(v.as_ptr()), _mm256_loadu_ps(v.as_ptr().add(HALF))]) }
}

/// `H`'s lanes back in class order: [`to_lanes`] undone.
#[inline]
#[target_feature(enable = "avx2")]
fn from_lanes<H: Half8>(v: Lanes) -> [f32; LANES] {
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds 16 f32, two unaligned stores of 8; the CPU has
    // AVX2 (this function's feature).
    unsafe {
        let v = H::from_order(v);
        _mm256_storeu_ps(lanes.as_mut_ptr(), v[0]);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(HALF), v[1]);
    }
    lanes
}

/// The classes after the last whole 16 (fewer than 16), padded with zeros,
/// and the mask (all ones) of the lanes they fill, in `H`'s lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn tail<H: Half8>(src: &[H], full: usize) -> ([H; LANES], Lanes) {
    let mut padded = [H::from_f64(0.0); LANES];
    let rest = &src[full..];
    padded[..rest.len()].copy_from_slice(rest);
    let mut mask = [0.0f32; LANES];
    mask[..rest.len()].fill(f32::from_bits(u32::MAX));
    (padded, to_lanes::<H>(&mask))
}

/// `acc + v` in the lanes of `mask`, `acc` elsewhere.
#[inline]
#[target_feature(enable = "avx2")]
fn add_masked(acc: Lanes, mask: Lanes, v: Lanes) -> Lanes {
    [0, 1].map(|h| _mm256_blendv_ps(acc[h], _mm256_add_ps(acc[h], v[h]), mask[h]))
}

/// `acc + v`.
#[inline]
#[target_feature(enable = "avx2")]
fn add(acc: Lanes, v: Lanes) -> Lanes {
    [_mm256_add_ps(acc[0], v[0]), _mm256_add_ps(acc[1], v[1])]
}

/// The 16 lanes (`H`'s) folded in `fold_lanes`'s tree, in class order.
#[inline]
#[target_feature(enable = "avx2")]
fn fold<H: Half8>(v: Lanes) -> f32 {
    fold_lanes(&from_lanes::<H>(v)) as f32
}

/// A row's extremes from its raw 16-bit patterns, 16 classes per step and
/// three instructions, none widening: the signed max and the unsigned min
/// and max that [`BitVerdict::of`] reads. Integer maxes and mins give the
/// same result in any order, so every scan of a row gives the same verdict.
#[derive(Clone, Copy)]
struct BitScan {
    smax: __m256i,
    umin: __m256i,
    umax: __m256i,
}

impl BitScan {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new() -> Self {
        BitScan {
            smax: _mm256_set1_epi16(i16::MIN),
            umin: _mm256_set1_epi16(-1),
            umax: _mm256_setzero_si256(),
        }
    }

    /// The 16 patterns of `v`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(&mut self, v: __m256i) {
        self.smax = _mm256_max_epi16(self.smax, v);
        self.umin = _mm256_min_epu16(self.umin, v);
        self.umax = _mm256_max_epu16(self.umax, v);
    }

    /// Classes `i..i + 16` of `src` (`i + 16 ≤ src.len()`).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn add_at<H: Half8>(&mut self, src: &[H], i: usize) {
        assert!(i + LANES <= src.len());
        // SAFETY: 16 values of 2 bytes from `i` are in `src` (asserted);
        // `loadu` takes any alignment.
        self.add(unsafe { _mm256_loadu_si256(src.as_ptr().add(i).cast()) });
    }

    /// The classes after `full`, the last whole 16 (fewer than 16), padded
    /// with the row's first value, which changes no extreme.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn add_tail<H: Half8>(&mut self, src: &[H], full: usize) {
        let rest = &src[full..];
        if let Some(&first) = src.first() {
            let mut padded = [first; LANES];
            padded[..rest.len()].copy_from_slice(rest);
            // SAFETY: `padded` holds 16 values; the CPU has AVX2.
            unsafe { self.add_at(&padded, 0) };
        }
    }

    /// The extremes of `src`, the row scanned, when it holds no NaN and no
    /// +inf and its max is finite; `None` otherwise. As
    /// `half::widen_with_max` finds it, the max's bits included.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    fn verdict<H: Half8 + Bits>(self, src: &[H]) -> Option<Extremes> {
        if src.is_empty() {
            return None;
        }
        let lanes = |v: __m256i| {
            let mut lanes = [0u16; LANES];
            // SAFETY: `lanes` holds 16 values of 2 bytes.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
            lanes
        };
        let verdict = BitVerdict::of_lanes::<H>(&lanes(self.smax), &lanes(self.umin), &lanes(self.umax));
        // SAFETY: the CPU has AVX2 and F16C.
        verdict.extremes(|| unsafe { float_row_max(src) })
    }
}

/// The max of a row (no NaN in it) as `half::widen_with_max` finds it, for
/// a row whose max is a zero: 16 classes at a time in the row's order, each
/// lane keeping the earlier of equal values (±0: the earlier zero), then
/// the lanes folded as `f32::max` compiles.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn float_row_max<H: Half8>(src: &[H]) -> f32 {
    let full = src.len() / LANES * LANES;
    let mut acc = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
    // max(v, acc) is acc where the two are equal.
    let mut add = |v: Lanes, mask: Lanes| {
        for h in 0..2 {
            acc[h] = _mm256_blendv_ps(acc[h], _mm256_max_ps(v[h], acc[h]), mask[h]);
        }
    };
    let all = [_mm256_castsi256_ps(_mm256_set1_epi32(-1)); 2];
    for i in (0..full).step_by(LANES) {
        // SAFETY: the caller's promise; i + 16 ≤ full.
        add(unsafe { load(src, i) }, all);
    }
    if full < src.len() {
        let (padded, mask) = tail(src, full);
        // SAFETY: `padded` holds 16 values; the caller's promise.
        add(unsafe { load(&padded, 0) }, mask);
    }
    from_lanes::<H>(acc).iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// The row's extremes, when the row holds no NaN and no +inf and its max
/// is finite; `None` otherwise (see [`BitScan::verdict`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn row_max<H: Half8 + Bits>(src: &[H]) -> Option<Extremes> {
    let full = src.len() / LANES * LANES;
    let mut scan = BitScan::new();
    for i in (0..full).step_by(LANES) {
        // SAFETY: the CPU has AVX2 (the caller's promise); i + 16 ≤ full.
        unsafe { scan.add_at(src, i) };
    }
    scan.add_tail(src, full);
    scan.verdict(src)
}

/// `half::exp_sum` on the half-precision row of extremes `row`: Σ e^(x −
/// max), prefetching the next row (`next`, or empty) meanwhile. With
/// `TOTAL` also Σg of the unweighted class gradient `k` (as
/// `half::class_gradient_sum` adds it: the same lanes, the same order),
/// whose chain of adds, alone in its loop, would set that loop's pace; here
/// it rides along.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn exp_sum<H: Half8, const TOTAL: bool>(
    src: &[H],
    row: Extremes,
    next: &[H],
    k: ClassGradient,
) -> (f32, f32) {
    // x − max is monotone in x: from the min's on, every exp is normal.
    // SAFETY (both): the caller's promise.
    match row.min - row.max >= NORMAL_EXP_FLOOR {
        true => unsafe { exp_sweep::<H, TOTAL, true>(src, row.max, next, k) },
        false => unsafe { exp_sweep::<H, TOTAL, false>(src, row.max, next, k) },
    }
}

/// [`exp_sum`]; with `NORMAL` every x − max is at or above
/// `NORMAL_EXP_FLOOR`, and the exp is [`exp8_normal_with`] (the same bits).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn exp_sweep<H: Half8, const TOTAL: bool, const NORMAL: bool>(
    src: &[H],
    max: f32,
    next: &[H],
    k: ClassGradient,
) -> (f32, f32) {
    let m = _mm256_set1_ps(max);
    let exp = |x: Lanes| {
        x.map(|x| match NORMAL {
            true => exp8_normal_with(_mm256_sub_ps(x, m), &HALF_POLY),
            false => exp8_with(_mm256_sub_ps(x, m), &HALF_POLY),
        })
    };
    let base = [_mm256_set1_ps(k.base); 2];
    // g for the 16 classes from `start`: `base`, but at the target.
    let g = |start: usize| -> Lanes {
        if k.target.wrapping_sub(start) >= LANES {
            return base;
        }
        let mut v = [k.base; LANES];
        v[k.target - start] = k.at_target;
        to_lanes::<H>(&v)
    };
    let full = src.len() / LANES * LANES;
    let (mut acc, mut acc_g) = ([_mm256_setzero_ps(); 2], [_mm256_setzero_ps(); 2]);
    let mut i = 0;
    while i < full {
        // As the portable loop.
        prefetch_next_line(next, i);
        // SAFETY: the CPU has AVX2 and F16C (the caller's promise); i + 16 ≤ full.
        acc = add(acc, exp(unsafe { load(src, i) }));
        if TOTAL {
            acc_g = add(acc_g, g(i));
        }
        i += LANES;
    }
    if full < src.len() {
        let (padded, mask) = tail(src, full);
        // SAFETY: `padded` holds 16 values; the caller's promise.
        acc = add_masked(acc, mask, exp(unsafe { load(&padded, 0) }));
        if TOTAL {
            acc_g = add_masked(acc_g, mask, g(full));
        }
    }
    (fold::<H>(acc), if TOTAL { fold::<H>(acc_g) } else { 0.0 })
}

/// lp = r((x − max) − ln_sum) for 8 classes: never NaN, as rows here hold
/// finite values and −inf, the max is finite, ln_sum finite or +inf.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn log_probability<H: Half8>(x: __m256, max: __m256, ln_sum: __m256) -> __m256 {
    // SAFETY: the caller's promise.
    unsafe { H::round8_number(_mm256_sub_ps(_mm256_sub_ps(x, max), ln_sum)) }
}

/// The 16 weights from `w[start..]`, or the tail's zero-padded, in `H`'s lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn weights<H: Half8>(w: &[f32], start: usize) -> Lanes {
    let mut padded = [0.0f32; LANES];
    let chunk = &w[start..(start + LANES).min(w.len())];
    match <&[f32; LANES]>::try_from(chunk) {
        Ok(chunk) => to_lanes::<H>(chunk),
        Err(_) => {
            padded[..chunk.len()].copy_from_slice(chunk);
            to_lanes::<H>(&padded)
        }
    }
}

/// `half::log_probability_sum` on the half-precision row: Σ_c lp_c, or
/// Σ_c r(lp_c·w_c) with `WEIGHTED` (`w`: the row's length); with `next`
/// (the next row, of the row's length, or empty) also [`row_max`] of it,
/// whose read from memory then overlaps this row's arithmetic.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn log_probability_sum<H: Half8 + Bits, const WEIGHTED: bool>(
    src: &[H],
    max: f32,
    ln_sum: f32,
    w: &[f32],
    next: &[H],
) -> (f32, Option<Option<Extremes>>) {
    assert!(!WEIGHTED || w.len() >= src.len());
    let scan_next = next.len() == src.len();
    let mut scan = BitScan::new();
    let (m, ln) = (_mm256_set1_ps(max), _mm256_set1_ps(ln_sum));
    // SAFETY: the CPU has AVX2 and F16C (the caller's promise).
    let term = |x: Lanes, start: usize| unsafe {
        let lp = x.map(|x| log_probability::<H>(x, m, ln));
        match WEIGHTED {
            true => {
                let wv = weights::<H>(w, start);
                [0, 1].map(|h| H::round8(_mm256_mul_ps(lp[h], wv[h])))
            }
            false => lp,
        }
    };
    let full = src.len() / LANES * LANES;
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i < full {
        // SAFETY: the CPU has AVX2 and F16C; i + 16 ≤ full, and ≤ next.len() when scanned.
        unsafe {
            acc = add(acc, term(load(src, i), i));
            if scan_next {
                scan.add_at(next, i);
            }
        }
        i += LANES;
    }
    if full < src.len() {
        let (padded, mask) = tail(src, full);
        // SAFETY: `padded` holds 16 values; the CPU has AVX2 and F16C.
        unsafe {
            acc = add_masked(acc, mask, term(load(&padded, 0), full));
            if scan_next {
                scan.add_tail(next, full);
            }
        }
    }
    (fold::<H>(acc), scan_next.then(|| scan.verdict(next)))
}

/// [`backward_sweep`]'s loop over `src[..full]` (`full` a multiple of 16):
/// `step` (the 16 classes from `start`, widened, and `start`) gives each 16
/// classes' gradient bits, written to `out` (streamed with `stream`), and
/// terms, summed with `SUM` (the lanes returned); the next row (`next`,
/// when of the row's length) is scanned meanwhile. A function of its own
/// (not inlined), so each `step`'s loop gets the registers to itself.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; with `stream`, `out` must be
/// 16-byte aligned.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn sweep<H: Half8, const SUM: bool>(
    src: &[H],
    out: &mut [H],
    next: &[H],
    full: usize,
    stream: bool,
    scan: &mut BitScan,
    step: impl Fn(Lanes, usize) -> ([__m128i; 2], Lanes),
) -> Lanes {
    assert!(full <= out.len());
    let scan_next = next.len() == src.len();
    // In registers through the loop, not behind the reference.
    let mut scanned = *scan;
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i < full {
        // SAFETY: the CPU has AVX2 and F16C; i + 16 ≤ full ≤ out.len()
        // (asserted), and ≤ next.len() when scanned; with `stream`, out + i
        // is 16-byte aligned (the caller's promise), as `_mm_stream_si128` requires.
        unsafe {
            let (o, term) = step(load(src, i), i);
            let p = out.as_mut_ptr().add(i);
            if stream {
                _mm_stream_si128(p.cast(), o[0]);
                _mm_stream_si128(p.add(HALF).cast(), o[1]);
            } else {
                _mm_storeu_si128(p.cast(), o[0]);
                _mm_storeu_si128(p.add(HALF).cast(), o[1]);
            }
            if SUM {
                acc = add(acc, term);
            }
            if scan_next {
                scanned.add_at(next, i);
            }
        }
        i += LANES;
    }
    *scan = scanned;
    acc
}

/// `half::class_backward_row`'s sweep on the half-precision row of
/// extremes `row`, given
/// Σg (`sum_g`): writes r(g_c − e^(lp_c)·Σg) to `out` and with `SUM`
/// returns what [`log_probability_sum`] returns; with `next` (the next row,
/// of the row's length, or empty) also [`row_max`] of it, as
/// [`log_probability_sum`] finds it.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn class_backward<H: Half8 + Bits, const SUM: bool, const WEIGHTED: bool>(
    src: &[H],
    row: Extremes,
    ln_sum: f32,
    k: ClassGradient,
    sum_g: f32,
    w: &[f32],
    out: &mut [H],
    next: &[H],
) -> (f32, Option<Option<Extremes>>) {
    // Unweighted, with finite g and Σg, each g_c − e·Σg is a number
    // (e ∈ [0, 1]), so its rounding needs no NaN step.
    let numbers = !WEIGHTED && k.base.is_finite() && k.at_target.is_finite() && sum_g.is_finite();
    // SAFETY (both): the caller's promise.
    match numbers {
        true => unsafe { backward_sweep::<H, SUM, WEIGHTED, true>(src, row, ln_sum, k, sum_g, w, out, next) },
        false => unsafe { backward_sweep::<H, SUM, WEIGHTED, false>(src, row, ln_sum, k, sum_g, w, out, next) },
    }
}

/// [`class_backward`]; with `NUMBERS` no gradient value is NaN. Its
/// e^(lp_c) come from the type's [`ExpTable`], indexed by lp_c's bits;
/// unweighted, on rows whose lps take few patterns ([`lp_patterns`]), the
/// gradient values themselves come from a table the row builds.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_sweep<H: Half8 + Bits, const SUM: bool, const WEIGHTED: bool, const NUMBERS: bool>(
    src: &[H],
    row: Extremes,
    ln_sum: f32,
    k: ClassGradient,
    sum_g: f32,
    w: &[f32],
    out: &mut [H],
    next: &[H],
) -> (f32, Option<Option<Extremes>>) {
    let n = src.len();
    assert!(out.len() >= n && (!WEIGHTED || w.len() >= n));
    let scan_next = next.len() == n;
    let mut scan = BitScan::new();
    let (m, ln, total) = (_mm256_set1_ps(row.max), _mm256_set1_ps(ln_sum), _mm256_set1_ps(sum_g));
    let (base, at_target) = (_mm256_set1_ps(k.base), _mm256_set1_ps(k.at_target));
    let exps = H::exp_table();
    let table = exps.as_ptr();
    // Classes `start..start + 16`: the 16 gradient values (their bits, lanes
    // 0–7 and 8–15), and the smoothing terms; with `with_target` false, as if
    // the target were not among them.
    // SAFETY: the CPU has AVX2 and F16C (the caller's promise).
    let step = move |x: Lanes, start: usize, with_target: bool| unsafe {
        let wv = if WEIGHTED { weights::<H>(w, start) } else { [base; 2] };
        // The target's lane, when the target is among these classes.
        let hit = (with_target && k.target.wrapping_sub(start) < LANES).then(|| {
            let mut hit = [0.0f32; LANES];
            hit[k.target - start] = f32::from_bits(u32::MAX);
            to_lanes::<H>(&hit)
        });
        let mut v = [_mm256_setzero_ps(); 2];
        let mut term = [_mm256_setzero_ps(); 2];
        for h in 0..2 {
            // Never NaN (see `log_probability`): the portable loop's NaN
            // branch around the exp is not needed.
            let (lp, index) = H::round8_number_indexed(_mm256_sub_ps(_mm256_sub_ps(x[h], m), ln));
            // SAFETY: each index is 16 bits zero-extended, below `PATTERNS`,
            // the table's length.
            let e = _mm256_i32gather_ps::<4>(table, index);
            let mut g = if WEIGHTED {
                H::round8(_mm256_mul_ps(base, wv[h]))
            } else {
                base
            };
            if let Some(hit) = hit {
                g = _mm256_blendv_ps(g, at_target, hit[h]);
            }
            // g − e·Σg, rounded twice as the portable loop does (no FMA).
            v[h] = _mm256_sub_ps(g, _mm256_mul_ps(e, total));
            term[h] = if WEIGHTED {
                H::round8(_mm256_mul_ps(lp, wv[h]))
            } else {
                lp
            };
        }
        let o = if NUMBERS { H::narrow16_number(v) } else { H::narrow16(v) };
        (o, term)
    };
    let full = n / LANES * LANES;
    // Each 16 classes are 32 bytes, so an aligned row keeps every store aligned.
    let stream = (out.as_ptr() as usize).is_multiple_of(16) && std::mem::size_of_val(&out[..n]) >= STREAM_ROW_BYTES;
    // Unweighted, every class's gradient but the target's is a function of
    // its lp's bits: on rows whose lps take few patterns, a table of them
    // (built with `step`'s operations) replaces the product, difference and
    // rounding of each class.
    let mut gradients = MaybeUninit::<[u32; GRADIENT_TABLE]>::uninit();
    let lps = if WEIGHTED {
        None
    } else {
        lp_patterns::<H>(row, ln_sum, n, GRADIENT_TABLE)
    };
    let mut acc = match lps {
        Some(lps) => {
            // Entries 0..lps.len() (and up to the next multiple of 8, within
            // the table as GRADIENT_TABLE is one) are written, and only they are read.
            let entries = gradients.as_mut_ptr().cast::<u32>();
            for j in (0..lps.len()).step_by(HALF) {
                let first = lps.start + j;
                // `lps` ends at or before −inf's pattern, far below `PATTERNS`.
                let e: &[f32; HALF] = exps[first..first + HALF].try_into().expect("8 exps");
                // SAFETY: the CPU has AVX2 and F16C; `e` holds 8 f32, and
                // j + 8 ≤ GRADIENT_TABLE (j < lps.len() ≤ GRADIENT_TABLE, both
                // multiples of 8) entries are in the table.
                unsafe {
                    // `step`'s g − e·Σg and rounding, g the target's neighbours'.
                    let v = _mm256_sub_ps(base, _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr()), total));
                    let o = if NUMBERS { H::narrow8_number(v) } else { H::narrow8(v) };
                    _mm256_storeu_si256(entries.add(j).cast(), _mm256_cvtepu16_epi32(o));
                }
            }
            // Entry lp − lps.start of the table, addressed by lp's bits.
            let by_pattern = entries.cast::<i32>().cast_const().wrapping_sub(lps.start);
            // SAFETY (the closure): the CPU has AVX2 and F16C. Every lp of
            // the row has its pattern in `lps` (see `lp_patterns`), so each
            // gather reads `by_pattern` + 4·pattern: a written entry.
            sweep::<H, SUM>(src, out, next, full, stream, &mut scan, move |x: Lanes, _| unsafe {
                let mut term = [_mm256_setzero_ps(); 2];
                let mut o = [_mm256_setzero_si256(); 2];
                for h in 0..2 {
                    let (lp, index) = H::round8_number_indexed(_mm256_sub_ps(_mm256_sub_ps(x[h], m), ln));
                    o[h] = _mm256_i32gather_epi32::<4>(by_pattern, index);
                    term[h] = lp;
                }
                (H::pack16(o), term)
            })
        }
        None => sweep::<H, SUM>(src, out, next, full, stream, &mut scan, move |x, start| {
            step(x, start, false)
        }),
    };
    if stream {
        // Streaming stores are weakly ordered: the fence makes them visible
        // before any later store, such as the target's below or the one
        // that tells the thread waiting on this job that it is done (as the
        // AVX-512 level orders them).
        _mm_sfence();
    }
    // The loop above wrote the target's class as any other; the target's
    // 16 classes again, with the target, kept out of the loop, where its
    // test and blend would cost every step.
    if k.target < full {
        let start = k.target / LANES * LANES;
        // SAFETY: the CPU has AVX2 and F16C; start + 16 ≤ full ≤ out.len().
        unsafe {
            let (o, _) = step(load(src, start), start, true);
            let p = out.as_mut_ptr().add(start);
            _mm_storeu_si128(p.cast(), o[0]);
            _mm_storeu_si128(p.add(HALF).cast(), o[1]);
        }
    }
    if full < n {
        let (padded, mask) = tail(src, full);
        let mut written = [H::from_f64(0.0); LANES];
        // SAFETY: `padded` and `written` hold 16 values; the CPU has AVX2 and F16C.
        unsafe {
            let (o, term) = step(load(&padded, 0), full, true);
            _mm_storeu_si128(written.as_mut_ptr().cast(), o[0]);
            _mm_storeu_si128(written.as_mut_ptr().add(HALF).cast(), o[1]);
            if SUM {
                acc = add_masked(acc, mask, term);
            }
        }
        out[full..n].copy_from_slice(&written[..n - full]);
        if scan_next {
            scan.add_tail(next, full);
        }
    }
    let sum = if SUM { fold::<H>(acc) } else { 0.0 };
    (sum, scan_next.then(|| scan.verdict(next)))
}

#[cfg(test)]
mod tests {
    use super::super::super::super::half_bits::HalfBits;
    use super::super::lane_tests::{check_backward_sweeps, check_next_max_of_sweeps, check_vector_exps};
    use super::*;

    /// Whether this CPU has AVX2, FMA and F16C; if not, the test says it was skipped.
    fn has_avx2_f16c_else_say_skipped() -> bool {
        let has =
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        if !has {
            eprintln!("skipped: this CPU lacks AVX2, FMA or F16C");
        }
        has
    }

    /// Every 61st f32 bit pattern, 8 at a time, through `round8` and
    /// `narrow8` (and their NaN-free forms off NaN, `round8_number_indexed`'s
    /// indices among them), and 16 at a time through `narrow16` (and
    /// `narrow16_number` off NaN), against `half_bits.rs`,
    /// and every half pattern through `load` (NaN aside for bf16, whose
    /// `widen8` leaves NaN as it is).
    fn matches_half_bits<H: Half8 + HalfBits + Bits>(widen_nan: bool) {
        if !has_avx2_f16c_else_say_skipped() {
            return;
        }
        let patterns: Vec<u32> = (0..=u32::MAX / 61).map(|i| i.wrapping_mul(61)).collect();
        for chunk in patterns.chunks_exact(HALF) {
            let v: Vec<f32> = chunk.iter().map(|&b| f32::from_bits(b)).collect();
            let (mut rounded, mut narrowed) = ([0.0f32; HALF], [H::from_f64(0.0); HALF]);
            let (mut number, mut narrowed_number) = ([0.0f32; HALF], [H::from_f64(0.0); HALF]);
            let (mut indexed, mut index) = ([0.0f32; HALF], [0u32; HALF]);
            // SAFETY: the CPU has AVX2 and F16C (checked above); the arrays hold 8 values.
            unsafe {
                let x = _mm256_loadu_ps(v.as_ptr());
                _mm256_storeu_ps(rounded.as_mut_ptr(), H::round8(x));
                _mm_storeu_si128(narrowed.as_mut_ptr().cast(), H::narrow8(x));
                _mm256_storeu_ps(number.as_mut_ptr(), H::round8_number(x));
                _mm_storeu_si128(narrowed_number.as_mut_ptr().cast(), H::narrow8_number(x));
                let (rounded, bits) = H::round8_number_indexed(x);
                _mm256_storeu_ps(indexed.as_mut_ptr(), rounded);
                _mm256_storeu_si256(index.as_mut_ptr().cast(), bits);
            }
            for l in 0..HALF {
                assert_eq!(rounded[l].to_bits(), H::round(v[l]).to_bits(), "round {:#x}", chunk[l]);
                assert_eq!(narrowed[l].bits(), H::narrow(v[l]).bits(), "narrow {:#x}", chunk[l]);
                if !v[l].is_nan() {
                    assert_eq!(number[l].to_bits(), H::round(v[l]).to_bits(), "round {:#x}", chunk[l]);
                    assert_eq!(
                        narrowed_number[l].bits(),
                        H::narrow(v[l]).bits(),
                        "narrow {:#x}",
                        chunk[l]
                    );
                    assert_eq!(indexed[l].to_bits(), H::round(v[l]).to_bits(), "round {:#x}", chunk[l]);
                    assert_eq!(index[l], u32::from(H::narrow(v[l]).bits()), "index {:#x}", chunk[l]);
                }
            }
        }
        for chunk in patterns.chunks_exact(LANES) {
            let v: Vec<f32> = chunk.iter().map(|&b| f32::from_bits(b)).collect();
            let (mut narrowed, mut narrowed_number) = ([H::from_f64(0.0); LANES], [H::from_f64(0.0); LANES]);
            // SAFETY: the CPU has AVX2 and F16C (checked above); `v` holds
            // 16 f32, the arrays 16 values.
            unsafe {
                let x = to_lanes::<H>(v.as_slice().try_into().unwrap());
                for (out, o) in [
                    (&mut narrowed, H::narrow16(x)),
                    (&mut narrowed_number, H::narrow16_number(x)),
                ] {
                    _mm_storeu_si128(out.as_mut_ptr().cast(), o[0]);
                    _mm_storeu_si128(out.as_mut_ptr().add(HALF).cast(), o[1]);
                }
            }
            for l in 0..LANES {
                assert_eq!(narrowed[l].bits(), H::narrow(v[l]).bits(), "narrow16 {:#x}", chunk[l]);
                if !v[l].is_nan() {
                    let expected = H::narrow(v[l]).bits();
                    assert_eq!(narrowed_number[l].bits(), expected, "narrow16 {:#x}", chunk[l]);
                }
            }
        }
        let halves: Vec<H> = (0..=u16::MAX).map(H::of_bits).collect();
        for chunk in halves.chunks_exact(LANES) {
            // SAFETY: as above; `chunk` holds 16 values.
            let widened = unsafe { from_lanes::<H>(load(chunk, 0)) };
            for l in 0..LANES {
                let expected = chunk[l].widen();
                if widen_nan || !expected.is_nan() {
                    assert_eq!(widened[l].to_bits(), expected.to_bits(), "widen {:?}", chunk[l]);
                }
            }
        }
    }

    #[test]
    fn f16_lanes_convert_as_half_bits() {
        matches_half_bits::<f16>(true);
    }

    #[test]
    fn bf16_lanes_convert_as_half_bits() {
        matches_half_bits::<bf16>(false);
    }

    /// `exp8_with` and `exp8_normal_with` against the portable exp
    /// ([`check_vector_exps`]).
    #[test]
    fn exp8_gives_the_portable_bits() {
        if !has_avx2_f16c_else_say_skipped() {
            return;
        }
        check_vector_exps(HALF, |d, poly| {
            let (mut e, mut e_normal) = (vec![0.0f32; HALF], vec![0.0f32; HALF]);
            // SAFETY: the CPU has AVX2 and FMA (checked above); `d` and the vectors hold 8 f32.
            unsafe {
                let d = _mm256_loadu_ps(d.as_ptr());
                _mm256_storeu_ps(e.as_mut_ptr(), exp8_with(d, poly));
                _mm256_storeu_ps(e_normal.as_mut_ptr(), exp8_normal_with(d, poly));
            }
            (e, e_normal)
        });
    }

    /// [`check_next_max`] on this level's forward and backward sweeps, rows up to 70 classes.
    fn next_max_is_row_max<H: Half8 + Bits>() {
        if !has_avx2_f16c_else_say_skipped() {
            return;
        }
        // SAFETY (all three closures): the CPU has AVX2, FMA and F16C (checked above).
        let row_max = |row: &[H]| unsafe { row_max(row) };
        let forward =
            |src: &[H], max, next: &[H]| unsafe { log_probability_sum::<H, false>(src, max, 0.5, &[], next).1 };
        // Unweighted: the sweep's NaN-free rounding; weighted: the other one.
        let backward = |src: &[H], row, k, w: &[f32], out: &mut [H], next: &[H]| unsafe {
            match w.is_empty() {
                true => class_backward::<H, true, false>(src, row, 0.5, k, 0.25, w, out, next).1,
                false => class_backward::<H, false, true>(src, row, 0.5, k, 0.25, w, out, next).1,
            }
        };
        check_next_max_of_sweeps::<H>(70, row_max, forward, backward);
    }

    #[test]
    fn next_max_is_row_max_f16() {
        next_max_is_row_max::<f16>();
    }

    /// [`check_backward_sweeps`] at this level, whose long rows stream
    /// (at offsets 0 and 8 from a 64-byte boundary) and whose unweighted
    /// rows take the table of gradients by lp pattern or not: both occur.
    fn backward_gives_the_portable_bits<H: Half8 + Bits>() {
        if !has_avx2_f16c_else_say_skipped() {
            return;
        }
        let mut tabled = [false; 2];
        // SAFETY (every closure): the CPU has AVX2, FMA and F16C (checked
        // above); `out` and the weights, when given, have the row's length.
        check_backward_sweeps::<H>(
            |src| unsafe { row_max(src) },
            |src, row, k| unsafe { exp_sum::<H, true>(src, row, &[], k) },
            |src, row, ln_sum, k, sum_g, w, out| unsafe {
                match w.is_empty() {
                    true => class_backward::<H, true, false>(src, row, ln_sum, k, sum_g, w, out, &[]).0,
                    false => class_backward::<H, true, true>(src, row, ln_sum, k, sum_g, w, out, &[]).0,
                }
            },
            |src, row, ln_sum| {
                tabled[lp_patterns::<H>(row, ln_sum, src.len(), GRADIENT_TABLE).is_some() as usize] = true
            },
            |_, _, _| {},
        );
        assert_eq!(tabled, [true, true], "rows with and without the table of gradients");
    }

    #[test]
    fn backward_gives_the_portable_bits_f16() {
        backward_gives_the_portable_bits::<f16>();
    }

    #[test]
    fn backward_gives_the_portable_bits_bf16() {
        backward_gives_the_portable_bits::<bf16>();
    }

    #[test]
    fn next_max_is_row_max_bf16() {
        next_max_is_row_max::<bf16>();
    }
}
