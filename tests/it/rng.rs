//! The one seeded generator the tests share (xorshift64): small,
//! reproducible on every machine, and enough for test grids. The library's
//! unit tests include this same file (src/loss/fused/tests.rs).

pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n - 1)
    }

    /// A bell-shaped value of spread `scale` (a sum of three uniforms).
    pub fn normal_ish(&mut self, scale: f64) -> f64 {
        (self.uniform() + self.uniform() + self.uniform() - 1.5) * 2.0 * scale
    }
}
