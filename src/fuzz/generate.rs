//! Random cases from a seed. Case `i` of seed `s` depends on (s, i) alone —
//! ChaCha with seed `s` on stream `i` — so a run is reproducible whatever the
//! thread count, and one case can be regenerated from its index.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::surface::{Surface, SurfaceFeature};
use crate::fixtures::Case;
use crate::loss::{Reduction, DEFAULT_IGNORE_INDEX};
use crate::tensor::{DType, Tensor};

/// Most elements a case may hold; keeps the C = 100 000 cases to a row or two.
const MAX_ELEMENTS: usize = 1 << 18;

/// The random source of case `index` under `seed`.
pub fn case_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// Case `index` of the run with `seed`, drawn from `surface`.
///
/// The same arguments give the same case on any machine and thread count, so
/// a failure is reported by its index and regenerated from it.
///
/// ```
/// use ce_parity::fuzz::{case, Surface};
///
/// let surface = Surface::core(); // finite logits, so `==` can compare the cases
/// let drawn = case(2026, 17, &surface);
/// assert_eq!(drawn.name, "fuzz/seed2026/case17");
/// assert_eq!(drawn, case(2026, 17, &surface));
/// assert_ne!(drawn.input, case(2026, 18, &surface).input);
/// ```
pub fn case(seed: u64, index: u64, surface: &Surface) -> Case {
    let mut g = Gen {
        rng: case_rng(seed, index),
        surface,
    };
    let name = format!("fuzz/seed{seed}/case{index}");
    if surface.has(SurfaceFeature::Clip) && g.chance(0.1) {
        return g.clip_case(name);
    }
    if surface.has(SurfaceFeature::ClipStep) && g.chance(0.1) {
        return g.clip_step_case(name);
    }
    let mut case = g.valid_case(name);
    if surface.has(SurfaceFeature::Invalid) && g.chance(0.08) {
        g.corrupt(&mut case);
    }
    case
}

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Batched,
    KDim,
    Unbatched,
}

#[derive(Clone, Copy, PartialEq)]
enum TargetKind {
    Int64,
    UInt8,
    Probabilities,
}

struct Gen<'a> {
    rng: ChaCha8Rng,
    surface: &'a Surface,
}

impl Gen<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn range(&mut self, low: usize, high_inclusive: usize) -> usize {
        self.rng.gen_range(low..=high_inclusive)
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f64 {
        self.rng.gen_range(-1.0..1.0)
    }

    /// Picks among weighted options; weight 0 means "not available".
    fn pick<T: Copy>(&mut self, options: &[(f64, T)]) -> T {
        let total: f64 = options.iter().map(|o| o.0).sum();
        let mut r = self.rng.gen_range(0.0..total);
        for &(w, v) in options {
            if r < w {
                return v;
            }
            r -= w;
        }
        options
            .iter()
            .rev()
            .find(|o| o.0 > 0.0)
            .expect("one option available")
            .1
    }

    fn on(&self, feature: SurfaceFeature) -> f64 {
        if self.surface.has(feature) {
            1.0
        } else {
            0.0
        }
    }

    fn dtype(&mut self) -> DType {
        let half = self.on(SurfaceFeature::Half);
        self.pick(&[
            (3.0, DType::Float32),
            (2.0, DType::Float64),
            (half, DType::Float16),
            (half, DType::BFloat16),
        ])
    }

    /// Mostly a handful of classes, sometimes dozens, rarely up to 100 000.
    fn classes(&mut self) -> usize {
        let r: f64 = self.rng.gen();
        if r < 0.75 {
            self.range(1, 6)
        } else if r < 0.95 || !self.surface.has(SurfaceFeature::HugeClasses) {
            self.range(7, 64)
        } else {
            // Log-uniform from 65 to 100 000.
            let e = self.rng.gen_range((65f64).ln()..(100_000f64).ln());
            (e.exp() as usize).clamp(65, 100_000)
        }
    }

