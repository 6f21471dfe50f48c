//! The fused kernel for f32 and f64 input, both kinds of target.
//!
//! libtorch's CPU path makes about four passes over the N×C logits in forward
//! (log_softmax's max and exp-sum, the write of an N×C log-probability
//! tensor, the nll gather and the smoothing sum) and as many again backward.
//! Here each position is read once from memory and swept again while it sits
//! in cache: the max, then the exponentials with their sum and the linear sum
//! L that smoothing and probability targets need; for the gradient the
//! exponentials are written to the output and scaled there in place. Forward
//! needs O(N) extra memory: one pair of terms per position.
//!
//! Determinism: every position is computed alone, in fixed blocks, and the
//! positions' terms are summed pairwise in a fixed order afterwards
//! (`forward::reduce`), so results depend neither on the thread count nor on
//! the instruction set.
//!
//! Positions that are not finite go to the reference kernel (`fallback.rs`).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod classes;
mod fallback;
pub(super) mod half;
mod kdim;
mod lanes;
mod probabilities;
mod spare;
#[cfg(test)]
mod tests;

use rayon::prelude::*;

use super::element::Element;
use super::formulas::Formulas;
use super::input::Target;
use super::options::Reduction;
use super::outputs::Gradients;
use super::problem::{Problem, Targets};
use crate::tensor::DType;
use classes::Classes;
pub(crate) use lanes::Lane;
use lanes::{PackedTile, TileStats, TILE};
use probabilities::Probabilities;
use spare::Spare;

/// The upstream gradient: one value per position (`none`) or one in all.
#[derive(Clone, Copy)]
pub(super) struct Upstream<'a> {
    values: &'a [f64],
    formulas: Formulas,
}

impl Upstream<'_> {
    fn at(&self, p: usize) -> f64 {
        self.formulas.upstream_at(self.values, p)
    }

    /// The upstream gradient every position shares when the loss is reduced.
    fn shared(&self) -> Option<f64> {
        self.formulas.shared_upstream(self.values)
    }
}

/// Buffers a task reuses across its positions.
pub(super) struct Scratch<T> {
    /// Per-element coefficients of L (probability targets).
    coef: Vec<T>,
    /// A K-dim tile's logits, then exponentials.
    tile: PackedTile<T>,
    /// The next K-dim tile, copied during the sweep of `tile`.
    next_tile: PackedTile<T>,
    /// Which tile `next_tile` holds (its block's address, first position
    /// and width), and its first column not yet copied.
    next_at: Option<((usize, usize, usize), usize)>,
    /// A K-dim tile's statistics.
    stats: TileStats,
    /// A class-target K-dim tile's targets, flags and gradient scales.
    kdim: Box<kdim::TileBuffers<T>>,
}

impl<T: Lane> spare::Reusable for Scratch<T> {
    /// The next tile that the last task copied: the same block address and
    /// position in the next call may hold other logits.
    fn forget(&mut self) {
        self.next_at = None;
    }
}

impl<T: Lane> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            coef: Vec::new(),
            tile: PackedTile::new(),
            next_tile: PackedTile::new(),
            next_at: None,
            stats: TileStats::new(),
            kdim: kdim::TileBuffers::new(),
        }
    }
}

