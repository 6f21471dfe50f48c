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
use ce_parity::loss::{
    cross_entropy, cross_entropy_with_grad_into, set_simd_level, simd, Element, Options, SimdLevel, Target, View,
};

#[derive(clap::Args)]
pub struct Args {
    /// Threads for both sides (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Timed runs per measurement (all measurements of a shape take turns),
    /// after two warm-up rounds; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Rounds per shape: each round times Rust, its floors and libtorch
    /// afresh; the ratios are the medians of the rounds' ratios, so a burst
    /// of load on a shared machine moves one round, not the verdict.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Only the shapes whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Run the Rust kernel at this SIMD level (capped at what the CPU has),
    /// to compare levels in one run; default: the best the CPU has.
    #[arg(long, value_enum)]
    simd: Option<Level>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Level {
    Scalar,
    Avx2,
    Avx512,
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
    dtype: &'static str,
    pass: &'static str,
    threads: usize,
    /// The CPU model (/proc/cpuinfo), so rows from two machines can be told apart.
    cpu: String,
    /// The Rust kernel's SIMD level.
    simd: &'static str,
    /// The kernels libtorch dispatches to (see [`aten_capability`]).
    aten_capability: &'static str,
    /// Rounds behind the medians below (see `--rounds`).
    rounds: usize,
    rust_ms: f64,
    libtorch_ms: f64,
    /// libtorch over Rust: the median of the rounds' ratios.
    speedup: f64,
    /// The smallest and largest of the rounds' speedups.
    speedup_range: [f64; 2],
    floor_ms: f64,
    /// Rust over the floor: the median of the rounds' ratios.
    rust_over_floor: f64,
    /// The smallest and largest of the rounds' Rust-over-floor ratios.
    rust_over_floor_range: [f64; 2],
    rust_peak_extra_bytes: u64,
    libtorch_peak_extra_bytes: u64,
}

struct Shape {
    name: &'static str,
    dims: &'static [usize],
    weighted: bool,
    dtype: Dtype,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dtype {
    Float32,
    Float16,
    BFloat16,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Float16 => "float16",
            Dtype::BFloat16 => "bfloat16",
        }
    }
}

const SHAPES: [Shape; 7] = [
    Shape {
        name: "4096x32000",
        dims: &[4096, 32000],
        weighted: false,
        dtype: Dtype::Float32,
    },
    Shape {
        name: "4096x32000+weight",
        dims: &[4096, 32000],
        weighted: true,
        dtype: Dtype::Float32,
    },
    Shape {
        name: "65536x1000",
        dims: &[65536, 1000],
        weighted: false,
        dtype: Dtype::Float32,
    },
    Shape {
        name: "256x128256",
        dims: &[256, 128256],
        weighted: false,
        dtype: Dtype::Float32,
    },
    Shape {
        name: "8x21x256x256",
        dims: &[8, 21, 256, 256],
        weighted: false,
        dtype: Dtype::Float32,
    },
    Shape {
        name: "4096x32000",
        dims: &[4096, 32000],
        weighted: false,
        dtype: Dtype::BFloat16,
    },
    Shape {
        name: "4096x32000",
        dims: &[4096, 32000],
        weighted: false,
        dtype: Dtype::Float16,
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

/// Warm-up, then `repeats` turns in which every run goes once, in turn: a
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
    for (m, times) in measured.iter_mut().zip(samples) {
        m.ms = median(times);
    }
    measured
}

fn pair(measured: Vec<Measured>) -> [Measured; 2] {
    measured.try_into().ok().expect("two runs")
}

fn one(measured: Vec<Measured>) -> [Measured; 1] {
    measured.try_into().ok().expect("one run")
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

/// One vectorised read of half-precision logits: their bits summed in 32
/// integer lanes (a sum of the values would time the widening too).
fn read_floor_bits(x: &[u16]) -> u32 {
    x.par_chunks(FLOOR_CHUNK)
        .map(|chunk| {
            let mut acc = [0u32; 32];
            for block in chunk.chunks_exact(32) {
                for l in 0..32 {
                    acc[l] = acc[l].wrapping_add(u32::from(block[l]));
                }
            }
            acc.iter().fold(0u32, |a, &v| a.wrapping_add(v))
        })
        .reduce(|| 0, u32::wrapping_add)
}

/// One read and one write into a preallocated buffer.
fn read_write_floor<E: Copy + Send + Sync>(x: &[E], out: &mut [E]) {
    out.par_chunks_mut(FLOOR_CHUNK)
        .zip(x.par_chunks(FLOOR_CHUNK))
        .for_each(|(o, i)| o.copy_from_slice(i));
}

/// An element type the bench runs on both sides.
trait BenchElement: Element + tch::kind::Element {
    /// One read of the buffer (forward's floor).
    fn read(x: &[Self]);
}

impl BenchElement for f32 {
    fn read(x: &[f32]) {
        std::hint::black_box(read_floor(x));
    }
}

impl BenchElement for half::f16 {
    fn read(x: &[half::f16]) {
        use half::slice::HalfFloatSliceExt;
        std::hint::black_box(read_floor_bits(x.reinterpret_cast()));
    }
}

impl BenchElement for half::bf16 {
    fn read(x: &[half::bf16]) {
        use half::slice::HalfFloatSliceExt;
        std::hint::black_box(read_floor_bits(x.reinterpret_cast()));
    }
}

/// What every row repeats about the machine and the run.
struct Machine {
    cpu: String,
    simd: &'static str,
    aten_capability: &'static str,
}

impl Machine {
    fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|v| v.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let simd = match simd::current().level() {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        };
        Machine {
            cpu,
            simd,
            aten_capability: aten_capability(),
        }
    }
}

/// The CPU kernels libtorch runs, by its own rule (tch does not expose
/// `at::get_cpu_capability`, which returns a C++ string): ATEN_CPU_CAPABILITY
/// when set to a level the CPU has, else the best of avx512 (AVX-512 F, VL,
/// BW, DQ and FMA), avx2 (AVX2 and FMA) and default. On this project's
/// machine torch 2.13 reports the same (AVX512, or AVX2 under the variable).
fn aten_capability() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq");
        let requested = std::env::var("ATEN_CPU_CAPABILITY").unwrap_or_default().to_lowercase();
        match requested.as_str() {
            "default" => return "default",
            "avx2" if avx2 => return "avx2",
            "avx512" if avx512 => return "avx512",
            _ => {}
        }
        if avx512 {
            return "avx512";
        }
        if avx2 {
            return "avx2";
        }
    }
    "default"
}

