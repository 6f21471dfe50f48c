//! `ce-parity bench`: Rust and libtorch on the same tensors, in one process
//! and one run, beside two floors measured on the same buffer: one read of
//! the logits (forward's floor) and one read plus one write into a
//! preallocated buffer (forward+backward's floor).

use std::time::Instant;

use anyhow::Context;
use clap::ValueEnum;
use rayon::prelude::*;
use serde::Serialize;
use tch::{Kind, Tensor as TchTensor};

use super::alloc;
use ce_parity::loss::{cross_entropy, cross_entropy_with_grad_into, Options, Target, View};

#[derive(clap::Args)]
pub struct Args {
    /// Threads for both sides (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Timed runs per measurement (all measurements of a shape take turns),
    /// after two warm-up rounds; the median is reported.
    #[arg(long, default_value_t = 7)]
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
    rust_peak_extra_bytes: u64,
    libtorch_peak_extra_bytes: u64,
}

struct Shape {
    name: &'static str,
    dims: &'static [usize],
    weighted: bool,
}

const SHAPES: [Shape; 5] = [
    Shape {
        name: "4096x32000",
        dims: &[4096, 32000],
        weighted: false,
    },
    Shape {
        name: "4096x32000+weight",
        dims: &[4096, 32000],
        weighted: true,
    },
    Shape {
        name: "65536x1000",
        dims: &[65536, 1000],
        weighted: false,
    },
    Shape {
        name: "256x128256",
        dims: &[256, 128256],
        weighted: false,
    },
    Shape {
        name: "8x21x256x256",
        dims: &[8, 21, 256, 256],
        weighted: false,
    },
];

const EPSILON: f64 = 0.1;
const WARM_UP: usize = 2;

/// xorshift: reproducible values without a dependency, uniform in [−scale, scale).
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

/// A measurement: the median time and the peak extra memory over the timed runs.
#[derive(Default)]
struct Measured {
    ms: f64,
    rust_bytes: usize,
    resident_bytes: usize,
}