/// One kind of target: a position's terms and, when asked, its gradient.
trait Kernel<T>: Sync {
    /// Position `p` with contiguous classes `x`; with `grad`, its gradient
    /// goes to the slice (the row's length) for upstream value g. `next` is
    /// the next row (or empty), to prefetch.
    fn row(&self, p: usize, x: &[T], next: &[T], grad: Option<(&mut [T], f64)>, scratch: &mut Scratch<T>)
        -> (f64, f64);
    /// Positions s0..s0+terms.len() of batch `b`, whose (C, S) block is
    /// `block`, into `terms` (every one); with `grad`, their gradient goes
    /// to the block's slice. `next` is the width of the tile that the
    /// caller asks for next, right after this one (0: none), which the
    /// kernel may start copying.
    #[allow(clippy::too_many_arguments)]
    fn tile(
        &self,
        b: usize,
        block: &[T],
        s0: usize,
        next: usize,
        grad: Option<(&mut [T], Upstream<'_>)>,
        terms: &mut [(f64, f64)],
        scratch: &mut Scratch<T>,
    );
}

/// Pairwise sums of both halves of the terms, in a fixed order (independent
/// of how the terms were computed): a node of more than [`LEAF`] terms is
/// the sum of its halves (the left one n/2 long), a leaf the sum of its
/// terms in order from 0.
pub(crate) fn pairwise_sum(terms: &[(f64, f64)]) -> (f64, f64) {
    let n = terms.len();
    if n <= LEAF {
        return leaf_sum(terms);
    }
    // LEAF·2^k terms halve exactly down to whole leaves: the same tree
    // without recursion, leaves first, then the levels above them.
    if n <= FLAT && n.is_multiple_of(LEAF) && (n / LEAF).is_power_of_two() {
        let mut sums = [(0.0, 0.0); FLAT / LEAF];
        let mut count = n / LEAF;
        leaf_sums(terms, &mut sums[..count]);
        while count > 1 {
            count /= 2;
            for i in 0..count {
                sums[i] = (sums[2 * i].0 + sums[2 * i + 1].0, sums[2 * i].1 + sums[2 * i + 1].1);
            }
        }
        return sums[0];
    }
    let mid = n / 2;
    let (left, right) = (pairwise_sum(&terms[..mid]), pairwise_sum(&terms[mid..]));
    (left.0 + right.0, left.1 + right.1)
}

/// A leaf of [`pairwise_sum`]'s tree: its terms in order from 0.
fn leaf_sum(terms: &[(f64, f64)]) -> (f64, f64) {
    terms.iter().fold((0.0, 0.0), |(a, b), t| (a + t.0, b + t.1))
}

/// Terms per leaf of [`pairwise_sum`]'s tree.
const LEAF: usize = 8;

/// The largest node that [`pairwise_sum`] sums without recursion (its leaf
/// sums on the stack: 8 KiB); a K-dim job's terms are one such node.
const FLAT: usize = 4096;

/// Each leaf's sum (`terms` holds `sums.len()` whole leaves), eight leaves
/// at a time: eight independent chains of additions instead of one, and on
/// x86-64 a term's two halves in one SSE2 addition (the same two sums).
fn leaf_sums(terms: &[(f64, f64)], sums: &mut [(f64, f64)]) {
    let mut leaves = terms.chunks_exact(8 * LEAF);
    let mut out = sums.chunks_exact_mut(8);
    for (t, s) in (&mut leaves).zip(&mut out) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_add_pd, _mm_set_pd, _mm_setzero_pd, _mm_storeu_pd};
            // SAFETY: SSE2 is baseline on x86-64; `pair` holds the two f64 stored.
            unsafe {
                let mut acc = [_mm_setzero_pd(); 8];
                for k in 0..LEAF {
                    for l in 0..8 {
                        let v = t[l * LEAF + k];
                        acc[l] = _mm_add_pd(acc[l], _mm_set_pd(v.1, v.0));
                    }
                }
                for l in 0..8 {
                    let mut pair = [0.0; 2];
                    _mm_storeu_pd(pair.as_mut_ptr(), acc[l]);
                    s[l] = (pair[0], pair[1]);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for l in 0..8 {
            s[l] = leaf_sum(&t[l * LEAF..(l + 1) * LEAF]);
        }
    }
    // Fewer than eight leaves (a node of under 64 terms).
    for (t, s) in leaves.remainder().chunks_exact(LEAF).zip(out.into_remainder()) {
        *s = leaf_sum(t);
    }
}

/// K-dim tiles per parallel job within a batch's forward: [`JOB`] stays
/// 4096 positions whatever the tile, as the pairwise sums' tree splits at
/// jobs, so the tile's size does not change the results' bits.
const TILES_PER_JOB: usize = 32;

/// Positions per parallel job within a batch's forward.
const JOB: usize = TILE * TILES_PER_JOB;

/// Job `job`'s positions of batch `task` (block `block`, `inner` positions)
/// into `slots`, in tiles that follow the logits' 64-byte lines
/// ([`LineTiles`]): a group of positions that straddles two lines makes
/// each of the sweep's copies from the block touch two lines (measured at
/// the AVX2 level, one thread: the forward 4–7 % slower with the logits 16
/// bytes past a line, as a large `Vec` is). The last tile
/// asks for the next job's first one too: the thread usually takes that
/// job next, and its copy is then ready.
fn kdim_job<T: Lane>(
    kernel: &dyn Kernel<T>,
    task: usize,
    block: &[T],
    inner: usize,
    job: usize,
    slots: &mut [(f64, f64)],
    scratch: &mut Scratch<T>,
) {
    let first = job * JOB;
    let tiles = LineTiles::new(block, inner, first, JOB);
    let mut s0 = first;
    while s0 < first + slots.len() {
        let end = tiles.end(s0);
        let next = tiles.end(end) - end;
        kernel.tile(
            task,
            block,
            s0,
            next,
            None,
            &mut slots[s0 - first..end - first],
            scratch,
        );
        s0 = end;
    }
}

/// Whether [`pairwise_sum`] over `n` terms halves exactly down to nodes of
/// [`JOB`] terms: then each job's own pairwise sum is one of its nodes.
fn splits_at_jobs(n: usize) -> bool {
    n.is_multiple_of(JOB) && (n / JOB).is_power_of_two()
}

/// The pairwise sum of a batch's terms as [`pairwise_sum`] would give it,
/// from its jobs' own pairwise sums ([`splits_at_jobs`] must hold): the
/// same bits, with no per-batch buffer of terms (1 MiB at 256×256).
fn kdim_job_sums<T: Lane>(kernel: &dyn Kernel<T>, task: usize, block: &[T], inner: usize) -> (f64, f64) {
    let sums: Vec<(f64, f64)> = (0..inner / JOB)
        .into_par_iter()
        .map_init(
            || (Spare::<Scratch<T>>::take(), Spare::<Vec<(f64, f64)>>::take()),
            |(scratch, slots), job| {
                // Every slot is written, so a reused buffer needs no clearing.
                slots.resize(JOB, (0.0, 0.0));
                kdim_job(kernel, task, block, inner, job, slots, scratch);
                pairwise_sum(slots)
            },
        )
        .collect();
    halving_sum(&sums)
}

/// [`pairwise_sum`]'s upper levels over a power-of-two count of node sums.
fn halving_sum(sums: &[(f64, f64)]) -> (f64, f64) {
    if sums.len() == 1 {
        return sums[0];
    }
    let mid = sums.len() / 2;
    let (left, right) = (halving_sum(&sums[..mid]), halving_sum(&sums[mid..]));
    (left.0 + right.0, left.1 + right.1)
}

/// Rows per parallel task: enough work per task to amortise scheduling.
fn rows_per_task(classes: usize) -> usize {
    (131_072 / classes.max(1)).clamp(1, 1024)
}

/// The kernel for this problem's targets, with the input's element type.
fn with_kernel<E: Element, T: Lane, R>(
    problem: &Problem,
    target: &Target<'_, E>,
    run: impl FnOnce(&dyn Kernel<T>) -> R,
) -> Option<R> {
    match (&problem.targets, target) {
        (Targets::Classes(classes), _) => Some(run(&Classes::<T>::new(problem, *classes))),
        (Targets::Probabilities, Target::Probabilities(t)) => {
            Some(run(&Probabilities::<T>::new(problem, T::cast(t.data)?)))
        }
        _ => None,
    }
}

fn upstream<'a>(problem: &Problem, values: &'a [f64]) -> Upstream<'a> {
    Upstream {
        values,
        formulas: Formulas::of(problem),
    }
}