    fn valid_case(&mut self, name: String) -> Case {
        let dtype = self.dtype();
        let classes = self.classes();
        let layout = self.pick(&[
            (6.0, Layout::Batched),
            (2.0 * self.on(SurfaceFeature::KDim), Layout::KDim),
            (self.on(SurfaceFeature::Unbatched), Layout::Unbatched),
        ]);
        let empty = self.surface.has(SurfaceFeature::Empty) && self.chance(0.04);
        let mut spatial: Vec<usize> = match layout {
            Layout::KDim => {
                let k = self.range(1, 3);
                (0..k).map(|_| self.range(1, 3)).collect()
            }
            _ => Vec::new(),
        };
        // Many classes leave no room for spatial positions.
        if classes * spatial.iter().product::<usize>() > MAX_ELEMENTS {
            spatial.fill(1);
        }
        // An empty k-dim case is empty in a spatial dim or in the batch.
        let empty_batch = empty && (spatial.is_empty() || self.chance(0.5));
        if empty && !empty_batch {
            let at = self.range(0, spatial.len() - 1);
            spatial[at] = 0;
        }
        let inner: usize = spatial.iter().product::<usize>();
        let batch = match layout {
            Layout::Unbatched => 1,
            _ if empty_batch => 0,
            _ => self.range(1, 5).min((MAX_ELEMENTS / (classes * inner.max(1))).max(1)),
        };
        let shape: Vec<usize> = match layout {
            Layout::Unbatched => vec![classes],
            _ => [vec![batch, classes], spatial.clone()].concat(),
        };
        let loss_shape: Vec<usize> = match layout {
            Layout::Unbatched => vec![],
            _ => [vec![batch], spatial].concat(),
        };
        let positions = batch * inner;

        let mut case = Case::new(
            name,
            self.logits(dtype, &shape),
            Tensor::int(DType::Int64, vec![], vec![0]),
        );
        // libtorch takes uint8 class targets with 2-D input only.
        let uint8 = if layout == Layout::Batched && classes <= 255 {
            self.on(SurfaceFeature::UInt8Targets)
        } else {
            0.0
        };
        let kind = self.pick(&[
            (5.0, TargetKind::Int64),
            (uint8, TargetKind::UInt8),
            (2.0 * self.on(SurfaceFeature::Probabilities), TargetKind::Probabilities),
        ]);
        case.ignore_index = self.ignore_index(kind, classes);
        case.target = match kind {
            TargetKind::Probabilities => self.probabilities(dtype, &shape, classes),
            _ => {
                let dtype = if kind == TargetKind::UInt8 {
                    DType::UInt8
                } else {
                    DType::Int64
                };
                Tensor::int(
                    dtype,
                    loss_shape.clone(),
                    self.classes_of(kind, positions, classes, case.ignore_index),
                )
            }
        };
        if self.chance(0.5) {
            case.weight = Some(self.weight(dtype, classes));
        }
        case.reduction = self.pick(&[(1.0, Reduction::None), (1.0, Reduction::Mean), (1.0, Reduction::Sum)]);
        // ε: off, exactly 1, negative (behaves as 0), or anywhere in (0, 1).
        case.label_smoothing = match self.pick(&[(3.0, 0u8), (1.0, 1), (1.0, 2), (5.0, 3)]) {
            0 => 0.0,
            1 => 1.0,
            2 => -self.rng.gen_range(0.0..1.0),
            _ => self.rng.gen_range(0.0..1.0),
        };
        if self.chance(0.4) {
            let shape = if case.reduction == Reduction::None {
                loss_shape
            } else {
                vec![]
            };
            let n = shape.iter().product();
            let values = (0..n)
                .map(|_| if self.chance(0.1) { 0.0 } else { 2.0 * self.signed() })
                .collect();
            case.grad_output = Some(Tensor::float(dtype, shape, values));
        }
        case
    }

