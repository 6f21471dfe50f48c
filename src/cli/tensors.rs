//! Tensors from `.npy` files as one case: the flags `record` and `check` share.

use std::path::{Path, PathBuf};

use anyhow::Context;

use ce_parity::fixtures::{Case, LossKind};
use ce_parity::loss::{Reduction, DEFAULT_IGNORE_INDEX};
use ce_parity::npy;
use ce_parity::tensor::Tensor;

#[derive(clap::Args, Default)]
pub struct TensorArgs {
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

impl TensorArgs {
    /// The case the flags describe, or None when `--input` is absent.
    ///
    /// # Errors
    /// A missing `--target`, unreadable or malformed files, and dtypes that
    /// cannot go together, each naming the flag and the file.
    pub fn case(&self) -> anyhow::Result<Option<Case>> {
        let Some(input_path) = &self.input else {
            let given = self.given_without_input();
            anyhow::ensure!(
                given.is_empty(),
                "{} {} --input X.npy (the logits, saved with np.save)",
                given.join(", "),
                if given.len() == 1 { "needs" } else { "need" }
            );
            return Ok(None);
        };
        let input = read("--input", input_path)?;
        anyhow::ensure!(
            input.dtype.is_float(),
            "--input {}: dtype {} is not floating; save the logits as float16, float32 or float64",
            input_path.display(),
            input.dtype
        );
        let mut case = match self.clip_temperature {
            Some(temperature) => clip_case(input_path, input, temperature)?,
            None => {
                let target_path = self.target.as_ref().context("--input needs --target")?;
                let target = read("--target", target_path)?;
                if target.dtype.is_float() {
                    same_dtype("--target", target_path, &target, &input)?;
                }
                Case::new(name(input_path), input, target)
            }
        };
        if let Some(path) = &self.weight {
            let weight = read("--weight", path)?;
            same_dtype("--weight", path, &weight, &case.input)?;
            case.weight = Some(weight);
        }
        if let Some(path) = &self.grad_output {
            let grad = read("--grad-output", path)?;
            same_dtype("--grad-output", path, &grad, &case.input)?;
            case.grad_output = Some(grad);
        }
        if let Some(e) = self.label_smoothing {
            anyhow::ensure!(!e.is_nan(), "--label-smoothing must be a number, got NaN");
            case.label_smoothing = e;
        }
        case.reduction = self.reduction.unwrap_or(Reduction::Mean);
        case.ignore_index = self.ignore_index.unwrap_or(DEFAULT_IGNORE_INDEX);
        if let (Some(path), Some(grad)) = (&self.grad_output, &case.grad_output) {
            let loss_shape = loss_shape(&case);
            anyhow::ensure!(
                grad.shape == loss_shape,
                "--grad-output {}: shape {:?}, but the loss has shape {loss_shape:?} \
                 (input {:?}, reduction {}); save it shaped like the loss",
                path.display(),
                grad.shape,
                case.input.shape,
                case.reduction.name()
            );
        }
        Ok(Some(case))
    }
}

impl TensorArgs {
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
fn loss_shape(case: &Case) -> Vec<usize> {
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

fn starts_with_npy_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 6];
    std::fs::File::open(path).is_ok_and(|mut f| f.read_exact(&mut magic).is_ok()) && &magic == b"\x93NUMPY"
}

/// A contrastive case: a 2-D similarity matrix and a positive temperature.
fn clip_case(input_path: &Path, input: Tensor, temperature: f64) -> anyhow::Result<Case> {
    anyhow::ensure!(
        temperature.is_finite() && temperature > 0.0,
        "--clip-temperature must be a positive finite number, got {temperature}"
    );
    let [_, _] = input.shape.as_slice() else {
        anyhow::bail!(
            "--input {}: the contrastive loss needs the N×M similarity matrix, got shape {:?}",
            input_path.display(),
            input.shape
        );
    };
    Ok(Case::clip(name(input_path), input, temperature))
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Tensor> {
    npy::load(path).with_context(|| format!("{flag}: cannot use this file"))
}

/// Mixed float dtypes are an error in PyTorch too; say which file to re-save.
fn same_dtype(flag: &str, path: &Path, t: &Tensor, input: &Tensor) -> anyhow::Result<()> {
    anyhow::ensure!(
        t.dtype == input.dtype,
        "{flag} {}: dtype {} differs from the input's {}; save both with the same dtype",
        path.display(),
        t.dtype,
        input.dtype
    );
    Ok(())
}

/// The case name: the input file's name.
fn name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}
