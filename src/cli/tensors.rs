//! Tensors from `.npy` files or one `.safetensors` file as one case: the
//! flags `record`, `check` and `explain` share.

use std::path::{Path, PathBuf};

use anyhow::Context;

use ce_parity::fixtures::{Case, LossKind};
use ce_parity::loss::{Reduction, DEFAULT_IGNORE_INDEX};
use ce_parity::npy;
use ce_parity::safetensors_file;
use ce_parity::tensor::Tensor;

#[derive(clap::Args, Default)]
pub struct TensorArgs {
    /// A .safetensors file (or numpy .npz archive) holding the case by name: input, target (required),
    /// weight, grad_output; options from its metadata (label_smoothing,
    /// reduction, ignore_index), under the flags. `check` also judges its
    /// loss and grad_input, your outputs, when present. With metadata
    /// kind=clip_step (or a tensor image_embeds): OpenCLIP's loss step from
    /// image_embeds, text_embeds (N×D) and logit_scale (0-d), your outputs
    /// loss, grad_image_embeds, grad_text_embeds, grad_logit_scale.
    #[arg(
        long,
        value_name = "CASE.safetensors",
        conflicts_with_all = ["input", "target", "weight", "grad_output", "clip_temperature"]
    )]
    pub tensors: Option<PathBuf>,
    /// Logits saved with np.save: (N, C), (N, C, d1, …) or (C,); float16/32/64.
    #[arg(long, value_name = "X.npy")]
    pub input: Option<PathBuf>,
    /// Class indices (int64 or uint8) or class probabilities (the input's shape and dtype).
    #[arg(long, value_name = "T.npy")]
    pub target: Option<PathBuf>,
    /// The image–text contrastive loss with temperature τ instead of
    /// cross_entropy: --input is the N×M similarity matrix, the targets are its
    /// diagonal (no --target, --weight, --reduction or --ignore-index).
    #[arg(
        long,
        value_name = "TAU",
        conflicts_with_all = ["target", "weight", "reduction", "ignore_index"],
        allow_negative_numbers = true
    )]
    pub clip_temperature: Option<f64>,
    /// Per-class weight (C,), in the input's dtype.
    #[arg(long, value_name = "W.npy")]
    pub weight: Option<PathBuf>,
    /// Upstream gradient, shaped like the loss (default: ones).
    #[arg(long, value_name = "G.npy")]
    pub grad_output: Option<PathBuf>,
    #[arg(long, value_name = "E", allow_negative_numbers = true)]
    pub label_smoothing: Option<f64>,
    #[arg(long, value_name = "none|mean|sum")]
    pub reduction: Option<Reduction>,
    #[arg(long, value_name = "I", allow_negative_numbers = true)]
    pub ignore_index: Option<i64>,
}

/// Where a tensor came from, for messages: `--weight w.npy` or
/// `case.safetensors: tensor "weight"`.
struct Labelled {
    tensor: Tensor,
    label: String,
}

/// The tensors of one case and its options, before they are checked together.
struct Parts {
    name: String,
    input: Labelled,
    target: Option<Labelled>,
    weight: Option<Labelled>,
    grad_output: Option<Labelled>,
    label_smoothing: Option<f64>,
    reduction: Option<Reduction>,
    ignore_index: Option<i64>,
}

/// A case read from tensors, with the outputs under test a `--tensors` file holds.
pub struct Given {
    /// The case.
    pub case: Case,
    /// Where its tensors came from, for the report ("tensors from …").
    pub source: String,
    /// The file's `loss` tensor, with its label.
    pub loss: Option<(Tensor, String)>,
    /// The file's `grad_input` tensor, with its label.
    pub grad_input: Option<(Tensor, String)>,
    /// A `clip_step` file's gradients under test, by name, shapes checked.
    pub grads: Vec<(&'static str, Tensor)>,
}

impl TensorArgs {
    /// The case the flags describe, with where it came from and any outputs
    /// under test; None when neither `--input` nor `--tensors` is given.
    ///
    /// # Errors
    /// A missing `--target`, unreadable or malformed files, and dtypes that
    /// cannot go together, each naming the flag and the file; for
    /// `--tensors`, a tensor or metadata key it does not know, or a metadata
    /// value that does not parse, named.
    pub fn given(&self) -> anyhow::Result<Option<Given>> {
        if let Some(path) = &self.tensors {
            return self.read_safetensors(path).map(Some);
        }
        let Some(input_path) = &self.input else {
            let given = self.given_without_input();
            anyhow::ensure!(
                given.is_empty(),
                "{} {} --input X.npy (the logits, saved with np.save) or --tensors CASE.safetensors",
                given.join(", "),
                if given.len() == 1 { "needs" } else { "need" }
            );
            return Ok(None);
        };
        let read_labelled = |flag: &str, path: &PathBuf| -> anyhow::Result<Labelled> {
            Ok(Labelled {
                tensor: read(flag, path)?,
                label: format!("{flag} {}", path.display()),
            })
        };
        let input = read_labelled("--input", input_path)?;
        let target = match (self.clip_temperature, &self.target) {
            (Some(_), _) => None,
            (None, Some(path)) => Some(read_labelled("--target", path)?),
            (None, None) => anyhow::bail!("--input needs --target"),
        };
        let parts = Parts {
            name: name(input_path),
            input,
            target,
            weight: self.weight.as_ref().map(|p| read_labelled("--weight", p)).transpose()?,
            grad_output: self
                .grad_output
                .as_ref()
                .map(|p| read_labelled("--grad-output", p))
                .transpose()?,
            label_smoothing: self.label_smoothing,
            reduction: self.reduction,
            ignore_index: self.ignore_index,
        };
        Ok(Some(Given {
            case: self.assemble(parts)?,
            source: "tensors from .npy files".into(),
            loss: None,
            grad_input: None,
            grads: Vec::new(),
        }))
    }

