//! Which instruction set the fused kernel runs on, chosen at run time.
//!
//! The kernel's inner loops are written once, in plain Rust over fixed
//! 16-lane blocks, and compiled twice: as is (the scalar fallback, which
//! LLVM may still vectorise for the baseline ISA), and inside a function with
//! `#[target_feature(enable = "avx2,fma")]`. Both evaluate the same operations
//! in the same order (no fused multiply-adds), so they give bit-identical
//! results, which the tests check.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level for the fused kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    /// Portable code, any CPU.
    Scalar,
    /// x86-64 with AVX2 and FMA.
    Avx2,
}

const AUTO: u8 = 0;
const SCALAR: u8 = 1;
const AVX2: u8 = 2;

static FORCED: AtomicU8 = AtomicU8::new(AUTO);

/// The best level this CPU supports.
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Scalar
}

/// The level the kernel uses now: the forced one, else the detected one.
/// A forced level the CPU lacks falls back to the detected one.
pub fn current() -> SimdLevel {
    match FORCED.load(Ordering::Relaxed) {
        SCALAR => SimdLevel::Scalar,
        AVX2 if detected() == SimdLevel::Avx2 => SimdLevel::Avx2,
        _ => detected(),
    }
}

/// Forces a level for the whole process (`None`: back to detection). For
/// tests and benchmarks that compare the scalar fallback with the SIMD path.
pub fn force(level: Option<SimdLevel>) {
    let value = match level {
        None => AUTO,
        Some(SimdLevel::Scalar) => SCALAR,
        Some(SimdLevel::Avx2) => AVX2,
    };
    FORCED.store(value, Ordering::Relaxed);
}
