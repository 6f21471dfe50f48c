//! Shrinking a failing case: try smaller or simpler variants — fewer rows,
//! classes and spatial dims, options dropped one at a time, simpler values —
//! and keep the first one that still fails, until none does.
//!
//! Values are simplified in bulk as well as one by one: a whole tensor, then
//! its halves, quarters, … down to single elements are set to a simple value
//! (logits and targets 0, weights and upstream gradients 1), so a failure
//! that needs a few elements of a long row (a −inf logit, a target) keeps
//! those and loses the rest, even where removing classes would move them to
//! another SIMD lane. ε steps to 0.1, 0.25, 0.5 or 0.01, and probability
//! targets that were distributions stay distributions when classes go.
//!
//! Every edit moves one way (smaller, or closer to a default), so the search
//! ends. Edits are data and applied lazily, so a case with 100 000 classes
//! costs a list of small edits, not 200 000 copies of itself. Coarse edits
//! of every kind come before fine ones: removing half of the rows or
//! classes, dropping an option or filling a whole tensor, then quarters, and
//! so on (see `Order`), so the size falls fast and value edits are reached
//! even when a long row's 22 000 fine chunks would outlast the budget. Blocks
//! are powers of two, aligned, so removing one keeps the lane of every later
//! index. After an edit is kept the search goes on from there, not from the
//! halves again (on a long row the halves that failed once mostly fail
//! again). Classes are also dropped least likely first (smallest logit),
//! which keeps what the softmax is made of when the failure needs the row's
//! large logits.

use std::cmp::Reverse;

use super::slice::{select, squeeze, without};
use crate::fixtures::{Case, LossKind};
use crate::loss::{Reduction, DEFAULT_IGNORE_INDEX};
use crate::tensor::{DType, Data, Tensor};

/// Simple values of ε, tried in this order where below the case's own.
const SIMPLE_SMOOTHING: [f64; 4] = [0.1, 0.25, 0.5, 0.01];

/// The result of shrinking.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing case found.
    pub case: Case,
    /// How many candidates were tried.
    pub evaluations: usize,
    /// How many of them were accepted.
    pub steps: usize,
}

/// Shrinks `case` while `fails` holds, trying at most `budget` candidates
/// (the case itself first); None when `case` does not fail, so a passing case
/// is never "shrunk" into some failing one.
///
/// Most callers want [`minimise`](super::minimise), which builds `fails`
/// from two implementations; this is the search itself, for any predicate.
///
/// ```
/// use ce_parity::fixtures::Case;
/// use ce_parity::fuzz::shrink;
/// use ce_parity::tensor::{DType, Tensor};
///
/// // 4 rows of 5 classes, "failing" while some logit exceeds 2.
/// let logits: Vec<f64> = (0..20).map(|i| i as f64 * 0.25).collect();
/// let case = Case::new(
///     "big",
///     Tensor::float(DType::Float64, vec![4, 5], logits),
///     Tensor::int(DType::Int64, vec![4], vec![0, 1, 2, 3]),
/// );
/// let fails = |c: &Case| c.input.to_f64().iter().any(|&x| x > 2.0);
/// let shrunk = shrink(&case, &fails, 1000).expect("the case fails");
/// assert!(fails(&shrunk.case));
/// assert!(shrunk.case.input.numel() < case.input.numel());
/// assert!(shrunk.steps > 0 && shrunk.evaluations >= shrunk.steps);
///
/// // A zero logit "fails"; these have none, and edits that make one do not count.
/// let case = Case { input: Tensor::float(DType::Float64, vec![4, 5], vec![0.5; 20]), ..case };
/// let fails = |c: &Case| c.input.to_f64().contains(&0.0);
/// assert!(shrink(&case, &fails, 1000).is_none());
/// ```
pub fn shrink(case: &Case, fails: &dyn Fn(&Case) -> bool, budget: usize) -> Option<Shrunk> {
    if budget == 0 || !fails(case) {
        return None;
    }
    let mut shrunk = search(case, fails, budget - 1);
    shrunk.evaluations += 1;
    Some(shrunk)
}

/// [`shrink`] of a case known to fail.
pub(super) fn search(case: &Case, fails: &dyn Fn(&Case) -> bool, budget: usize) -> Shrunk {
    let mut current = case.clone();
    let (mut evaluations, mut steps) = (0, 0);
    // The last edit kept: the next pass starts at its place in the order.
    let mut resume: Option<Order> = None;
    'search: loop {
        let mut list: Vec<(Order, Edit)> = edits(&current).into_iter().map(|e| (order(&e, &current), e)).collect();
        list.sort_by_key(|(order, _)| *order);
        let start = resume.map_or(0, |kept| {
            list.iter().position(|(order, _)| *order >= kept).unwrap_or(list.len())
        });
        for (place, edit) in &list[start..] {
            if evaluations >= budget {
                break 'search;
            }
            let Some(candidate) = apply(&current, edit) else {
                continue;
            };
            evaluations += 1;
            if fails(&candidate) {
                current = candidate;
                steps += 1;
                resume = Some(*place);
                continue 'search;
            }
        }
        if start == 0 {
            break; // a whole pass kept nothing: no edit helps any more
        }
        resume = None;
    }
    Shrunk {
        case: current,
        evaluations,
        steps,
    }
}