    /// A `--tensors` file: tensors by name, options from `__metadata__`
    /// under the flags.
    fn read_safetensors(&self, path: &Path) -> anyhow::Result<Given> {
        let file = safetensors_file::load(path).context("--tensors: cannot use this file")?;
        let shown = path.display();
        if super::clip_step_tensors::is_clip_step(&shown.to_string(), &file)? {
            return self.read_clip_step(&shown.to_string(), name(path), file);
        }
        for name in file.tensors.keys() {
            anyhow::ensure!(
                TENSOR_NAMES.contains(&name.as_str()),
                "--tensors {shown}: tensor {name:?} is not one ce-parity reads (it reads {})",
                TENSOR_NAMES.join(", ")
            );
        }
        for key in file.metadata.keys() {
            anyhow::ensure!(
                METADATA_KEYS.contains(&key.as_str()) || key == "format",
                "--tensors {shown}: metadata key {key:?} is not one ce-parity reads (it reads {})",
                METADATA_KEYS.join(", ")
            );
        }
        let mut tensors = file.tensors;
        let mut take = |name: &str| {
            tensors.remove(name).map(|tensor| Labelled {
                tensor,
                label: format!("--tensors {shown}: tensor {name:?}"),
            })
        };
        let input =
            take("input").with_context(|| format!("--tensors {shown}: no tensor named \"input\" (the logits)"))?;
        let target = take("target").with_context(|| format!("--tensors {shown}: no tensor named \"target\""))?;
        let (weight, grad_output) = (take("weight"), take("grad_output"));
        let output = |l: Option<Labelled>| l.map(|l| (l.tensor, l.label));
        let (loss, grad_input) = (output(take("loss")), output(take("grad_input")));
        let metadata = |key: &str| {
            file.metadata
                .get(key)
                .map(|v| (v, format!("--tensors {shown}: metadata {key:?}")))
        };
        let label_smoothing = match metadata("label_smoothing") {
            Some((v, at)) => Some(
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| anyhow::anyhow!("{at}: {v:?} is not a number"))?,
            ),
            None => None,
        };
        let reduction = match metadata("reduction") {
            Some((v, at)) => Some(v.parse::<Reduction>().map_err(|e| anyhow::anyhow!("{at}: {e}"))?),
            None => None,
        };
        let ignore_index = match metadata("ignore_index") {
            Some((v, at)) => Some(
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("{at}: {v:?} is not an integer"))?,
            ),
            None => None,
        };
        let parts = Parts {
            name: name(path),
            input,
            target: Some(target),
            weight,
            grad_output,
            label_smoothing: self.label_smoothing.or(label_smoothing),
            reduction: self.reduction.or(reduction),
            ignore_index: self.ignore_index.or(ignore_index),
        };
        Ok(Given {
            case: self.assemble(parts)?,
            source: format!("tensors from {}", name(path)),
            loss,
            grad_input,
            grads: Vec::new(),
        })
    }

    /// The case from its parts, checked: floating logits, dtypes that go
    /// together, an upstream gradient shaped like the loss.
    fn assemble(&self, parts: Parts) -> anyhow::Result<Case> {
        let Parts {
            name, input, target, ..
        } = parts;
        anyhow::ensure!(
            input.tensor.dtype.is_float(),
            "{}: dtype {} is not floating; save the logits as float16, bfloat16, float32 or float64",
            input.label,
            input.tensor.dtype
        );
        let mut case = match (self.clip_temperature, target) {
            (Some(temperature), _) => clip_case(&input.label, input.tensor, &name, temperature)?,
            (None, Some(target)) => {
                if target.tensor.dtype.is_float() {
                    same_dtype(&target, &input.tensor)?;
                }
                Case::new(name, input.tensor, target.tensor)
            }
            (None, None) => anyhow::bail!("{}: needs a target", input.label),
        };
        if let Some(weight) = parts.weight {
            same_dtype(&weight, &case.input)?;
            case.weight = Some(weight.tensor);
        }
        let grad_label = parts.grad_output.as_ref().map(|g| g.label.clone());
        if let Some(grad) = parts.grad_output {
            same_dtype(&grad, &case.input)?;
            case.grad_output = Some(grad.tensor);
        }
        if let Some(e) = parts.label_smoothing {
            anyhow::ensure!(!e.is_nan(), "--label-smoothing must be a number, got NaN");
            case.label_smoothing = e;
        }
        case.reduction = parts.reduction.unwrap_or(Reduction::Mean);
        case.ignore_index = parts.ignore_index.unwrap_or(DEFAULT_IGNORE_INDEX);
        if let (Some(label), Some(grad)) = (grad_label, &case.grad_output) {
            let loss_shape = loss_shape(&case);
            anyhow::ensure!(
                grad.shape == loss_shape,
                "{label}: shape {:?}, but the loss has shape {loss_shape:?} \
                 (input {:?}, reduction {}); save it shaped like the loss",
                grad.shape,
                case.input.shape,
                case.reduction.name()
            );
        }
        Ok(case)
    }
}