/// Per-position (nll, smoothing) terms under `none` (for probability targets
/// the loss is in `.0`), and under sum and mean their partial sums per task
/// (see [`TermsLayout`]). [`path::choose`](super::path::choose) decides
/// which inputs come here; None only when `E` is not f32 or f64.
pub(crate) fn forward_terms<E: Element>(problem: &Problem, x: &[E], target: &Target<'_, E>) -> Option<Vec<(f64, f64)>> {
    match E::DTYPE {
        DType::Float32 => forward_typed::<E, f32>(problem, f32::cast(x)?, target),
        _ => forward_typed::<E, f64>(problem, f64::cast(x)?, target),
    }
}

fn forward_typed<E: Element, T: Lane>(problem: &Problem, x: &[T], target: &Target<'_, E>) -> Option<Vec<(f64, f64)>> {
    with_kernel::<E, T, _>(problem, target, |kernel| {
        let (c, inner) = (problem.classes, problem.inner);
        // Row tasks hold `rows` rows, K-dim tasks one batch's (C, S) block.
        let rows = if inner == 1 { rows_per_task(c) } else { inner };
        let layout = TermsLayout::new(problem, rows);
        let mut terms = layout.buffer();
        terms.par_chunks_mut(layout.dest_len()).enumerate().for_each_init(
            || (Spare::<Scratch<T>>::take(), Vec::new()),
            |(scratch, local), (task, dest)| {
                let block = x.get(task * c * inner..(task + 1) * c * inner).unwrap_or(&[]);
                if inner > 1 && !layout.per_position && splits_at_jobs(inner) {
                    dest[0] = kdim_job_sums(kernel, task, block, inner);
                    return;
                }
                // Row tasks are shorter than a job, so `fill` hands over all
                // the slots at once (`first` is 0); K-dim ones split above.
                layout.fill(task, dest, local, |first, slots| {
                    debug_assert_eq!(first, 0);
                    if inner == 1 {
                        for (j, slot) in slots.iter_mut().enumerate() {
                            let p = task * rows + j;
                            let next = x.get((p + 1) * c..(p + 2) * c).unwrap_or(&[]);
                            *slot = kernel.row(p, &x[p * c..(p + 1) * c], next, None, scratch);
                        }
                    } else {
                        // The batch's tiles in parallel too: with few batches, whole
                        // batches would leave a thread idle at the end. Each
                        // position's terms are computed alone, so the bits are the same.
                        slots
                            .par_chunks_mut(JOB)
                            .enumerate()
                            .for_each_init(Spare::<Scratch<T>>::take, |scratch, (job, slots)| {
                                kdim_job(kernel, task, block, inner, job, slots, scratch)
                            });
                    }
                })
            },
        );
        terms
    })
}