/// One way to make a case smaller or simpler.
#[derive(Clone, Debug, PartialEq)]
enum Edit {
    RemoveRows(usize, usize),
    /// Drop this many classes, those whose largest logit is smallest.
    RemoveLeastLikely(usize),
    RemoveClasses(usize, usize),
    /// Input axis (≥ 2) and the range of indices to remove.
    RemoveSpatial(usize, usize, usize),
    SqueezeSpatial(usize),
    DropWeight,
    DropGradOutput,
    NoSmoothing,
    SmoothingOneDecimal,
    Reduction(Reduction),
    DefaultIgnoreIndex,
    Int64Target,
    /// ε set to `SIMPLE_SMOOTHING[i]`.
    SmoothingTo(usize),
    RoundInput,
    /// Elements `a..b` (flat) of a part set to its simple value.
    Fill(Part, usize, usize),
    /// Each position's probabilities divided by their sum.
    NormaliseTargets,
    /// A `clip` case without the image–text pairs `a..b` (rows and columns).
    RemovePairs(usize, usize),
    /// A `clip` case without the unpaired texts `N + a..N + b` (columns).
    RemoveUnpairedTexts(usize, usize),
    /// A `clip` case with temperature 1.
    UnitTemperature,
    /// A `clip_step` case without the pairs `a..b` (rows of both embeddings).
    RemoveEmbeddingPairs(usize, usize),
    /// A `clip_step` case with logit_scale 0 (scale 1).
    ZeroLogitScale,
}

/// A tensor of a case whose values the shrinker simplifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Input,
    /// Class indices or probabilities.
    Target,
    Weight,
    GradOutput,
}

impl Part {
    /// The value its elements are simplified to: no logit or target, or a
    /// neutral weight and upstream gradient.
    fn simple(self) -> f64 {
        match self {
            Part::Input | Part::Target => 0.0,
            Part::Weight | Part::GradOutput => 1.0,
        }
    }

    fn of(self, case: &Case) -> Option<&Tensor> {
        match self {
            Part::Input => Some(&case.input),
            Part::Target => Some(&case.target),
            Part::Weight => case.weight.as_ref(),
            Part::GradOutput => case.grad_output.as_ref(),
        }
    }

    fn of_mut(self, case: &mut Case) -> Option<&mut Tensor> {
        match self {
            Part::Input => Some(&mut case.input),
            Part::Target => Some(&mut case.target),
            Part::Weight => case.weight.as_mut(),
            Part::GradOutput => case.grad_output.as_mut(),
        }
    }
}

/// An edit's place in the search: its level (0 for a single edit, a whole
/// tensor filled or half of something removed; then each halving one more),
/// its kind, then larger chunks first, then position. Levels come first so
/// that every kind of edit gets its coarse tries before any kind spends the
/// budget on fine ones (a row of 11 009 classes has 22 000 chunks, more than
/// the budget).
type Order = (u32, u8, usize, Reverse<usize>, usize);

fn order(edit: &Edit, case: &Case) -> Order {
    let size = |t: Option<&Tensor>, axis: usize| t.and_then(|t| t.shape.get(axis).copied()).unwrap_or(0);
    let input = Some(&case.input);
    let classes = size(input, class_axis(case));
    let part = |p: Part| p.of(case).map_or(0, Tensor::len);
    let chunk =
        |kind: u8, sub: usize, a: usize, b: usize, size: usize| (level(b - a, size), kind, sub, Reverse(b - a), a);
    // Removing half of something is as coarse as filling a whole tensor, and
    // makes every later try cheaper: it comes first.
    let remove = |kind: u8, sub: usize, a: usize, b: usize, size: usize| {
        let (level, kind, sub, len, a) = chunk(kind, sub, a, b, size);
        (level.saturating_sub(1), kind, sub, len, a)
    };
    let at = |kind: u8, i: usize| (0, kind, 0, Reverse(0), i);
    match *edit {
        Edit::RemoveRows(a, b) => remove(0, 0, a, b, size(input, 0)),
        Edit::SqueezeSpatial(axis) => at(1, axis),
        Edit::RemoveSpatial(axis, a, b) => remove(1, axis, a, b, size(input, axis)),
        Edit::RemoveLeastLikely(count) => remove(2, 0, 0, count, classes),
        Edit::RemoveClasses(a, b) => remove(3, 0, a, b, classes),
        Edit::RemovePairs(a, b) => remove(0, 0, a, b, size(input, 0)),
        Edit::RemoveUnpairedTexts(a, b) => {
            let unpaired = size(input, 1).saturating_sub(size(input, 0));
            remove(1, 0, a, b, unpaired)
        }
        Edit::RemoveEmbeddingPairs(a, b) => remove(0, 0, a, b, size(input, 0)),
        Edit::ZeroLogitScale => at(5, 4),
        Edit::DropWeight => at(4, 0),
        Edit::DropGradOutput => at(5, 0),
        Edit::NoSmoothing => at(5, 1),
        Edit::SmoothingOneDecimal => at(5, 2),
        Edit::UnitTemperature => at(5, 3),
        Edit::SmoothingTo(i) => at(5, 5 + i),
        Edit::Reduction(r) => at(6, r as usize),
        Edit::DefaultIgnoreIndex => at(7, 0),
        Edit::Int64Target => at(8, 0),
        Edit::RoundInput => at(9, 0),
        Edit::Fill(Part::Input, a, b) => chunk(10, 0, a, b, part(Part::Input)),
        Edit::Fill(Part::Target, a, b) => chunk(11, 0, a, b, part(Part::Target)),
        Edit::NormaliseTargets => at(12, 0),
        Edit::Fill(Part::Weight, a, b) => chunk(13, 0, a, b, part(Part::Weight)),
        Edit::Fill(Part::GradOutput, a, b) => chunk(14, 0, a, b, part(Part::GradOutput)),
    }
}

