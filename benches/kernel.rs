//! The fused kernel alone (f32), for tracking regressions: `cargo bench`.
//! Side-by-side numbers against libtorch come from `ce-parity bench`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use ce_parity::loss::{cross_entropy, cross_entropy_with_grad_into, set_simd_level, Options, SimdLevel, Target, View};

/// Reproducible logits in [−4, 4) (xorshift).
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
    for (name, shape) in [("256x32000", vec![256, 32000]), ("2x21x128x128", vec![2, 21, 128, 128])] {
        let x = logits(shape.iter().product());
        let classes = shape[1] as i64;
        let target_shape: Vec<usize> = [shape[0]].into_iter().chain(shape[2..].iter().copied()).collect();
        let targets: Vec<i64> = (0..target_shape.iter().product::<usize>() as i64)
            .map(|i| (i * 7919) % classes)
            .collect();
        let options = Options {
            label_smoothing: 0.1,
            ..Options::default()
        };
        let target = Target::Classes(View::new(&targets, &target_shape));
        let mut out = vec![0.0f32; x.len()];
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes((x.len() * 4) as u64));
        group.sample_size(20);
        for (level_name, level) in [("detected", None), ("scalar", Some(SimdLevel::Scalar))] {
            set_simd_level(level);
            group.bench_function(format!("forward/{level_name}"), |b| {
                b.iter(|| cross_entropy(View::new(&x, &shape), target, &options).unwrap())
            });
            group.bench_function(format!("forward_backward/{level_name}"), |b| {
                b.iter(|| {
                    cross_entropy_with_grad_into(View::new(&x, &shape), target, &options, None, &mut out).unwrap()
                })
            });
        }
        set_simd_level(None);
        group.finish();
    }
}

criterion_group!(benches, kernel);
criterion_main!(benches);
