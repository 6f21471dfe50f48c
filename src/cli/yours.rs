//! Your outputs under test: a loss and a gradient you computed (your Rust
//! port, your kernel), judged against live libtorch — or, with
//! `--no-libtorch`, against ce-parity's answer computed in float64 and
//! rounded to the case's dtype (the side named "float64") — by `check`'s
//! verdict rule, with "yours" in the place of ce-parity's Rust.

use ce_parity::fixtures::Values;
use std::path::{Path, PathBuf};

use anyhow::Context;

use ce_parity::compare::Overrides;
use ce_parity::fixtures::{Case, LossKind};
use ce_parity::npy;
use ce_parity::runner::{in_float64, run_rust, tolerance, verdict_named, CaseReport, Outcome, SideNames};
use ce_parity::safetensors_file;
use ce_parity::tensor::{DType, Tensor};

use super::live::{most_trusted, run_libtorch};
use super::tensors::{loss_shape, Given};

#[derive(clap::Args, Default)]
pub struct OutputArgs {
    /// Your loss, to judge against libtorch: a .npy file, or a .safetensors
    /// file (its tensor named "loss", or its only tensor).
    #[arg(long, value_name = "FILE")]
    pub loss: Option<PathBuf>,
    /// Your gradient with respect to the input, to judge: a .npy file, or a
    /// .safetensors file (its tensor named "grad_input", or its only tensor).
    #[arg(long = "grad", value_name = "FILE")]
    pub grad_input: Option<PathBuf>,
}

