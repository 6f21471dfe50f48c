//! Which implementation computes a call, decided in one place.
//!
//! - Half types (float16, bfloat16) take the half-precision path, which rounds
//!   where libtorch rounds them (`reduced.rs`).
//! - float32 and float64 take the fused kernel (`fused/`): one visit per
//!   position, SIMD lanes, the same bits on every [`SimdLevel`](super::SimdLevel).
//! - What the fused kernel does not take — no classes, no positions, negative
//!   weights whose sums cancel — takes the reference path: per position in
//!   f64 (`forward.rs`, `gradient.rs`, `kernel.rs`).

use super::element::Element;
use super::problem::Problem;
use crate::tensor::DType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    HalfPrecision,
    Fused,
    Reference,
}

/// The path for element type `T` and this problem's layout.
pub(crate) fn choose<T: Element>(problem: &Problem) -> Path {
    if T::REDUCED {
        return Path::HalfPrecision;
    }
    // With mixed-sign weights the weighted sums cancel, and the working-type
    // lanes would lose what the reference's f64 keeps.
    let fused = problem.classes > 0
        && problem.positions() > 0
        && problem.weight.as_ref().is_none_or(|w| w.iter().all(|&v| v >= 0.0))
        && matches!(T::DTYPE, DType::Float32 | DType::Float64);
    if fused {
        Path::Fused
    } else {
        Path::Reference
    }
}
