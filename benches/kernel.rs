//! The fused kernel alone, for tracking regressions (`cargo bench`).
//! Side-by-side numbers against libtorch come from `ce-parity bench`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use ce_parity::loss::simd::{self, SimdLevel};
use ce_parity::loss::{cross_entropy, cross_entropy_with_grad_into, Options, Target, View};

fn logits(n: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        })
        .collect()
}

fn kernel(c: &mut Criterion) {
    let (n, classes) = (256, 32_000);
    let x = logits(n * classes);
    let targets: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % classes as i64).collect();
    let options = Options {
        label_smoothing: 0.1,
        ..Options::default()
    };
    let shape = [n, classes];
    let mut out = vec![0.0f32; x.len()];
    let mut group = c.benchmark_group("256x32000 f32");
    group.throughput(Throughput::Bytes((x.len() * 4) as u64));
    group.sample_size(20);
    for (name, level) in [("simd", None), ("scalar", Some(SimdLevel::Scalar))] {
        simd::force(level);
        group.bench_function(format!("forward/{name}"), |b| {
            b.iter(|| {
                cross_entropy(
                    View::new(&x, &shape),
                    Target::Classes(View::new(&targets, &[n])),
                    &options,
                )
                .unwrap()
            })
        });
        group.bench_function(format!("forward_backward/{name}"), |b| {
            b.iter(|| {
                cross_entropy_with_grad_into(
                    View::new(&x, &shape),
                    Target::Classes(View::new(&targets, &[n])),
                    &options,
                    None,
                    &mut out,
                )
                .unwrap()
            })
        });
    }
    simd::force(None);
    group.finish();
}

criterion_group!(benches, kernel);
criterion_main!(benches);