/// How many halvings from `size` down to chunks of `len`: 0 for the whole,
/// 1 for halves (the last one may be shorter), and so on.
fn level(len: usize, size: usize) -> u32 {
    let bits = |n: usize| n.max(1).next_power_of_two().trailing_zeros();
    bits(size).saturating_sub(bits(len))
}

/// Blocks of 2^k indices of `0..size`, aligned at multiples of 2^k, from
/// the largest power of two below `size` down to single indices: halves,
/// quarters, … Removing an aligned block of 2^k keeps every later index's
/// place modulo 2^k, so a failure tied to a SIMD lane survives it.
fn chunks(size: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut len = size.next_power_of_two() / 2;
    while len >= 1 {
        let mut start = 0;
        while start < size {
            out.push((start, (start + len).min(size)));
            start += len;
        }
        len /= 2;
    }
    out
}

fn class_axis(case: &Case) -> usize {
    usize::from(case.input.shape.len() != 1)
}

fn is_probability_target(case: &Case) -> bool {
    case.target.dtype.is_float() && case.target.shape == case.input.shape
}

/// Every edit worth trying on `case`, most shrinking first.
fn edits(case: &Case) -> Vec<Edit> {
    if let LossKind::Clip { temperature } = case.loss {
        return clip_edits(case, temperature);
    }
    if let LossKind::ClipStep { logit_scale } = case.loss {
        return clip_step_edits(case, logit_scale);
    }
    let shape = &case.input.shape;
    let mut out = Vec::new();
    if shape.len() >= 2 && shape[0] > 1 {
        out.extend(chunks(shape[0]).into_iter().map(|(a, b)| Edit::RemoveRows(a, b)));
    }
    for axis in 2..shape.len() {
        if shape[axis] == 1 {
            out.push(Edit::SqueezeSpatial(axis));
        } else {
            out.extend(
                chunks(shape[axis])
                    .into_iter()
                    .map(|(a, b)| Edit::RemoveSpatial(axis, a, b)),
            );
        }
    }
    if let Some(&classes) = shape.get(class_axis(case)) {
        if classes > 1 {
            out.extend(counts(classes).into_iter().map(Edit::RemoveLeastLikely));
            out.extend(chunks(classes).into_iter().map(|(a, b)| Edit::RemoveClasses(a, b)));
        }
    }
    if case.weight.is_some() {
        out.push(Edit::DropWeight);
    }
    out.extend(option_edits(case));
    // One way only (none → sum → mean, the default), so edits cannot cycle.
    match case.reduction {
        Reduction::None => out.extend([Edit::Reduction(Reduction::Mean), Edit::Reduction(Reduction::Sum)]),
        Reduction::Sum => out.push(Edit::Reduction(Reduction::Mean)),
        Reduction::Mean => {}
    }
    if case.ignore_index != DEFAULT_IGNORE_INDEX {
        out.push(Edit::DefaultIgnoreIndex);
    }
    if case.target.dtype == DType::UInt8 {
        out.push(Edit::Int64Target);
    }
    out.push(Edit::RoundInput);
    out.extend(fills(case, Part::Input));
    let probabilities = is_probability_target(case);
    if probabilities || !case.target.dtype.is_float() {
        out.extend(fills(case, Part::Target));
    }
    let unnormalised = |t: &Tensor| to_normalise(t, class_axis(case)).is_some_and(|s| s.iter().any(Option::is_some));
    if probabilities && unnormalised(&case.target) {
        out.push(Edit::NormaliseTargets);
    }
    out.extend(fills(case, Part::Weight));
    out.extend(fills(case, Part::GradOutput));
    out
}

/// Dropping the upstream gradient and simplifying ε, which every loss has.
fn option_edits(case: &Case) -> Vec<Edit> {
    let mut out = Vec::new();
    if case.grad_output.is_some() {
        out.push(Edit::DropGradOutput);
    }
    if case.label_smoothing != 0.0 {
        out.push(Edit::NoSmoothing);
        // A simple ε only goes to 0, so that the steps cannot cycle (0.25 → 0.3 → 0.25).
        if !SIMPLE_SMOOTHING.contains(&case.label_smoothing) {
            if (case.label_smoothing * 10.0).round() / 10.0 != case.label_smoothing {
                out.push(Edit::SmoothingOneDecimal);
            }
            for (i, &simple) in SIMPLE_SMOOTHING.iter().enumerate() {
                if simple < case.label_smoothing {
                    out.push(Edit::SmoothingTo(i));
                }
            }
        }
    }
    out
}

/// A `clip` case keeps its pairs aligned: images and their texts go together,
/// and the targets stay the diagonal.
fn clip_edits(case: &Case, temperature: f64) -> Vec<Edit> {
    let (n, m) = match case.input.shape[..] {
        [n, m] => (n, m),
        _ => (0, 0),
    };
    let mut out = Vec::new();
    if n > 1 {
        out.extend(chunks(n).into_iter().map(|(a, b)| Edit::RemovePairs(a, b)));
    }
    if m > n {
        // All of them first: a square case is the simplest.
        out.push(Edit::RemoveUnpairedTexts(0, m - n));
        out.extend(chunks(m - n).into_iter().map(|(a, b)| Edit::RemoveUnpairedTexts(a, b)));
    }
    out.extend(option_edits(case));
    if temperature != 1.0 {
        out.push(Edit::UnitTemperature);
    }
    out.push(Edit::RoundInput);
    out.extend(fills(case, Part::Input));
    out.extend(fills(case, Part::GradOutput));
    out
}

