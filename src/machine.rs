//! Facts about this machine that decide which of libtorch's CPU kernels runs,
//! for reports that must tell two machines' results apart.

/// The ATen CPU capability libtorch runs with: `ATEN_CPU_CAPABILITY` when set,
/// else the best this CPU offers (`avx512`, `avx2` or `default`, by the flags
/// ATen requires), marked `(auto)`.
pub fn aten_capability() -> String {
    if let Ok(forced) = std::env::var("ATEN_CPU_CAPABILITY") {
        if !forced.is_empty() {
            return forced;
        }
    }
    format!("{} (auto)", best_capability())
}

/// The best ATen capability this CPU can run.
pub fn best_capability() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
            return "avx512";
        }
        if has!("avx2") && has!("fma") {
            return "avx2";
        }
    }
    "default"
}