/// Where the tasks put their positions' terms: each position's own under
/// `none`; under sum and mean one pairwise partial sum per task, in task
/// order, which `forward::reduce` then sums pairwise. The tasks are fixed
/// blocks of positions, so the result does not depend on the thread count,
/// and no per-position buffer is needed.
struct TermsLayout {
    per_position: bool,
    task_len: usize,
    positions: usize,
}

impl TermsLayout {
    fn new(problem: &Problem, task_len: usize) -> Self {
        TermsLayout {
            per_position: problem.reduction == Reduction::None,
            task_len,
            positions: problem.positions(),
        }
    }

    fn buffer(&self) -> Vec<(f64, f64)> {
        let len = match self.per_position {
            true => self.positions,
            false => self.positions.div_ceil(self.task_len),
        };
        vec![(0.0, 0.0); len]
    }

    /// The share of [`Self::buffer`] that each task writes.
    fn dest_len(&self) -> usize {
        match self.per_position {
            true => self.task_len,
            false => 1,
        }
    }

    /// Runs `fill(first, slots)`, which must write every slot, over the
    /// slots of task `task`'s positions from its `first` on, which are
    /// `dest` itself or a buffer in `local` whose pairwise sum goes to `dest`.
    /// When the pairwise tree splits at [`JOB`]s ([`splits_at_jobs`]), the
    /// buffer holds one job at a time and the jobs' sums are halved: the
    /// same bits from a buffer that stays in cache.
    fn fill(
        &self,
        task: usize,
        dest: &mut [(f64, f64)],
        local: &mut Vec<(f64, f64)>,
        mut fill: impl FnMut(usize, &mut [(f64, f64)]),
    ) {
        if self.per_position {
            return fill(0, dest);
        }
        let n = self.task_len.min(self.positions - task * self.task_len);
        let piece = if splits_at_jobs(n) { JOB } else { n };
        // `fill` writes every slot (the kernels do), so what an earlier task
        // left in `local` needs no clearing.
        if local.len() < piece {
            local.resize(piece, (0.0, 0.0));
        }
        let sums: Vec<(f64, f64)> = (0..n / piece)
            .map(|j| {
                fill(j * piece, &mut local[..piece]);
                pairwise_sum(&local[..piece])
            })
            .collect();
        dest[0] = halving_sum(&sums);
    }
}

/// Writes the gradient w.r.t. the input into `out` (shaped like `x`) and
/// returns the terms (as [`forward_terms`]) from the same visit; None when the fused
/// kernel does not take this input.
pub(crate) fn forward_backward_into<E: Element>(
    problem: &Problem,
    x: &[E],
    target: &Target<'_, E>,
    upstream_values: &[f64],
    out: &mut [E],
) -> Option<Vec<(f64, f64)>> {
    forward_backward_input(problem, Input::Separate(x, out), target, upstream_values)
}