/// A `clip_step` case drops whole pairs (an image and its text together).
fn clip_step_edits(case: &Case, logit_scale: f64) -> Vec<Edit> {
    let mut out = Vec::new();
    let n = case.input.shape.first().copied().unwrap_or(0);
    if n > 1 && case.input.shape.len() == 2 && case.target.shape.first() == Some(&n) {
        out.extend(chunks(n).into_iter().map(|(a, b)| Edit::RemoveEmbeddingPairs(a, b)));
    }
    out.extend(option_edits(case));
    if logit_scale != 0.0 {
        out.push(Edit::ZeroLogitScale);
    }
    out.push(Edit::RoundInput);
    out.extend(fills(case, Part::Input));
    out.extend(fills(case, Part::GradOutput));
    out
}

/// The whole of a part, then its halves, quarters, … down to single
/// elements, set to the part's simple value; nothing when it is all simple.
fn fills(case: &Case, part: Part) -> Vec<Edit> {
    let Some(t) = part.of(case) else {
        return Vec::new();
    };
    let n = t.len();
    if !differs(t, part.simple(), 0, n) {
        return Vec::new();
    }
    std::iter::once((0, n))
        .chain(chunks(n))
        .map(|(a, b)| Edit::Fill(part, a, b))
        .collect()
}

/// Whether some element of `a..b` (flat) is not `simple` (NaN never is).
fn differs(t: &Tensor, simple: f64, a: usize, b: usize) -> bool {
    match &t.data {
        Data::Float(v) => v.get(a..b).is_some_and(|v| v.iter().any(|&x| x != simple)),
        Data::Int(v) => v.get(a..b).is_some_and(|v| v.iter().any(|&x| x as f64 != simple)),
    }
}

/// Elements `a..b` (flat) set to `simple`.
fn fill(t: &mut Tensor, a: usize, b: usize, simple: f64) -> Option<()> {
    match &mut t.data {
        Data::Float(v) => v.get_mut(a..b)?.fill(t.dtype.round(simple)),
        Data::Int(v) => v.get_mut(a..b)?.fill(simple as i64),
    }
    Some(())
}

/// How far a position's probabilities may sum from 1 and still count as a
/// distribution: the dtype's rounding over many classes.
fn sum_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::Float16 => 1e-2,
        DType::BFloat16 => 5e-2,
        DType::Float32 => 1e-5,
        _ => 1e-9,
    }
}

/// Each position's sum over the classes along `axis` (classes of one
/// position lie `inner` apart), in position order.
fn position_sums(t: &Tensor, axis: usize) -> Option<Vec<f64>> {
    let values = t.as_f64()?;
    let classes = *t.shape.get(axis)?;
    let inner: usize = t.shape[axis + 1..].iter().product();
    let outer: usize = t.shape[..axis].iter().product();
    let mut sums = vec![0.0; outer * inner];
    for (i, &v) in values.iter().enumerate() {
        let (o, s) = (i / (classes * inner), i % inner);
        sums[o * inner + s] += v;
    }
    Some(sums)
}

/// Divides the probabilities of each position with `Some(sum)` by it,
/// rounding to the dtype.
fn rescale(t: &mut Tensor, axis: usize, sums: &[Option<f64>]) -> Option<()> {
    let classes = *t.shape.get(axis)?;
    let inner: usize = t.shape[axis + 1..].iter().product();
    let dtype = t.dtype;
    let Data::Float(values) = &mut t.data else {
        return None;
    };
    for (i, v) in values.iter_mut().enumerate() {
        let position = (i / (classes * inner)) * inner + i % inner;
        if let Some(sum) = sums.get(position)? {
            *v = dtype.round(*v / sum);
        }
    }
    Some(())
}

/// The sums of the positions to normalise: those positive, finite and not 1.
fn to_normalise(t: &Tensor, axis: usize) -> Option<Vec<Option<f64>>> {
    let tolerance = sum_tolerance(t.dtype);
    let sums = position_sums(t, axis)?;
    Some(
        sums.into_iter()
            .map(|s| (s > 0.0 && s.is_finite() && (s - 1.0).abs() > tolerance).then_some(s))
            .collect(),
    )
}