fn bench_shape(
    shape: &Shape,
    threads: usize,
    repeats: usize,
    rounds: usize,
    machine: &Machine,
) -> anyhow::Result<[Row; 2]> {
    match shape.dtype {
        Dtype::Float32 => bench_typed::<f32>(shape, threads, repeats, rounds, machine),
        Dtype::Float16 => bench_typed::<half::f16>(shape, threads, repeats, rounds, machine),
        Dtype::BFloat16 => bench_typed::<half::bf16>(shape, threads, repeats, rounds, machine),
    }
}

fn bench_typed<E: BenchElement>(
    shape: &Shape,
    threads: usize,
    repeats: usize,
    rounds: usize,
    machine: &Machine,
) -> anyhow::Result<[Row; 2]> {
    let dims = shape.dims;
    let numel: usize = dims.iter().product();
    let classes = dims[1];
    let to_e = |v: Vec<f32>| v.into_iter().map(|v| E::from_f64(f64::from(v))).collect::<Vec<E>>();
    let x = to_e(fill(numel, 0x5eed, 4.0));
    let target_shape: Vec<usize> = [dims[0]].into_iter().chain(dims[2..].iter().copied()).collect();
    let targets: Vec<i64> = fill(target_shape.iter().product(), 7, 0.5)
        .iter()
        .map(|v| (((v + 0.5) * classes as f32) as i64).min(classes as i64 - 1))
        .collect();
    let weight: Vec<E> = to_e(fill(classes, 3, 0.5).iter().map(|v| v + 1.0).collect());
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
    let rust_loss = cross_entropy(input, target, &options)?.values[0].to_f64();
    let libtorch_loss = torch_loss(&tx)?.f_double_value(&[])?;
    // Half types agree to their rounding (a bfloat16 ulp is 2^−8 relative).
    let rtol = if shape.dtype == Dtype::Float32 { 1e-4 } else { 1e-2 };
    // (float16's smoothing sum overflows at 32000 classes: inf on both sides.)
    anyhow::ensure!(
        rust_loss == libtorch_loss || (rust_loss - libtorch_loss).abs() <= rtol * libtorch_loss.abs(),
        "{}: Rust loss {rust_loss} and libtorch loss {libtorch_loss} disagree",
        shape.name
    );

    // Separate outputs: the floor and the kernel run in turn, each with its own buffer.
    let mut out = vec![E::from_f64(0.0); numel];
    let mut floor_out = vec![E::from_f64(0.0); numel];
    let grad_bytes = numel * std::mem::size_of::<E>();
    let mut read = || E::read(&x);
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
    let mut measured = Vec::new();
    for _ in 0..rounds.max(1) {
        let [read, rust_forward] = pair(measure_interleaved(repeats, &mut [&mut read, &mut rust_forward]));
        let [read_write, rust_both] = pair(measure_interleaved(repeats, &mut [&mut read_write, &mut rust_both]));
        let [torch_forward] = one(measure_interleaved(repeats, &mut [&mut torch_forward]));
        let [torch_both] = one(measure_interleaved(repeats, &mut [&mut torch_both]));
        measured.push(Round {
            forward: Pass {
                rust: rust_forward,
                libtorch: torch_forward,
                floor: read,
            },
            forward_backward: Pass {
                rust: rust_both,
                libtorch: torch_both,
                floor: read_write,
            },
        });
    }

    let row = |pass, of: fn(&Round) -> &Pass, torch_output: usize| {
        let passes: Vec<&Pass> = measured.iter().map(of).collect();
        let each = |f: &dyn Fn(&Pass) -> f64| passes.iter().map(|p| f(p)).collect::<Vec<f64>>();
        let speedups = each(&|p| p.libtorch.ms / p.rust.ms);
        let over_floor = each(&|p| p.rust.ms / p.floor.ms);
        let peak = |f: &dyn Fn(&Pass) -> usize| passes.iter().map(|p| f(p)).max().unwrap_or(0) as u64;
        Row {
            shape: shape.name.to_string(),
            dtype: shape.dtype.name(),
            pass,
            threads,
            cpu: machine.cpu.clone(),
            simd: machine.simd,
            aten_capability: machine.aten_capability,
            rounds: passes.len(),
            rust_ms: median(each(&|p| p.rust.ms)),
            libtorch_ms: median(each(&|p| p.libtorch.ms)),
            speedup: median(speedups.clone()),
            speedup_range: range(&speedups),
            floor_ms: median(each(&|p| p.floor.ms)),
            rust_over_floor: median(over_floor.clone()),
            rust_over_floor_range: range(&over_floor),
            rust_peak_extra_bytes: peak(&|p| p.rust.rust_bytes),
            // libtorch's gradient is its output, as our preallocated `out` is ours.
            libtorch_peak_extra_bytes: peak(&|p| p.libtorch.resident_bytes.saturating_sub(torch_output)),
        }
    };
    Ok([
        row("forward", |r| &r.forward, 0),
        row("forward_backward", |r| &r.forward_backward, grad_bytes),
    ])
}

