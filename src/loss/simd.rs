//! Which instruction set the fused kernel runs on, chosen at run time.
//!
//! The inner loops (`fused/lanes.rs`) are compiled once per level and give
//! the same bits on each; forcing a level lets tests compare them and
//! benchmarks time them.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level for the fused kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Portable code for the baseline target, any CPU.
    Scalar,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F, BW, VL and DQ (and AVX2 and FMA).
    Avx512,
}

/// A level this CPU can run, as a value only [`current`] makes: it caps any
/// forced level at what feature detection found. The kernels' `unsafe`
/// dispatch takes a `Simd`, never a bare [`SimdLevel`], so safe code cannot
/// reach an instruction set the CPU lacks.
///
/// ```
/// use ce_parity::loss::{set_simd_level, simd, SimdLevel};
/// set_simd_level(Some(SimdLevel::Avx512));
/// assert!(simd::current().level() <= simd::detected()); // capped, whatever was asked
/// set_simd_level(None);
/// ```
///
/// Outside this module a `Simd` cannot be made up:
///
/// ```compile_fail
/// let forced = ce_parity::loss::Simd(ce_parity::loss::SimdLevel::Avx512);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Simd(SimdLevel);

impl Simd {
    /// The level the kernels run at; the CPU has every instruction it needs.
    pub fn level(self) -> SimdLevel {
        self.0
    }

    /// Whether the CPU also converts float16 (F16C), at the AVX2 level or
    /// above: the AVX2 float16/bfloat16 loops need it. It never changes
    /// the level.
    pub(crate) fn has_f16c(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.0 >= SimdLevel::Avx2 && is_x86_feature_detected!("f16c");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// This level or `cap`, whichever is lower (a kernel that is faster
    /// built for a lower level asks for it). Lower never loses soundness.
    pub(crate) fn at_most(self, cap: SimdLevel) -> Simd {
        Simd(self.0.min(cap))
    }
}

const AUTO: u8 = 0;

static FORCED: AtomicU8 = AtomicU8::new(AUTO);

/// The best level this CPU supports.
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        // BW: the bf16 kernel's word permutes and the half scans' 16-bit
        // maxes and mins. Every CPU with AVX-512 VL and DQ has it.
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512dq");
        if avx2 && avx512 {
            return SimdLevel::Avx512;
        }
        if avx2 {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Scalar
}

/// The level the kernel uses now: the forced one, capped at the detected one
/// (a level the CPU lacks is never run).
pub fn current() -> Simd {
    let forced = match FORCED.load(Ordering::Relaxed) {
        1 => SimdLevel::Scalar,
        2 => SimdLevel::Avx2,
        3 => SimdLevel::Avx512,
        _ => return Simd(detected()),
    };
    Simd(forced.min(detected()))
}

/// Forces a level for the whole process (`None`: back to detection), for
/// tests and benchmarks that compare the levels. A level above what the CPU
/// supports runs as the best supported one.
///
/// ```
/// use ce_parity::loss::{cross_entropy, set_simd_level, simd, Options, SimdLevel, Target, View};
///
/// let logits: Vec<f32> = (0..64 * 100).map(|i| (i % 7) as f32 * 0.3).collect();
/// let targets: Vec<i64> = (0..64).map(|i| i % 100).collect();
/// let loss_at = |level| {
///     set_simd_level(level);
///     let options = Options { label_smoothing: 0.1, ..Options::default() };
///     cross_entropy(View::new(&logits, &[64, 100]), Target::Classes(View::new(&targets, &[64])), &options)
///         .unwrap()
///         .item()
///         .unwrap()
/// };
/// let portable = loss_at(Some(SimdLevel::Scalar));
/// assert_eq!(simd::current().level(), SimdLevel::Scalar);
/// let best = loss_at(None);
/// assert_eq!(simd::current().level(), simd::detected());
/// assert_eq!(portable.to_bits(), best.to_bits());
/// ```
pub fn set_simd_level(level: Option<SimdLevel>) {
    let value = match level {
        None => AUTO,
        Some(SimdLevel::Scalar) => 1,
        Some(SimdLevel::Avx2) => 2,
        Some(SimdLevel::Avx512) => 3,
    };
    FORCED.store(value, Ordering::Relaxed);
}