    /// A contrastive case: cosine-like similarities (N ≤ M, sometimes with
    /// unpaired texts), τ log-uniform in [0.005, 5], any ε, sometimes an
    /// upstream gradient; with `invalid`, sometimes more images than texts or ε > 1.
    fn clip_case(&mut self, name: String) -> Case {
        let dtype = self.dtype();
        let empty = self.surface.has(SurfaceFeature::Empty) && self.chance(0.04);
        let n = if empty { 0 } else { self.range(1, 24) };
        let unpaired = self.range(1, 16);
        let m = n + self.pick(&[(3.0, 0), (1.0, unpaired)]);
        let mut values: Vec<f64> = (0..n * m).map(|_| self.signed()).collect();
        if self.surface.has(SurfaceFeature::NonFinite) && !values.is_empty() && self.chance(0.1) {
            let at = self.range(0, values.len() - 1);
            values[at] = self.pick(&[(3.0, f64::NEG_INFINITY), (1.0, f64::INFINITY), (1.0, f64::NAN)]);
        }
        let temperature = self.rng.gen_range((0.005f64).ln()..(5f64).ln()).exp();
        let mut case = Case::clip(name, Tensor::float(dtype, vec![n, m], values), temperature);
        case.label_smoothing = match self.pick(&[(2.0, 0u8), (1.0, 1), (4.0, 2)]) {
            0 => 0.0,
            1 => 1.0,
            _ => self.rng.gen_range(0.0..1.0),
        };
        if self.chance(0.3) {
            case.grad_output = Some(Tensor::float(dtype, vec![], vec![2.0 * self.signed()]));
        }
        if self.surface.has(SurfaceFeature::Invalid) && self.chance(0.08) {
            if self.chance(0.5) && n > 0 {
                // More images than texts: keep fewer than N texts.
                let texts = self.range(0, n - 1);
                let all = case.input.to_f64();
                let values = (0..n).flat_map(|i| all[i * m..i * m + texts].to_vec()).collect();
                case.input = Tensor::float(dtype, vec![n, texts], values);
            } else {
                case.label_smoothing = 1.0 + self.rng.gen_range(0.001..1.0);
            }
        }
        case
    }

    /// A CLIP step: N ≤ 24 pairs of D ≤ 48 raw embeddings (varied norms,
    /// each text pulled towards its image by a random amount), float32 or
    /// float64, logit_scale uniform in [0, ln 100], any ε, sometimes an
    /// upstream gradient; sometimes an empty batch or a non-finite
    /// embedding; with `invalid`, sometimes widths or batch sizes that
    /// differ, or ε > 1.
    fn clip_step_case(&mut self, name: String) -> Case {
        let dtype = self.pick(&[(1.0, DType::Float32), (1.0, DType::Float64)]);
        let empty = self.surface.has(SurfaceFeature::Empty) && self.chance(0.04);
        let n = if empty { 0 } else { self.range(1, 24) };
        let d = self.range(1, 48);
        let pull = self.rng.gen_range(0.0..2.0);
        let mut image = Vec::with_capacity(n * d);
        let mut text = Vec::with_capacity(n * d);
        for _ in 0..n {
            let norm = self.rng.gen_range((0.05f64).ln()..(20f64).ln()).exp();
            for _ in 0..d {
                let x = norm * self.signed();
                image.push(dtype.round(x));
                text.push(dtype.round(pull * x + norm * self.signed()));
            }
        }
        // No zero embeddings: F.normalize divides them by eps = 1e-12, which
        // turns rounding-level differences in d logits into visible ones
        // (fixtures/clip_step.json has one, which agrees).
        if self.surface.has(SurfaceFeature::NonFinite) && n > 0 && self.chance(0.05) {
            let at = self.range(0, n * d - 1);
            text[at] = self.pick(&[(1.0, f64::INFINITY), (1.0, f64::NAN)]);
        }
        let logit_scale = dtype.round(self.rng.gen_range(0.0..100f64.ln()));
        let mut case = Case::clip_step(
            name,
            Tensor::float(dtype, vec![n, d], image),
            Tensor::float(dtype, vec![n, d], text),
            logit_scale,
        );
        case.label_smoothing = match self.pick(&[(2.0, 0u8), (1.0, 1), (4.0, 2)]) {
            0 => 0.0,
            1 => 1.0,
            _ => self.rng.gen_range(0.0..1.0),
        };
        if self.chance(0.3) {
            case.grad_output = Some(Tensor::float(dtype, vec![], vec![dtype.round(2.0 * self.signed())]));
        }
        if self.surface.has(SurfaceFeature::Invalid) && self.chance(0.08) {
            match self.range(0, 2) {
                // Texts of another width, or another number of texts.
                0 => {
                    let (rows, width) = (n, d + self.range(1, 4));
                    case.target = Tensor::float(dtype, vec![rows, width], vec![0.5; rows * width]);
                }
                1 => {
                    let rows = if n > 0 && self.chance(0.5) { n - 1 } else { n + 1 };
                    case.target = Tensor::float(dtype, vec![rows, d], vec![0.5; rows * d]);
                }
                _ => case.label_smoothing = 1.0 + self.rng.gen_range(0.001..1.0),
            }
        }
        case
    }