/// One pass's measurements in one round.
struct Pass {
    rust: Measured,
    libtorch: Measured,
    floor: Measured,
}

/// One round of a shape: both passes.
struct Round {
    forward: Pass,
    forward_backward: Pass,
}

/// The median (the upper one of an even count, as `measure_interleaved`'s).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The smallest and the largest value.
fn range(values: &[f64]) -> [f64; 2] {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [min, max]
}

pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    let threads = match args.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(args.repeats >= 1, "--repeats must be at least 1");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("starting the thread pool")?;
    tch::set_num_threads(threads as i32);
    set_simd_level(args.simd.map(|level| match level {
        Level::Scalar => SimdLevel::Scalar,
        Level::Avx2 => SimdLevel::Avx2,
        Level::Avx512 => SimdLevel::Avx512,
    }));
    let machine = Machine::describe();
    let mut rows = Vec::new();
    for shape in &SHAPES {
        if args.only.as_ref().is_some_and(|o| !shape.name.contains(o.as_str())) {
            continue;
        }
        if args.format == Format::Human {
            eprintln!("bench: {} {} ...", shape.name, shape.dtype.name());
        }
        rows.extend(bench_shape(shape, threads, args.repeats, args.rounds, &machine)?);
    }
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Human => print_table(&machine, threads, args.rounds, &rows)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_table(machine: &Machine, threads: usize, rounds: usize, rows: &[Row]) -> std::io::Result<()> {
    outln!(
        "cpu: {}; Rust SIMD level: {}; threads: {threads}; libtorch ATen capability: {}",
        machine.cpu,
        machine.simd,
        machine.aten_capability
    )?;
    outln!("medians of {rounds} rounds; the ranges are the rounds' smallest and largest ratios")?;
    outln!(
        "{:<18} {:<9} {:<16} {:>9} {:>11} {:>8} {:>11} {:>9} {:>10} {:>11} {:>9} {:>12}",
        "shape",
        "dtype",
        "pass",
        "rust_ms",
        "libtorch_ms",
        "speedup",
        "range",
        "floor_ms",
        "rust/floor",
        "range",
        "rust_MB",
        "libtorch_MB"
    )?;
    let span = |[low, high]: [f64; 2], digits: usize, unit: &str| format!("{low:.digits$}{unit}-{high:.digits$}{unit}");
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    for r in rows {
        outln!(
            "{:<18} {:<9} {:<16} {:>9.1} {:>11.1} {:>7.1}x {:>11} {:>9.1} {:>10.2} {:>11} {:>9.2} {:>12.1}",
            r.shape,
            r.dtype,
            r.pass,
            r.rust_ms,
            r.libtorch_ms,
            r.speedup,
            span(r.speedup_range, 1, "x"),
            r.floor_ms,
            r.rust_over_floor,
            span(r.rust_over_floor_range, 2, ""),
            mb(r.rust_peak_extra_bytes),
            mb(r.libtorch_peak_extra_bytes)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{median, range};

    #[test]
    fn a_round_of_load_moves_the_range_not_the_median() {
        // Three rounds' speedups, one of them under a burst of load.
        let speedups = vec![7.1, 2.3, 6.8];
        assert_eq!(median(speedups.clone()), 6.8);
        assert_eq!(range(&speedups), [2.3, 7.1]);
        // An even count takes the upper middle, as the per-turn median does.
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(Vec::new()).is_nan());
    }
}