/// The outputs under test, each checked against the case's shapes.
pub struct Yours {
    pub loss: Option<Tensor>,
    pub grad_input: Option<Tensor>,
    /// A CLIP step's gradients, by name (grad_image_embeds, …).
    pub grads: Vec<(&'static str, Tensor)>,
}

/// Your outputs from the flags and the `--tensors` file; None when there are none.
///
/// # Errors
/// An unreadable file, an output given twice (flag and file), a
/// non-floating output, or a shape the case's output cannot have, naming
/// the flag or the file and the tensor.
pub fn outputs(args: &OutputArgs, given: &mut Given) -> anyhow::Result<Option<Yours>> {
    if let (LossKind::ClipStep { .. }, Some(path)) = (given.case.loss, &args.grad_input) {
        anyhow::bail!(
            "--grad {}: a clip_step case has no grad_input; save grad_image_embeds, grad_text_embeds \
             and grad_logit_scale in the --tensors file",
            path.display()
        );
    }
    let grads = std::mem::take(&mut given.grads);
    let loss = pick("--loss", args.loss.as_deref(), "loss", given.loss.take())?;
    let grad_input = pick(
        "--grad",
        args.grad_input.as_deref(),
        "grad_input",
        given.grad_input.take(),
    )?;
    let case = &given.case;
    if let Some((loss, label)) = &loss {
        ensure_shape(label, loss, &loss_shape(case), "the loss")?;
    }
    if let Some((grad, label)) = &grad_input {
        ensure_shape(
            label,
            grad,
            &case.input.shape,
            "the input (grad_input is shaped like it)",
        )?;
    }
    if loss.is_none() && grad_input.is_none() && grads.is_empty() {
        return Ok(None);
    }
    Ok(Some(Yours {
        loss: loss.map(|(t, _)| t),
        grad_input: grad_input.map(|(t, _)| t),
        grads,
    }))
}

/// The output from its flag, or from the `--tensors` file; both is an error.
fn pick(
    flag: &str,
    path: Option<&Path>,
    name: &str,
    in_file: Option<(Tensor, String)>,
) -> anyhow::Result<Option<(Tensor, String)>> {
    let Some(path) = path else {
        return Ok(in_file);
    };
    if let Some((_, label)) = in_file {
        anyhow::bail!("{flag} {} and {label} both give {name}; give it once", path.display());
    }
    let label = format!("{flag} {}", path.display());
    Ok(Some((read_output(flag, path, name)?, label)))
}

/// A .npy file, or a .safetensors file's tensor `name` (or its only tensor).
fn read_output(flag: &str, path: &Path, name: &str) -> anyhow::Result<Tensor> {
    let tensor = if is_safetensors(path) {
        let mut file = safetensors_file::load(path).with_context(|| format!("{flag}: cannot use this file"))?;
        match file.tensors.remove(name) {
            Some(t) => t,
            None if file.tensors.len() == 1 => file.tensors.into_values().next().expect("one tensor"),
            None => anyhow::bail!(
                "{flag} {}: no tensor named {name:?}, and {} others to choose from ({}); name it {name:?}",
                path.display(),
                file.tensors.len(),
                file.tensors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    } else {
        npy::load(path).with_context(|| format!("{flag}: cannot use this file"))?
    };
    anyhow::ensure!(
        tensor.dtype.is_float(),
        "{flag} {}: dtype {} is not floating; save your {name} as the float it is",
        path.display(),
        tensor.dtype
    );
    Ok(tensor)
}

/// A `.safetensors` file by its name, or by its first bytes not being numpy's magic.
fn is_safetensors(path: &Path) -> bool {
    match path.extension() {
        Some(e) if e.eq_ignore_ascii_case("safetensors") => true,
        Some(e) if e.eq_ignore_ascii_case("npy") => false,
        _ => !super::tensors::starts_with_npy_magic(path),
    }
}

fn ensure_shape(label: &str, t: &Tensor, shape: &[usize], of: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        t.shape == shape,
        "{label}: shape {:?}, but {of} has shape {shape:?}",
        t.shape
    );
    anyhow::ensure!(t.dtype.is_float(), "{label}: dtype {} is not floating", t.dtype);
    Ok(())
}

/// The verdict on your outputs: against live libtorch when `live`, else
/// against ce-parity's answer computed in float64. The rule is `check`'s: a
/// value within assert_close's tolerance of the reference passes, and so does
/// one closer to the exact answer than libtorch's own rounding allows.
///
/// # Errors
/// When the reference rejects the case (`check` has refused such tensors before).
pub fn judge(case: &Case, yours: &Yours, overrides: Overrides, live: bool) -> anyhow::Result<CaseReport> {
    let libtorch = if live { run_libtorch(case) } else { None };
    let (reference_name, reference) = match libtorch {
        Some(libtorch) => ("libtorch", libtorch),
        None => ("float64", rounded(run_rust(&in_float64(case)), case.input.dtype)),
    };
    let names = SideNames {
        tested: "yours",
        reference: reference_name,
    };
    // Without your loss, the reference's stands in for it (an exact match,
    // so it cannot sway the verdict) and is dropped from the report.
    let Outcome::Values(Values {
        loss: reference_loss, ..
    }) = &reference
    else {
        anyhow::bail!("{reference_name} cannot compute these tensors: {reference:?}");
    };
    let stand_in = yours.loss.is_none();
    let tested = Outcome::Values(Values {
        loss: yours.loss.clone().unwrap_or_else(|| reference_loss.clone()),
        grad_input: yours.grad_input.clone(),
        grad_target: None,
        named_grads: yours.grads.clone(),
    });
    let float64 = |c: &Case| {
        let mut exact = most_trusted(c, live);
        // The stand-in loss is judged against itself, not the exact answer.
        if let (true, Outcome::Values(Values { loss, .. })) = (stand_in, &mut exact) {
            *loss = reference_loss.clone();
        }
        exact
    };
    let mut report = verdict_named(
        names,
        case,
        &tested,
        Some(&reference),
        float64,
        tolerance(case, overrides),
    );
    if stand_in {
        drop_loss(&mut report);
    }
    Ok(report)
}

/// The float64 answer rounded to the case's dtype: what a correctly rounded
/// implementation returns, so ULP distances count in the case's dtype.
fn rounded(outcome: Outcome, dtype: DType) -> Outcome {
    let round = |t: Tensor| Tensor::float(dtype, t.shape.clone(), t.to_f64());
    match outcome {
        Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            named_grads,
        }) => Outcome::Values(Values {
            loss: round(loss),
            grad_input: grad_input.map(round),
            grad_target: grad_target.map(round),
            named_grads: named_grads.into_iter().map(|(name, g)| (name, round(g))).collect(),
        }),
        other => other,
    }
}

/// Removes the stand-in loss's comparisons from the report.
fn drop_loss(report: &mut CaseReport) {
    let mut total = ce_parity::compare::Difference::default();
    for c in &mut report.comparisons {
        c.outputs.retain(|o| o.output != "loss");
        let mut difference = ce_parity::compare::Difference::default();
        for o in &c.outputs {
            difference.merge(&o.difference);
        }
        c.difference = difference;
        total.merge(&c.difference);
    }
    report.difference = total;
}