    /// Logits at a scale from 1e-3 to 1e4, sometimes tied, sometimes with ±inf or NaN.
    fn logits(&mut self, dtype: DType, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let scale = 10f64.powf(self.rng.gen_range(-3.0..4.0));
        let mut values: Vec<f64> = if self.chance(0.05) {
            vec![scale * self.signed(); n]
        } else {
            (0..n).map(|_| 3.0 * scale * self.signed()).collect()
        };
        if self.surface.has(SurfaceFeature::NonFinite) && n > 0 && self.chance(0.15) {
            for _ in 0..self.range(1, 3) {
                let at = self.range(0, n - 1);
                values[at] = self.pick(&[(3.0, f64::NEG_INFINITY), (1.0, f64::INFINITY), (1.0, f64::NAN)]);
            }
        }
        Tensor::float(dtype, shape.to_vec(), values)
    }

    /// The default, another negative value, a valid class, or a value out of range.
    fn ignore_index(&mut self, kind: TargetKind, classes: usize) -> i64 {
        let c = classes as i64;
        match kind {
            // libtorch rejects ignore_index ≥ 0 with probabilities.
            TargetKind::Probabilities => self.pick(&[(3.0, DEFAULT_IGNORE_INDEX), (1.0, -1)]),
            TargetKind::UInt8 => self.pick(&[(1.0, DEFAULT_IGNORE_INDEX), (1.0, 0), (1.0, 255.min(c + 3))]),
            TargetKind::Int64 => {
                let valid = self.range(0, classes - 1) as i64;
                self.pick(&[(4.0, DEFAULT_IGNORE_INDEX), (1.0, -1), (1.0, valid), (1.0, c + 3)])
            }
        }
    }

    /// Class targets: none, some or all of them `ignore_index` (when the dtype can hold it).
    fn classes_of(&mut self, kind: TargetKind, positions: usize, classes: usize, ignore_index: i64) -> Vec<i64> {
        let representable = kind == TargetKind::Int64 || (0..=255).contains(&ignore_index);
        let p_ignored = if representable {
            self.pick(&[(6.0, 0.0), (3.0, 0.3), (1.0, 1.0)])
        } else {
            0.0
        };
        (0..positions)
            .map(|_| {
                if self.chance(p_ignored) {
                    ignore_index
                } else {
                    self.range(0, classes - 1) as i64
                }
            })
            .collect()
    }

    /// Normalised, one-hot, or unnormalised (with `negative`, even negative) class probabilities.
    fn probabilities(&mut self, dtype: DType, shape: &[usize], classes: usize) -> Tensor {
        let low = if self.surface.has(SurfaceFeature::NegativeWeights) {
            -0.5
        } else {
            0.0
        };
        let n: usize = shape.iter().product();
        // Classes of one position lie `stride` apart.
        let stride: usize = shape.get(2..).map_or(1, |s| s.iter().product());
        let kind = self.range(0, 2);
        let mut values: Vec<f64> = match kind {
            0 => (0..n).map(|_| self.rng.gen_range(0.0..1.0)).collect(),
            1 => vec![0.0; n],
            _ => (0..n).map(|_| self.rng.gen_range(low..1.5)).collect(),
        };
        for position in 0..n / classes {
            let (b, s) = (position / stride, position % stride);
            let at = |c: usize| b * classes * stride + c * stride + s;
            match kind {
                0 => {
                    let total: f64 = (0..classes).map(|c| values[at(c)]).sum();
                    for c in 0..classes {
                        values[at(c)] /= total.max(f64::MIN_POSITIVE);
                    }
                }
                1 => values[at(self.range(0, classes - 1))] = 1.0,
                _ => {}
            }
        }
        Tensor::float(dtype, shape.to_vec(), values)
    }

    /// Positive weights, sometimes with zeros or negatives.
    fn weight(&mut self, dtype: DType, classes: usize) -> Tensor {
        let p_zero = self.pick(&[(4.0, 0.0), (1.0, 0.3)]);
        let negative = self.on(SurfaceFeature::NegativeWeights);
        let p_negative = self.pick(&[(4.0, 0.0), (negative, 0.3)]);
        let values = (0..classes)
            .map(|_| {
                let w = self.rng.gen_range(0.1..2.0);
                if self.chance(p_zero) {
                    0.0
                } else if self.chance(p_negative) {
                    -w
                } else {
                    w
                }
            })
            .collect();
        Tensor::float(dtype, vec![classes], values)
    }