/// The case with `edit` applied; None when it does not apply.
fn apply(case: &Case, edit: &Edit) -> Option<Case> {
    // Most fills of a long row change nothing; find out before copying the case.
    if let Edit::Fill(part, a, b) = *edit {
        if !differs(part.of(case)?, part.simple(), a, b) {
            return None;
        }
    }
    let mut c = case.clone();
    match *edit {
        Edit::RemoveRows(a, b) => {
            let keep = without(case.input.shape[0], a, b);
            c.input = select(&case.input, 0, &keep)?;
            if !case.target.shape.is_empty() {
                c.target = select(&case.target, 0, &keep)?;
            }
            if case.reduction == Reduction::None {
                c.grad_output = match &case.grad_output {
                    Some(g) => Some(select(g, 0, &keep)?),
                    None => None,
                };
            }
        }
        Edit::RemoveSpatial(axis, a, b) => {
            let keep = without(case.input.shape[axis], a, b);
            c.input = select(&case.input, axis, &keep)?;
            let target_axis = if is_probability_target(case) { axis } else { axis - 1 };
            c.target = select(&case.target, target_axis, &keep)?;
            if case.reduction == Reduction::None {
                c.grad_output = match &case.grad_output {
                    Some(g) => Some(select(g, axis - 1, &keep)?),
                    None => None,
                };
            }
        }
        Edit::SqueezeSpatial(axis) => {
            c.input = squeeze(&case.input, axis)?;
            let target_axis = if is_probability_target(case) { axis } else { axis - 1 };
            c.target = squeeze(&case.target, target_axis)?;
            if case.reduction == Reduction::None {
                c.grad_output = match &case.grad_output {
                    Some(g) => Some(squeeze(g, axis - 1)?),
                    None => None,
                };
            }
        }
        Edit::RemoveClasses(a, b) => remove_classes(&mut c, &(a..b).collect::<Vec<_>>())?,
        Edit::RemoveLeastLikely(count) => {
            let removed = least_likely(case, count)?;
            remove_classes(&mut c, &removed)?
        }
        Edit::DropWeight => c.weight = None,
        Edit::DropGradOutput => c.grad_output = None,
        Edit::NoSmoothing => c.label_smoothing = 0.0,
        Edit::SmoothingOneDecimal => c.label_smoothing = (case.label_smoothing * 10.0).round() / 10.0,
        Edit::Reduction(r) => {
            c.reduction = r;
            // A reduced loss takes a 0-d upstream gradient; keep its first value.
            if case.reduction == Reduction::None {
                c.grad_output = match &case.grad_output {
                    Some(g) => Some(Tensor::scalar(g.dtype, *g.as_f64()?.first()?)),
                    None => None,
                };
            }
        }
        Edit::DefaultIgnoreIndex => c.ignore_index = DEFAULT_IGNORE_INDEX,
        Edit::Int64Target => c.target.dtype = DType::Int64,
        Edit::RoundInput => {
            let rounded: Vec<f64> = case.input.as_f64()?.iter().map(|v| v.round()).collect();
            if rounded
                .iter()
                .zip(case.input.as_f64()?)
                .all(|(a, b)| a == b || a.is_nan())
            {
                return None;
            }
            c.input = Tensor::float(case.input.dtype, case.input.shape.clone(), rounded);
        }
        Edit::SmoothingTo(i) => c.label_smoothing = *SIMPLE_SMOOTHING.get(i)?,
        Edit::Fill(part, a, b) => fill(part.of_mut(&mut c)?, a, b, part.simple())?,
        Edit::NormaliseTargets => {
            let axis = class_axis(case);
            let sums = to_normalise(&case.target, axis)?;
            rescale(&mut c.target, axis, &sums)?;
            if c.target == case.target {
                return None; // already as normal as its rounding allows
            }
        }
        Edit::RemovePairs(a, b) => {
            let keep = without(case.input.shape[0], a, b);
            let texts: Vec<usize> = keep
                .iter()
                .copied()
                .chain(case.input.shape[0]..case.input.shape[1])
                .collect();
            c.input = select(&select(&case.input, 0, &keep)?, 1, &texts)?;
            c.target = Case::diagonal(keep.len());
        }
        Edit::RemoveUnpairedTexts(a, b) => {
            let n = case.input.shape[0];
            let keep = without(case.input.shape[1], n + a, n + b);
            c.input = select(&case.input, 1, &keep)?;
        }
        Edit::UnitTemperature => c.loss = LossKind::Clip { temperature: 1.0 },
        Edit::RemoveEmbeddingPairs(a, b) => {
            let keep = without(case.input.shape[0], a, b);
            c.input = select(&case.input, 0, &keep)?;
            c.target = select(&case.target, 0, &keep)?;
        }
        Edit::ZeroLogitScale => c.loss = LossKind::ClipStep { logit_scale: 0.0 },
    }
    Some(c)
}

/// Half of `size`, a quarter, … down to 1: how many classes to drop at once.
fn counts(size: usize) -> Vec<usize> {
    std::iter::successors(Some(size / 2), |&n| Some(n / 2))
        .take_while(|&n| n >= 1)
        .collect()
}

/// The `count` classes whose largest logit (over all positions) is smallest,
/// in increasing order of index; NaN counts as largest.
fn least_likely(case: &Case, count: usize) -> Option<Vec<usize>> {
    let axis = class_axis(case);
    let classes = *case.input.shape.get(axis)?;
    let inner: usize = case.input.shape[axis + 1..].iter().product();
    let values = case.input.as_f64()?;
    let mut largest = vec![f64::NEG_INFINITY; classes];
    for (i, &v) in values.iter().enumerate() {
        let c = (i / inner) % classes;
        if v.is_nan() || v > largest[c] {
            largest[c] = if v.is_nan() { f64::INFINITY } else { v };
        }
    }
    let mut by_likelihood: Vec<usize> = (0..classes).collect();
    by_likelihood.sort_by(|&a, &b| largest[a].total_cmp(&largest[b]).then(a.cmp(&b)));
    let mut removed = by_likelihood.get(..count)?.to_vec();
    removed.sort_unstable();
    Some(removed)
}