/// Warm-up, then `repeats` rounds in which every run goes once, in turn: a
/// change of load on the machine during the bench then touches all of them
/// alike, and the ratios between them hold. Memory is watched per run in two
/// ways: bytes through our counting allocator, and the rise of the
/// resident-set high-water mark (reset through /proc/self/clear_refs), which
/// sees libtorch's allocations too.
fn measure_interleaved(repeats: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<Measured> {
    for _ in 0..WARM_UP {
        runs.iter_mut().for_each(|run| run());
    }
    let mut samples = vec![Vec::new(); runs.len()];
    let mut measured: Vec<Measured> = runs.iter().map(|_| Measured::default()).collect();
    for _ in 0..repeats.max(1) {
        for (i, run) in runs.iter_mut().enumerate() {
            let resident_before = status_bytes("VmRSS:");
            reset_resident_peak();
            let baseline = alloc::start();
            let start = Instant::now();
            run();
            samples[i].push(start.elapsed().as_secs_f64() * 1e3);
            let m = &mut measured[i];
            m.rust_bytes = m.rust_bytes.max(alloc::peak_since(baseline));
            m.resident_bytes = m
                .resident_bytes
                .max(status_bytes("VmHWM:").saturating_sub(resident_before));
        }
    }
    for (m, mut times) in measured.iter_mut().zip(samples) {
        times.sort_by(f64::total_cmp);
        m.ms = times[times.len() / 2];
    }
    measured
}

fn pair(measured: Vec<Measured>) -> [Measured; 2] {
    measured.try_into().ok().expect("two runs")
}

/// Writing "5" to clear_refs resets the peak resident size (Linux ≥ 4.0).
fn reset_resident_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` field in bytes (0 where unavailable).
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kb * 1024
}

/// Elements per parallel task in the floors: large enough to stream.
const FLOOR_CHUNK: usize = 1 << 16;

/// One vectorised read of the logits (a sum in 16 independent lanes).
fn read_floor(x: &[f32]) -> f32 {
    x.par_chunks(FLOOR_CHUNK)
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

/// One read and one write into a preallocated buffer.
fn read_write_floor(x: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(FLOOR_CHUNK)
        .zip(x.par_chunks(FLOOR_CHUNK))
        .for_each(|(o, i)| o.copy_from_slice(i));
}

fn bench_shape(shape: &Shape, threads: usize, repeats: usize) -> anyhow::Result<[Row; 2]> {
    let dims = shape.dims;
    let numel: usize = dims.iter().product();
    let classes = dims[1];
    let x = fill(numel, 0x5eed, 4.0);
    let target_shape: Vec<usize> = [dims[0]].into_iter().chain(dims[2..].iter().copied()).collect();
    let targets: Vec<i64> = fill(target_shape.iter().product(), 7, 0.5)
        .iter()
        .map(|v| (((v + 0.5) * classes as f32) as i64).min(classes as i64 - 1))
        .collect();
    let weight: Vec<f32> = fill(classes, 3, 0.5).iter().map(|v| v + 1.0).collect();
    let options = Options {
        weight: shape.weighted.then_some(weight.as_slice()),
        label_smoothing: EPSILON,
        ..Options::default()
    };
    let input = View::new(&x, dims);
    let target = Target::Classes(View::new(&targets, &target_shape));

    // libtorch on copies of the same values (from_slice copies).
    let as_i64 = |d: &[usize]| d.iter().map(|&v| v as i64).collect::<Vec<_>>();
    let tx = TchTensor::from_slice(&x).f_reshape(as_i64(dims))?;
    let tt = TchTensor::from_slice(&targets).f_reshape(as_i64(&target_shape))?;
    let tw = shape.weighted.then(|| TchTensor::from_slice(&weight));
    let torch_loss = |input: &TchTensor| {
        input
            .f_cross_entropy_loss(&tt, tw.as_ref(), tch::Reduction::Mean, -100, EPSILON)
            .context("libtorch cross_entropy_loss")
    };

    // Check once that both sides compute the same loss before timing them.
    let rust_loss = cross_entropy(input, target, &options)?.values[0] as f64;
    let libtorch_loss = torch_loss(&tx)?.f_double_value(&[])?;
    anyhow::ensure!(
        (rust_loss - libtorch_loss).abs() <= 1e-4 * libtorch_loss.abs(),
        "{}: Rust loss {rust_loss} and libtorch loss {libtorch_loss} disagree",
        shape.name
    );

    // Separate outputs: the floor and the kernel run in turn, each with its own buffer.
    let mut out = vec![0.0f32; numel];
    let mut floor_out = vec![0.0f32; numel];
    let grad_bytes = numel * 4;
    let mut read = || {
        std::hint::black_box(read_floor(&x));
    };
    let mut read_write = || read_write_floor(&x, &mut floor_out);
    let mut rust_forward = || {
        std::hint::black_box(cross_entropy(input, target, &options).expect("checked above"));
    };
    let mut rust_both = || {
        std::hint::black_box(
            cross_entropy_with_grad_into(input, target, &options, None, &mut out).expect("checked above"),
        );
    };
    let mut torch_forward = || {
        let _guard = tch::no_grad_guard();
        let _ = std::hint::black_box(torch_loss(&tx).expect("checked above"));
    };
    let mut torch_both = || {
        let leaf = tx.shallow_clone().set_requires_grad(true);
        torch_loss(&leaf).expect("checked above").backward();
        let _ = std::hint::black_box(leaf.grad().f_sum(Kind::Float).expect("a gradient"));
    };
    // Each pass takes turns with its floor, so that both see the same load
    // and cache state; libtorch, which frees and maps hundreds of MB per
    // call, runs apart, so that its aftermath lands on neither.
    let [read, rust_forward] = pair(measure_interleaved(repeats, &mut [&mut read, &mut rust_forward]));
    let [read_write, rust_both] = pair(measure_interleaved(repeats, &mut [&mut read_write, &mut rust_both]));
    let [torch_forward] = measure_interleaved(repeats, &mut [&mut torch_forward])
        .try_into()
        .ok()
        .expect("one run");
    let [torch_both] = measure_interleaved(repeats, &mut [&mut torch_both])
        .try_into()
        .ok()
        .expect("one run");
    let (read, rust_forward, read_write, rust_both) = (&read, &rust_forward, &read_write, &rust_both);
    let (torch_forward, torch_both) = (&torch_forward, &torch_both);

    let row = |pass, rust: &Measured, torch: &Measured, floor: &Measured, torch_output: usize| Row {
        shape: shape.name.to_string(),
        pass,
        threads,
        rust_ms: rust.ms,
        libtorch_ms: torch.ms,
        speedup: torch.ms / rust.ms,
        floor_ms: floor.ms,
        rust_over_floor: rust.ms / floor.ms,
        rust_peak_extra_bytes: rust.rust_bytes as u64,
        // libtorch's gradient is its output, as our preallocated `out` is ours.
        libtorch_peak_extra_bytes: torch.resident_bytes.saturating_sub(torch_output) as u64,
    };
    Ok([
        row("forward", rust_forward, torch_forward, read, 0),
        row("forward_backward", rust_both, torch_both, read_write, grad_bytes),
    ])
}

pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let threads = match args.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("starting the thread pool")?;
    tch::set_num_threads(threads as i32);
    let mut rows = Vec::new();
    for shape in &SHAPES {
        if args.only.as_ref().is_some_and(|o| !shape.name.contains(o.as_str())) {
            continue;
        }
        if args.format == Format::Human {
            eprintln!("bench: {} ...", shape.name);
        }
        rows.extend(bench_shape(shape, threads, args.repeats)?);
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Human => print_table(&rows),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<18} {:<16} {:>7} {:>9} {:>11} {:>8} {:>9} {:>10} {:>9} {:>12}",
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
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    for r in rows {
        println!(
            "{:<18} {:<16} {:>7} {:>9.1} {:>11.1} {:>7.1}x {:>9.1} {:>10.2} {:>9.2} {:>12.1}",
            r.shape,
            r.pass,
            r.threads,
            r.rust_ms,
            r.libtorch_ms,
            r.speedup,
            r.floor_ms,
            r.rust_over_floor,
            mb(r.rust_peak_extra_bytes),
            mb(r.libtorch_peak_extra_bytes)
        );
    }
}