/// The tensor names a `--tensors` file may hold.
pub const TENSOR_NAMES: [&str; 6] = ["input", "target", "weight", "grad_output", "loss", "grad_input"];

/// The `__metadata__` keys a `--tensors` file may hold (besides `format`,
/// which `safetensors.torch.save_model` writes); `kind` is `cross_entropy`
/// here, `clip_step` for the CLIP step (src/cli/clip_step_tensors.rs).
pub const METADATA_KEYS: [&str; 4] = ["kind", "label_smoothing", "reduction", "ignore_index"];

impl TensorArgs {
    /// The cross-entropy options given as flags, which a CLIP step has no use for.
    pub(super) fn cross_entropy_only(&self) -> Vec<&'static str> {
        [
            ("--reduction", self.reduction.is_some()),
            ("--ignore-index", self.ignore_index.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The flags given that describe tensors beside `--input`.
    fn given_without_input(&self) -> Vec<&'static str> {
        [
            ("--target", self.target.is_some()),
            ("--clip-temperature", self.clip_temperature.is_some()),
            ("--weight", self.weight.is_some()),
            ("--grad-output", self.grad_output.is_some()),
            ("--label-smoothing", self.label_smoothing.is_some()),
            ("--reduction", self.reduction.is_some()),
            ("--ignore-index", self.ignore_index.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

/// The shape of the case's loss, which an upstream gradient must have:
/// the input's without the class dim under reduction "none", else a scalar.
pub fn loss_shape(case: &Case) -> Vec<usize> {
    match (case.loss, case.reduction, case.input.shape.as_slice()) {
        (LossKind::CrossEntropy, Reduction::None, [n, _, rest @ ..]) => [&[*n], rest].concat(),
        _ => Vec::new(),
    }
}

/// A `.npy` file given where a fixture goes (`check x.npy`) is a mistake to
/// name, with the flag that takes it.
///
/// # Errors
/// When `path` ends in `.npy` or starts with numpy's magic bytes.
pub fn ensure_not_npy(path: &Path) -> anyhow::Result<()> {
    let by_name = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if by_name || starts_with_npy_magic(path) {
        anyhow::bail!(
            "{}: a .npy tensor, not a fixture (.json); check tensors with --input {} --target T.npy",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

pub fn starts_with_npy_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 6];
    std::fs::File::open(path).is_ok_and(|mut f| f.read_exact(&mut magic).is_ok()) && &magic == b"\x93NUMPY"
}

/// A contrastive case: a 2-D similarity matrix and a positive temperature.
fn clip_case(label: &str, input: Tensor, name: &str, temperature: f64) -> anyhow::Result<Case> {
    anyhow::ensure!(
        temperature.is_finite() && temperature > 0.0,
        "--clip-temperature must be a positive finite number, got {temperature}"
    );
    let [_, _] = input.shape.as_slice() else {
        anyhow::bail!(
            "{label}: the contrastive loss needs the N×M similarity matrix, got shape {:?}",
            input.shape
        );
    };
    Ok(Case::clip(name.to_string(), input, temperature))
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Tensor> {
    npy::load(path).with_context(|| format!("{flag}: cannot use this file"))
}

/// Mixed float dtypes are an error in PyTorch too; say which file to re-save.
fn same_dtype(t: &Labelled, input: &Tensor) -> anyhow::Result<()> {
    anyhow::ensure!(
        t.tensor.dtype == input.dtype,
        "{}: dtype {} differs from the input's {}; save both with the same dtype",
        t.label,
        t.tensor.dtype,
        input.dtype
    );
    Ok(())
}

/// The case name: the input file's name.
fn name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}