/// As [`forward_backward_into`], overwriting the logits with the gradient.
pub(crate) fn forward_backward_in_place<E: Element>(
    problem: &Problem,
    logits: &mut [E],
    target: &Target<'_, E>,
    upstream_values: &[f64],
) -> Option<Vec<(f64, f64)>> {
    forward_backward_input(problem, Input::InPlace(logits), target, upstream_values)
}

/// Both entry points above, in the working type of the input's dtype.
fn forward_backward_input<E: Element>(
    problem: &Problem,
    input: Input<'_, E>,
    target: &Target<'_, E>,
    upstream_values: &[f64],
) -> Option<Vec<(f64, f64)>> {
    let up = upstream(problem, upstream_values);
    match E::DTYPE {
        DType::Float32 => with_kernel::<E, f32, _>(problem, target, |k| backward_typed(problem, k, input.cast()?, up))?,
        _ => with_kernel::<E, f64, _>(problem, target, |k| backward_typed(problem, k, input.cast()?, up))?,
    }
}

/// The gradients and the terms (as [`forward_terms`]).
pub(crate) type GradientsAndTerms<E> = (Gradients<E>, Vec<(f64, f64)>);

/// Loss terms and gradients (w.r.t. the input, and w.r.t. probability
/// targets) in a fresh buffer.
pub(crate) fn forward_backward<E: Element>(
    problem: &Problem,
    x: &[E],
    target: &Target<'_, E>,
    upstream_values: &[f64],
) -> Option<GradientsAndTerms<E>> {
    let mut input = vec![E::from_f64(0.0); x.len()];
    let terms = forward_backward_into(problem, x, target, upstream_values, &mut input)?;
    let target = match target {
        Target::Probabilities(_) => Some(target_gradient(problem, x, upstream_values)),
        _ => None,
    };
    Some((Gradients { input, target }, terms))
}

enum Input<'a, T> {
    Separate(&'a [T], &'a mut [T]),
    InPlace(&'a mut [T]),
}

impl<'a, E: Element> Input<'a, E> {
    /// The same buffers as the working type, when it is the element type.
    fn cast<T: Lane>(self) -> Option<Input<'a, T>> {
        Some(match self {
            Input::Separate(x, out) => Input::Separate(T::cast(x)?, T::cast_mut(out)?),
            Input::InPlace(logits) => Input::InPlace(T::cast_mut(logits)?),
        })
    }
}

fn backward_typed<T: Lane>(
    problem: &Problem,
    kernel: &dyn Kernel<T>,
    input: Input<'_, T>,
    up: Upstream<'_>,
) -> Option<Vec<(f64, f64)>> {
    let (c, inner) = (problem.classes, problem.inner);
    // Row tasks hold `rows` rows, K-dim tasks one batch's (C, S) block.
    let (rows, chunk) = if inner == 1 {
        (rows_per_task(c), rows_per_task(c) * c)
    } else {
        (inner, c * inner)
    };
    let layout = TermsLayout::new(problem, rows);
    let mut terms = layout.buffer();
    if problem.positions() == 0 {
        return Some(terms);
    }
    // `x` holds the task's logits and, for prefetching, possibly more after them.
    // Positions `first`.. of task `index` into `slots` (row tasks: all at once).
    let task =
        |index: usize, x: &[T], out: &mut [T], first: usize, slots: &mut [(f64, f64)], scratch: &mut Scratch<T>| {
            if inner == 1 {
                for (j, out_row) in out.chunks_mut(c).enumerate() {
                    let p = index * rows + j;
                    let next = x.get((j + 1) * c..(j + 2) * c).unwrap_or(&[]);
                    slots[j] = kernel.row(p, &x[j * c..(j + 1) * c], next, Some((out_row, up.at(p))), scratch);
                }
            } else {
                let block = &x[..out.len()];
                let tiles = LineTiles::new(out, inner, first, slots.len());
                let mut s0 = first;
                while s0 < first + slots.len() {
                    let end = tiles.end(s0);
                    let next = tiles.end(end) - end;
                    let tile = &mut slots[s0 - first..end - first];
                    kernel.tile(index, block, s0, next, Some((&mut *out, up)), tile, scratch);
                    s0 = end;
                }
            }
        };
    match input {
        Input::Separate(x, out) => out
            .par_chunks_mut(chunk)
            .zip(terms.par_chunks_mut(layout.dest_len()))
            .enumerate()
            .for_each_init(
                || (Spare::<Scratch<T>>::take(), Vec::new()),
                |(scratch, local), (i, (out, dest))| {
                    layout.fill(i, dest, local, |first, slots| {
                        task(i, &x[i * chunk..], out, first, slots, scratch)
                    })
                },
            ),
        // The kernel reads each task's logits from a copy in cache while it
        // writes the gradient over them: one chunk per thread of extra memory.
        Input::InPlace(logits) => logits
            .par_chunks_mut(chunk)
            .zip(terms.par_chunks_mut(layout.dest_len()))
            .enumerate()
            .for_each_init(
                || (Vec::new(), Spare::<Scratch<T>>::take(), Vec::new()),
                |(copy, scratch, local), (i, (data, dest))| {
                    copy.clear();
                    copy.extend_from_slice(data);
                    layout.fill(i, dest, local, |first, slots| {
                        task(i, copy, data, first, slots, scratch)
                    })
                },
            ),
    }
    Some(terms)
}

