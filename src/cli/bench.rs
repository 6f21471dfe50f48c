//! `ce-parity bench`: Rust and libtorch on the same tensors, in one process
//! and one run, with two floors measured on the same buffer.

use std::time::{Duration, Instant};

use clap::ValueEnum;
use rayon::prelude::*;
use serde::Serialize;
use tch::{Kind, Tensor as TchTensor};

use ce_parity::loss::{cross_entropy, cross_entropy_with_grad_into, Options, Target, View};

#[derive(clap::Args)]
pub struct Args {
    /// Threads for both sides (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Timed repetitions per measurement (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Only the shapes whose name contains this text.
    #[arg(long)]
    only: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// One line of the report; the JSON has exactly these fields.
#[derive(Serialize)]
struct Row {
    shape: String,
    pass: &'static str,
    threads: usize,
    rust_ms: f64,
    libtorch_ms: f64,
    speedup: f64,
    floor_ms: f64,
    rust_over_floor: f64,
    rust_peak_extra_mb: f64,
    libtorch_peak_extra_mb: f64,
}

struct Shape {
    name: &'static str,
    dims: Vec<usize>,
    weighted: bool,
}

fn shapes() -> Vec<Shape> {
    let shape = |name, dims: &[usize], weighted| Shape {
        name,
        dims: dims.to_vec(),
        weighted,
    };
    vec![
        shape("4096x32000", &[4096, 32000], false),
        shape("4096x32000 weighted", &[4096, 32000], true),
        shape("65536x1000", &[65536, 1000], false),
        shape("256x128256", &[256, 128256], false),
        shape("8x21x256x256", &[8, 21, 256, 256], false),
    ]
}

/// xorshift: fast, reproducible logits without a dependency.
fn fill(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

/// Median milliseconds of `repeats` runs after one warm-up, and the peak
/// resident memory the runs added (MB).
fn measure(repeats: usize, mut run: impl FnMut()) -> (f64, f64) {
    run();
    let before = resident_kb();
    reset_peak();
    let samples = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    let extra_mb = peak_kb().saturating_sub(before) as f64 / 1024.0;
    (median(samples), extra_mb)
}

/// Peak RSS is reset through /proc/self/clear_refs ("5"), so each side's
/// temporaries are measured from the same baseline. Large tensors are mapped
/// and unmapped by the allocators, so they show in RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn resident_kb() -> u64 {
    status_kb("VmRSS:")
}

fn peak_kb() -> u64 {
    status_kb("VmHWM:")
}

/// One vectorised read of the logits: the forward pass's floor.
fn read_floor(x: &[f32]) -> f32 {
    x.par_chunks(1 << 16)
        .map(|chunk| {
            let mut acc = [0.0f32; 16];
            for block in chunk.chunks_exact(16) {
                for l in 0..16 {
                    acc[l] += block[l];
                }
            }
            acc.iter().sum::<f32>()
        })
        .sum()
}

/// One read and one write into a preallocated buffer: the floor of forward+backward.
fn read_write_floor(x: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(1 << 16)
        .zip(x.par_chunks(1 << 16))
        .for_each(|(o, i)| o.copy_from_slice(i));
}

fn bench_shape(shape: &Shape, threads: usize, repeats: usize) -> anyhow::Result<Vec<Row>> {
    let numel: usize = shape.dims.iter().product();
    let classes = shape.dims[1];
    let positions = numel / classes;
    let x = fill(numel, 0x5eed, 4.0);
    let targets: Vec<i64> = fill(positions, 7, 0.5)
        .iter()
        .map(|v| ((v + 0.5) * classes as f32) as i64 % classes as i64)
        .collect();
    let weight: Vec<f32> = fill(classes, 3, 0.5).iter().map(|v| v + 1.0).collect();
    let mut target_shape = vec![shape.dims[0]];
    target_shape.extend_from_slice(&shape.dims[2..]);
    let options = Options {
        weight: shape.weighted.then_some(weight.as_slice()),
        label_smoothing: 0.1,
        ..Options::default()
    };
    let input = View::new(&x, &shape.dims);
    let target = Target::Classes(View::new(&targets, &target_shape));

    // libtorch on the same values.
    let dims: Vec<i64> = shape.dims.iter().map(|&d| d as i64).collect();
    let tx = TchTensor::from_slice(&x).f_reshape(&dims)?;
    let tt = TchTensor::from_slice(&targets).f_reshape(target_shape.iter().map(|&d| d as i64).collect::<Vec<_>>())?;
    let tw = shape.weighted.then(|| TchTensor::from_slice(&weight));
    let torch_forward = || {
        let _guard = tch::no_grad_guard();
        let loss = tx
            .f_cross_entropy_loss(&tt, tw.as_ref(), tch::Reduction::Mean, -100, 0.1)
            .expect("libtorch forward");
        std::hint::black_box(loss.double_value(&[]));
    };
    let torch_forward_backward = || {
        let leaf = tx.shallow_clone().set_requires_grad(true);
        let loss = leaf
            .f_cross_entropy_loss(&tt, tw.as_ref(), tch::Reduction::Mean, -100, 0.1)
            .expect("libtorch forward");
        loss.backward();
        std::hint::black_box(leaf.grad().f_sum(Kind::Float).map(|s| s.double_value(&[])).ok());
    };

    let mut out = vec![0.0f32; numel];
    let mut rows = Vec::new();
    let (floor_read, _) = measure(repeats, || {
        std::hint::black_box(read_floor(&x));
    });
    let (floor_read_write, _) = measure(repeats, || read_write_floor(&x, &mut out));
    let (rust_fwd, rust_fwd_mb) = measure(repeats, || {
        std::hint::black_box(cross_entropy(input, target, &options).expect("rust forward"));
    });
    let (torch_fwd, torch_fwd_mb) = measure(repeats, torch_forward);
    let (rust_fb, rust_fb_mb) = measure(repeats, || {
        std::hint::black_box(
            cross_entropy_with_grad_into(input, target, &options, None, &mut out).expect("rust fwd+bwd"),
        );
    });
    let (torch_fb, torch_fb_mb) = measure(repeats, torch_forward_backward);
    for (pass, rust_ms, libtorch_ms, floor_ms, rust_mb, torch_mb) in [
        ("forward", rust_fwd, torch_fwd, floor_read, rust_fwd_mb, torch_fwd_mb),
        (
            "forward_backward",
            rust_fb,
            torch_fb,
            floor_read_write,
            rust_fb_mb,
            torch_fb_mb,
        ),
    ] {
        rows.push(Row {
            shape: shape.name.to_string(),
            pass,
            threads,
            rust_ms,
            libtorch_ms,
            speedup: libtorch_ms / rust_ms,
            floor_ms,
            rust_over_floor: rust_ms / floor_ms,
            rust_peak_extra_mb: rust_mb,
            libtorch_peak_extra_mb: torch_mb,
        });
    }
    Ok(rows)
}

pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(threads > 0, "--threads must be at least 1");
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
    tch::set_num_threads(threads as i32);
    let mut rows = Vec::new();
    for shape in shapes() {
        if args.only.as_ref().is_some_and(|o| !shape.name.contains(o.as_str())) {
            continue;
        }
        if args.format == Format::Human {
            eprintln!("benchmarking {} ...", shape.name);
        }
        rows.extend(bench_shape(&shape, threads, args.repeats)?);
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Human => {
            println!(
                "{:<20} {:<17} {:>7} {:>10} {:>12} {:>8} {:>9} {:>10} {:>9} {:>12}",
                "shape",
                "pass",
                "threads",
                "rust_ms",
                "libtorch_ms",
                "speedup",
                "floor_ms",
                "rust/floor",
                "rust_MB",
                "libtorch_MB"
            );
            for r in &rows {
                println!(
                    "{:<20} {:<17} {:>7} {:>10.2} {:>12.2} {:>7.1}x {:>9.2} {:>10.2} {:>9.1} {:>12.1}",
                    r.shape,
                    r.pass,
                    r.threads,
                    r.rust_ms,
                    r.libtorch_ms,
                    r.speedup,
                    r.floor_ms,
                    r.rust_over_floor,
                    r.rust_peak_extra_mb,
                    r.libtorch_peak_extra_mb
                );
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