/// Removes the classes `removed` (sorted) from the input, a weight of one
/// entry per class and a probability target; class targets move down past the
/// removed classes, and those that were removed become class 0.
fn remove_classes(c: &mut Case, removed: &[usize]) -> Option<()> {
    let axis = class_axis(c);
    let classes = *c.input.shape.get(axis)?;
    let keep: Vec<usize> = (0..classes).filter(|k| removed.binary_search(k).is_err()).collect();
    if keep.is_empty() || keep.len() == classes {
        return None;
    }
    let probabilities = is_probability_target(c);
    c.input = select(&c.input, axis, &keep)?;
    if let Some(w) = &c.weight {
        if w.shape == [classes] {
            c.weight = Some(select(w, 0, &keep)?);
        }
    }
    if probabilities {
        // A position whose probabilities summed to 1 still does.
        let before = position_sums(&c.target, axis)?;
        c.target = select(&c.target, axis, &keep)?;
        let tolerance = sum_tolerance(c.target.dtype);
        let was_distribution = |s: f64| (s - 1.0).abs() <= tolerance;
        let sums: Vec<Option<f64>> = before
            .iter()
            .zip(to_normalise(&c.target, axis)?)
            .map(|(&b, after)| after.filter(|_| was_distribution(b)))
            .collect();
        return rescale(&mut c.target, axis, &sums);
    }
    let ignore_index = c.ignore_index;
    if let Data::Int(targets) = &mut c.target.data {
        for t in targets.iter_mut() {
            // Out-of-range targets (a case about that message) stay as they are.
            if *t == ignore_index || *t < 0 || *t >= classes as i64 {
                continue;
            }
            *t = match removed.binary_search(&(*t as usize)) {
                Ok(_) => 0,
                Err(below) => *t - below as i64,
            };
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANES: usize = 8;

    #[test]
    fn chunks_go_from_halves_to_singles() {
        assert_eq!(chunks(4), vec![(0, 2), (2, 4), (0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(chunks(3), vec![(0, 2), (2, 3), (0, 1), (1, 2), (2, 3)]);
        assert_eq!(chunks(12)[..2], [(0, 8), (8, 12)]);
        assert!(chunks(1).is_empty());
        assert_eq!((level(8, 12), level(4, 12), level(12, 12), level(1, 12)), (1, 2, 0, 4));
    }

    /// A "bug" that shows whenever class 2 of row 0 is present and positive:
    /// shrinking must keep exactly that and drop the rest.
    #[test]
    fn shrinks_to_what_the_failure_needs() {
        let n = 6;
        let c = 5;
        let x: Vec<f64> = (0..n * c).map(|i| 1.5 + i as f64).collect();
        let mut case = Case::new(
            "t",
            Tensor::float(DType::Float32, vec![n, c], x),
            Tensor::int(DType::Int64, vec![n], vec![4, 3, 2, 1, 0, 4]),
        );
        case.weight = Some(Tensor::float(DType::Float32, vec![c], vec![0.5; c]));
        case.label_smoothing = 0.37;
        // Fails while some logit is ≥ 12 (only in rows ≥ 2 at first).
        let fails = |k: &Case| k.input.to_f64().iter().any(|&v| v >= 12.0);
        let s = shrink(&case, &fails, 10_000).unwrap();
        assert_eq!(s.case.input.shape, vec![1, 1]);
        assert!(s.case.input.to_f64()[0] >= 12.0);
        assert!(s.case.weight.is_none());
        assert_eq!(s.case.label_smoothing, 0.0);
        assert_eq!(s.case.target.to_f64(), vec![0.0]);
        assert!(fails(&s.case));
    }

    /// A float16 probability-target case like fuzz seed 31 case 9886: five
    /// rows of 24 550 classes, logits in ±12.5 and one −inf, ε ≈ 0.157,
    /// reduction none, an upstream gradient.
    fn long_rows() -> Case {
        let (n, c) = (5, 24_550);
        // A fixed LCG: reproducible without a random crate in the test.
        let mut state = 31u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x: Vec<f64> = (0..n * c).map(|_| next() * 25.0 - 12.5).collect();
        x[3 * c + 777] = f64::NEG_INFINITY;
        let t: Vec<f64> = (0..n * c).map(|_| next() / c as f64 * 2.0).collect();
        let mut case = Case::new(
            "long",
            Tensor::float(DType::Float16, vec![n, c], x),
            Tensor::float(DType::Float16, vec![n, c], t),
        );
        case.reduction = Reduction::None;
        case.label_smoothing = 0.15746334059418476;
        case.grad_output = Some(Tensor::float(DType::Float16, vec![n], vec![-0.3193; n]));
        case
    }

    #[test]
    fn a_long_row_shrinks_to_a_few_elements() {
        let case = long_rows();
        let c = case.input.shape[1];
        let largest = case.input.to_f64()[3 * c..4 * c]
            .iter()
            .fold(f64::MIN, |m, &v| m.max(v));
        // Fails while some row holds the −inf logit and that row's largest logit.
        let fails = |k: &Case| {
            let c = *k.input.shape.last().unwrap();
            k.input
                .to_f64()
                .chunks(c.max(1))
                .any(|row| row.contains(&f64::NEG_INFINITY) && row.contains(&largest))
        };
        assert!(fails(&case));
        let s = shrink(&case, &fails, 2000).unwrap();
        assert!(fails(&s.case));
        assert!(
            s.case.input.numel() <= 4,
            "{:?} after {} evaluations",
            s.case.input.shape,
            s.evaluations
        );
        assert_eq!(s.case.input.shape[0], 1);
        assert!(s.case.input.to_f64().contains(&f64::NEG_INFINITY));
        assert_eq!(
            s.case.target.shape, s.case.input.shape,
            "the probability target shrinks with the classes"
        );
        assert_eq!(s.case.label_smoothing, 0.0);
        assert_eq!(s.case.reduction, Reduction::Mean);
    }

    #[test]
    fn clip_cases_shrink_by_whole_pairs() {
        let (n, m) = (6, 9);
        let x: Vec<f64> = (0..n * m).map(|k| if k == 4 * m + 4 { 20.5 } else { 0.5 }).collect();
        let mut case = Case::clip("t", Tensor::float(DType::Float32, vec![n, m], x), 0.07);
        case.label_smoothing = 0.37;
        // Fails while some image is paired with a text of similarity ≥ 12.
        let fails = |k: &Case| {
            let [rows, columns] = k.input.shape[..] else {
                return false;
            };
            let s = k.input.to_f64();
            (0..rows.min(columns)).any(|i| s[i * columns + i] >= 12.0)
        };
        let s = shrink(&case, &fails, 10_000).unwrap();
        assert_eq!(s.case.input.shape, vec![1, 1]);
        assert!(s.case.input.to_f64()[0] >= 12.0);
        assert_eq!(s.case.target.to_f64(), vec![0.0], "targets stay the diagonal");
        assert_eq!(s.case.loss, LossKind::Clip { temperature: 1.0 });
        assert_eq!(s.case.label_smoothing, 0.0);
    }

    #[test]
    fn removing_classes_remaps_class_targets() {
        let mut case = Case::new(
            "t",
            Tensor::float(DType::Float64, vec![3, 4], vec![0.0; 12]),
            Tensor::int(DType::Int64, vec![3], vec![3, 1, -100]),
        );
        case.weight = Some(Tensor::float(DType::Float64, vec![4], vec![1.0, 2.0, 3.0, 4.0]));
        remove_classes(&mut case, &[1, 2]).unwrap();
        assert_eq!(case.input.shape, vec![3, 2]);
        assert_eq!(case.weight.unwrap().to_f64(), vec![1.0, 4.0]);
        assert_eq!(case.target.as_i64().unwrap(), &[1, 0, -100]);
    }

    #[test]
    fn least_likely_classes_are_those_with_the_smallest_largest_logit() {
        // Class 1's largest logit is 5 (row 1), class 3's is NaN (kept last).
        let x = vec![0.0, -1.0, 2.0, f64::NAN, 1.0, 5.0, -3.0, 0.0];
        let case = Case::new(
            "t",
            Tensor::float(DType::Float64, vec![2, 4], x),
            Tensor::int(DType::Int64, vec![2], vec![1, 3]),
        );
        assert_eq!(least_likely(&case, 1), Some(vec![0]));
        assert_eq!(least_likely(&case, 2), Some(vec![0, 2]));
        let shrunk = apply(&case, &Edit::RemoveLeastLikely(2)).unwrap();
        assert_eq!(shrunk.input.shape, vec![2, 2]);
        assert_eq!(shrunk.input.to_f64()[2..], [5.0, 0.0]);
        assert_eq!(
            shrunk.target.as_i64().unwrap(),
            &[0, 1],
            "targets 1 and 3 are now 0 and 1"
        );
        assert_eq!(least_likely(&case, 5), None);
    }

    /// A bug in lane 5 of an 8-lane vector loop: it shows when a −inf logit
    /// sits there in a full vector of a row. Removing classes moves the −inf
    /// between lanes, so the row keeps a whole vector, and only setting the
    /// other logits to 0 simplifies them.
    #[test]
    fn a_lane_bug_shrinks_to_one_vector_of_zeros_and_the_minus_inf() {
        let (n, c) = (3, 1000);
        let mut x: Vec<f64> = (0..n * c).map(|i| ((i * 37) % 101) as f64 / 7.0 - 7.0).collect();
        x[c + LANES * 60 + 5] = f64::NEG_INFINITY;
        x[2 * c + 3] = f64::NEG_INFINITY; // in lane 3: harmless
        let mut case = Case::new(
            "lanes",
            Tensor::float(DType::Float32, vec![n, c], x),
            Tensor::int(DType::Int64, vec![n], vec![999, 5, 7]),
        );
        case.weight = Some(Tensor::float(DType::Float32, vec![c], vec![0.75; c]));
        case.label_smoothing = 0.9;
        let fails = |k: &Case| {
            let c = k.input.shape[1];
            let full = c / LANES * LANES;
            k.input
                .to_f64()
                .chunks(c)
                .any(|row| (0..full).any(|i| i % LANES == 5 && row[i] == f64::NEG_INFINITY))
                && k.label_smoothing > 0.3
        };
        let s = shrink(&case, &fails, 2000).unwrap();
        assert!(fails(&s.case));
        assert_eq!(
            s.case.input.shape,
            vec![1, LANES],
            "after {} evaluations",
            s.evaluations
        );
        let x = s.case.input.to_f64();
        assert_eq!(x[5], f64::NEG_INFINITY);
        assert!(x.iter().enumerate().all(|(i, &v)| i == 5 || v == 0.0), "{x:?}");
        assert_eq!(s.case.label_smoothing, 0.5, "the simplest ε above 0.3");
        assert!(s.case.weight.is_none());
        assert_eq!(s.case.target.to_f64(), vec![0.0]);
        assert!(s.evaluations < 300, "{} evaluations", s.evaluations);
    }

    #[test]
    fn value_edits_reach_every_part_of_a_long_case() {
        let c = 300;
        let x: Vec<f64> = (0..2 * c).map(|i| i as f64 / 100.0 + 0.5).collect();
        let mut case = Case::new(
            "values",
            Tensor::float(DType::Float64, vec![2, c], x),
            Tensor::int(DType::Int64, vec![2], vec![17, 250]),
        );
        case.reduction = Reduction::None;
        case.weight = Some(Tensor::float(DType::Float64, vec![c], vec![0.25; c]));
        case.grad_output = Some(Tensor::float(DType::Float64, vec![2], vec![-0.5, 3.0]));
        // Classes must stay (the "bug" needs 300 of them): only values can
        // change, and whole tensors are tried before the 600 fine chunks that
        // removing classes offers, so a small budget is enough.
        let fails = |k: &Case| {
            k.input.shape == [2, c] && k.weight.is_some() && k.grad_output.as_ref().is_some_and(|g| g.shape == [2])
        };
        let s = shrink(&case, &fails, 20).unwrap();
        assert!(s.case.input.to_f64().iter().all(|&v| v == 0.0));
        assert_eq!(s.case.target.as_i64().unwrap(), &[0, 0]);
        assert!(s.case.weight.unwrap().to_f64().iter().all(|&w| w == 1.0));
        assert_eq!(s.case.grad_output.unwrap().to_f64(), vec![1.0, 1.0]);
    }

    #[test]
    fn probability_targets_that_were_distributions_stay_distributions() {
        // Two positions of 4 classes: a distribution, and weights summing to 1.75.
        let target = vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.25, 0.5];
        let case = Case::new(
            "p",
            Tensor::float(DType::Float64, vec![2, 4], vec![0.0; 8]),
            Tensor::float(DType::Float64, vec![2, 4], target),
        );
        let removed = apply(&case, &Edit::RemoveClasses(0, 2)).unwrap();
        let t = removed.target.to_f64();
        assert!(
            (t[0] - 3.0 / 7.0).abs() < 1e-15 && (t[1] - 4.0 / 7.0).abs() < 1e-15,
            "{t:?}"
        );
        assert_eq!(
            t[2..],
            [0.25, 0.5],
            "a position that was not a distribution keeps its values"
        );
        // Normalising divides each position with a sum other than 1 (or 0) by it.
        assert!(edits(&removed).contains(&Edit::NormaliseTargets));
        let normalised = apply(&removed, &Edit::NormaliseTargets).unwrap();
        assert_eq!(normalised.target.to_f64()[2..], [0.25 / 0.75, 0.5 / 0.75]);
        assert_eq!(normalised.target.to_f64()[..2], t[..2]);
        assert!(!edits(&normalised).contains(&Edit::NormaliseTargets));
        // K-dim: classes of one position lie `inner` apart.
        let t = Tensor::float(DType::Float32, vec![1, 2, 2], vec![1.0, 0.0, 3.0, 0.0]);
        assert_eq!(position_sums(&t, 1), Some(vec![4.0, 0.0]));
    }

    #[test]
    fn smoothing_steps_down_to_simple_values() {
        let mut case = Case::new(
            "e",
            Tensor::float(DType::Float64, vec![1, 2], vec![0.0, 1.0]),
            Tensor::int(DType::Int64, vec![1], vec![0]),
        );
        case.label_smoothing = 0.15746334059418476;
        let s = shrink(&case, &|k: &Case| k.label_smoothing > 0.0, 100).unwrap();
        assert_eq!(s.case.label_smoothing, 0.1);
        case.label_smoothing = 0.01234;
        let s = shrink(&case, &|k: &Case| k.label_smoothing > 0.0, 100).unwrap();
        assert_eq!(s.case.label_smoothing, 0.01);
    }

    #[test]
    fn edits_do_not_cycle() {
        let mut case = Case::new(
            "t",
            Tensor::float(DType::Float64, vec![2, 3, 0], vec![]),
            Tensor::int(DType::Int64, vec![2, 0], vec![]),
        );
        case.reduction = Reduction::None;
        case.ignore_index = 3;
        case.label_smoothing = 0.25;
        // Every candidate "fails": the search must still end, well before the budget.
        let s = shrink(&case, &|_| true, 10_000).unwrap();
        assert!(s.evaluations < 100, "{} evaluations", s.evaluations);
        assert_eq!(s.case.reduction, Reduction::Mean);
        assert_eq!(s.case.label_smoothing, 0.0);
        assert_eq!(s.case.input.shape, vec![1, 1, 0]);
    }

    #[test]
    fn a_budget_bounds_the_work() {
        let case = Case::new(
            "t",
            Tensor::float(DType::Float32, vec![4, 100_000], vec![1.0; 400_000]),
            Tensor::int(DType::Int64, vec![4], vec![0, 1, 2, 3]),
        );
        let calls = std::cell::Cell::new(0);
        let fails = |_: &Case| {
            calls.set(calls.get() + 1);
            true
        };
        // Every candidate "still fails", so each accepted edit halves something.
        let s = shrink(&case, &fails, 100).unwrap();
        assert!(calls.get() <= 100);
        assert_eq!(s.case.input.shape[0], 1);
        assert!(s.case.input.shape[1] < 100);
    }
}