    /// Makes the case one libtorch rejects, in one of the ways it checks.
    fn corrupt(&mut self, case: &mut Case) {
        let dims = case.input.shape.len();
        let classes = case.input.shape[usize::from(dims != 1)] as i64;
        let index_target = !case.target.dtype.is_float();
        match self.range(0, 7) {
            // A target out of range that is not ignore_index (and fits the dtype).
            0 if index_target
                && !case.target.is_empty()
                && (case.target.dtype == DType::Int64 || out_of_range(case, classes) <= 255) =>
            {
                let bad = out_of_range(case, classes);
                set_int(&mut case.target, 0, bad);
            }
            0 | 1 => case.label_smoothing = 1.0 + self.rng.gen_range(0.001..1.0),
            2 => {
                let len = if self.chance(0.5) {
                    classes + 1
                } else {
                    (classes - 1).max(0)
                };
                let dtype = case.input.dtype;
                case.weight = Some(Tensor::float(dtype, vec![len as usize], vec![1.0; len as usize]));
            }
            3 if dims >= 2 && index_target => {
                // Batch sizes disagree.
                let mut shape = case.target.shape.clone();
                shape[0] += 1;
                let n: usize = shape.iter().product();
                case.target = Tensor::int(case.target.dtype, shape, vec![0; n]);
            }
            4 if dims >= 3 && index_target => {
                // A spatial size disagrees.
                let mut shape = case.target.shape.clone();
                *shape.last_mut().expect("k-dim target") += 1;
                let n: usize = shape.iter().product();
                case.target = Tensor::int(DType::Int64, shape, vec![0; n]);
            }
            5 => {
                // Integer target shaped like the input: probabilities need a float dtype.
                let n = case.input.numel();
                case.target = Tensor::int(DType::Int64, case.input.shape.clone(), vec![0; n]);
                case.grad_output = None;
            }
            6 if !index_target => case.ignore_index = self.range(0, 3) as i64,
            _ if dims == 1 => {
                // 1-D input with a 1-D target.
                case.target = Tensor::int(DType::Int64, vec![1], vec![0]);
            }
            _ => {
                // A target with one dim too many for 2-D input, or too few for k-dim.
                let mut shape = case.input.shape.clone();
                shape.remove(1);
                if dims == 2 {
                    shape.push(2);
                } else {
                    shape.pop();
                }
                let n: usize = shape.iter().product();
                case.target = Tensor::int(DType::Int64, shape, vec![0; n]);
                case.grad_output = None;
            }
        }
    }
}

/// The smallest class index ≥ C that is not `ignore_index`.
fn out_of_range(case: &Case, classes: i64) -> i64 {
    if case.ignore_index == classes {
        classes + 1
    } else {
        classes
    }
}

fn set_int(t: &mut Tensor, at: usize, value: i64) {
    if let crate::tensor::Data::Int(v) = &mut t.data {
        v[at] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_depends_on_seed_and_index_only() {
        let s = Surface::all();
        for i in 0..50 {
            let a = case(7, i, &s);
            let b = case(7, i, &s);
            // Compare as JSON: NaN in the data defeats PartialEq.
            let json = |c: &Case| {
                crate::fixtures::to_json(&crate::fixtures::Fixture {
                    description: String::new(),
                    cases: vec![c.clone()],
                })
            };
            assert_eq!(json(&a), json(&b));
            assert_ne!(json(&case(7, i, &s)), json(&case(8, i, &s)));
        }
    }

    #[test]
    fn every_case_saves_as_a_readable_fixture() {
        let s = Surface::all();
        for i in 0..500 {
            let fixture = crate::fixtures::Fixture {
                description: String::new(),
                cases: vec![case(2, i, &s)],
            };
            let text = crate::fixtures::to_json(&fixture);
            let back = crate::fixtures::parse(std::path::Path::new("f.json"), &text)
                .unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(crate::fixtures::to_json(&back), text, "case {i}");
        }
    }

    #[test]
    fn shapes_agree_and_stay_small() {
        let s = Surface::all();
        for i in 0..2000 {
            let c = case(1, i, &s);
            assert!(c.input.numel() <= MAX_ELEMENTS, "case {i}: {:?}", c.input.shape);
            assert_eq!(c.input.numel(), c.input.len());
            assert_eq!(c.target.numel(), c.target.len());
            if let Some(w) = &c.weight {
                assert_eq!(w.numel(), w.len());
            }
        }
    }
}