/// Where a K-dim task's tiles end: every [`TILE`] positions from where the
/// class runs of a block (the gradient when it is written, else the
/// logits) start on a 64-byte line, and at the ends of its pieces of
/// `piece` positions (a forward's jobs, or the slots that
/// `TermsLayout::fill` hands over) and of the block. The tiles' groups then
/// take whole lines: the gradient's streaming stores (a line that a tile
/// shared with the next would take a plain store, which first reads the
/// line from memory and holds up every store after it meanwhile), and the
/// forward's copies of the logits. Each position's terms are computed
/// alone, so where the tiles end does not change the bits.
struct LineTiles {
    /// Positions before a run's first line boundary (< 16; 0 when the
    /// classes' runs do not all start alike).
    lead: usize,
    piece: usize,
    inner: usize,
}

impl LineTiles {
    /// For the block `lines` (classes `inner` apart), pieces of `piece`
    /// positions from position `first` (a multiple of `piece`).
    fn new<T>(lines: &[T], inner: usize, first: usize, piece: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let lead = match (inner * size).is_multiple_of(64) && (lines.as_ptr() as usize).is_multiple_of(size) {
            true => (64 - lines.as_ptr() as usize % 64) % 64 / size,
            false => 0,
        };
        debug_assert!(first.is_multiple_of(piece.max(1)));
        LineTiles {
            lead: lead % TILE,
            piece: piece.max(1),
            inner,
        }
    }

    /// The end of the tile that starts at s0 (s0 itself at the block's end).
    fn end(&self, s0: usize) -> usize {
        let to_line = TILE - (s0 + TILE - self.lead) % TILE;
        (s0 + to_line)
            .min((s0 / self.piece + 1) * self.piece)
            .min(self.inner)
            .max(s0)
    }
}

/// The gradient w.r.t. probability targets: s·(1−ε)·w_c·lp_c per position,
/// in f64 per position (this output is not on the kernel's hot path).
fn target_gradient<E: Element>(problem: &Problem, x: &[E], upstream_values: &[f64]) -> Vec<E> {
    let up = upstream(problem, upstream_values);
    let (c, inner) = (problem.classes, problem.inner);
    let formulas = Formulas::of(problem);
    let (keep, _) = formulas.keep_and_spread();
    let mut out = vec![E::from_f64(0.0); x.len()];
    out.par_chunks_mut(c * inner).enumerate().for_each(|(b, block)| {
        let mut lp = vec![0.0; c];
        for s in 0..inner {
            let p = b * inner + s;
            for (k, v) in lp.iter_mut().enumerate() {
                *v = x[b * c * inner + k * inner + s].to_f64();
            }
            super::kernel::log_softmax_in_place(&mut lp);
            let scale = formulas.probability_scale(up.at(p));
            for k in 0..c {
                let w = problem.weight.as_ref().map_or(1.0, |w| w[k]);
                block[k * inner + s] = E::from_f64(scale * w * lp[k] * keep);
            }
        }
    });
    out
}
