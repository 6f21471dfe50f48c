//! A `--tensors` file holding OpenCLIP's loss step (`__metadata__` `kind` =
//! `clip_step`, or, in an `.npz` archive, which has no metadata, a tensor
//! named `image_embeds`): the embeddings, `logit_scale` and the step's
//! outputs under test, each checked by name before anything runs.

use anyhow::Context;

use ce_parity::fixtures::{Case, CLIP_STEP_GRADS};
use ce_parity::safetensors_file::TensorFile;
use ce_parity::tensor::Tensor;

use super::tensors::{Given, TensorArgs};

/// The tensor names a `clip_step` file may hold.
pub const TENSOR_NAMES: [&str; 8] = [
    "image_embeds",
    "text_embeds",
    "logit_scale",
    "grad_output",
    "loss",
    "grad_image_embeds",
    "grad_text_embeds",
    "grad_logit_scale",
];

/// The `__metadata__` keys a `clip_step` file may hold (besides `format`).
pub const METADATA_KEYS: [&str; 2] = ["kind", "label_smoothing"];

/// Whether a `--tensors` file holds a CLIP step: its metadata says so, or it
/// says nothing and holds `image_embeds`.
///
/// # Errors
/// A `kind` other than `cross_entropy` or `clip_step`, named with the file.
pub fn is_clip_step(shown: &str, file: &TensorFile) -> anyhow::Result<bool> {
    match file.metadata.get("kind").map(String::as_str) {
        Some("clip_step") => Ok(true),
        Some("cross_entropy") => Ok(false),
        None => Ok(file.tensors.contains_key("image_embeds")),
        Some(other) => anyhow::bail!(
            "--tensors {shown}: metadata \"kind\": {other:?} is not a kind ce-parity reads \
             (\"cross_entropy\", the default, or \"clip_step\")"
        ),
    }
}

impl TensorArgs {
    /// The CLIP step a `--tensors` file holds, with its outputs under test.
    pub(super) fn read_clip_step(&self, shown: &str, name: String, file: TensorFile) -> anyhow::Result<Given> {
        let at = |what: &str| format!("--tensors {shown}: tensor {what:?}");
        if let Some(flag) = self.cross_entropy_only().first() {
            anyhow::bail!(
                "{flag}: a clip_step case has none (--tensors {shown}); OpenCLIP's loss is the mean over the pairs"
            );
        }
        for tensor in file.tensors.keys() {
            anyhow::ensure!(
                TENSOR_NAMES.contains(&tensor.as_str()),
                "{}: not one ce-parity reads in a clip_step file (it reads {})",
                at(tensor),
                TENSOR_NAMES.join(", ")
            );
        }
        for key in file.metadata.keys() {
            anyhow::ensure!(
                METADATA_KEYS.contains(&key.as_str()) || key == "format",
                "--tensors {shown}: metadata key {key:?} is not one ce-parity reads in a clip_step file (it reads {})",
                METADATA_KEYS.join(", ")
            );
        }
        let mut tensors = file.tensors;
        let mut take = |what: &str| tensors.remove(what);
        let image = take("image_embeds").with_context(|| {
            format!("--tensors {shown}: no tensor named \"image_embeds\" (N×D, the image tower's output)")
        })?;
        let text = take("text_embeds").with_context(|| {
            format!("--tensors {shown}: no tensor named \"text_embeds\" (N×D, the text tower's output)")
        })?;
        let scale = take("logit_scale").with_context(|| {
            format!("--tensors {shown}: no tensor named \"logit_scale\" (0-d, the learnable temperature)")
        })?;
        anyhow::ensure!(
            image.dtype.is_float(),
            "{}: dtype {} is not floating; save the embeddings as float32 or float64",
            at("image_embeds"),
            image.dtype
        );
        let [_, _] = image.shape.as_slice() else {
            anyhow::bail!(
                "{}: shape {:?}; the embeddings must be 2-D (N pairs × D)",
                at("image_embeds"),
                image.shape
            );
        };
        anyhow::ensure!(
            text.shape == image.shape,
            "{}: shape {:?}, but image_embeds has shape {:?}; text i pairs with image i",
            at("text_embeds"),
            text.shape,
            image.shape
        );
        for (what, t) in [("text_embeds", &text), ("logit_scale", &scale)] {
            ensure_dtype(&at(what), t, &image)?;
        }
        anyhow::ensure!(
            scale.shape.is_empty(),
            "{}: shape {:?}; logit_scale is a 0-d tensor (torch.ones([]) * log(1/0.07))",
            at("logit_scale"),
            scale.shape
        );
        let logit_scale = scale.to_f64()[0];
        let mut case = Case::clip_step(name.clone(), image, text, logit_scale);
        if let Some(grad) = take("grad_output") {
            ensure_dtype(&at("grad_output"), &grad, &case.input)?;
            ensure_shape(&at("grad_output"), &grad, &[], "the loss")?;
            case.grad_output = Some(grad);
        }
        let label_smoothing = match file.metadata.get("label_smoothing") {
            Some(v) => Some(v.trim().parse::<f64>().map_err(|_| {
                anyhow::anyhow!("--tensors {shown}: metadata \"label_smoothing\": {v:?} is not a number")
            })?),
            None => None,
        };
        if let Some(e) = self.label_smoothing.or(label_smoothing) {
            anyhow::ensure!(!e.is_nan(), "--label-smoothing must be a number, got NaN");
            case.label_smoothing = e;
        }
        let loss = take("loss");
        if let Some(loss) = &loss {
            ensure_output(&at("loss"), loss, &[])?;
        }
        let [image_name, text_name, scale_name] = CLIP_STEP_GRADS;
        let mut grads = Vec::new();
        for (what, shape) in [
            (image_name, &case.input.shape),
            (text_name, &case.target.shape),
            (scale_name, &Vec::new()),
        ] {
            if let Some(grad) = take(what) {
                ensure_output(&at(what), &grad, shape)?;
                grads.push((what, grad));
            }
        }
        Ok(Given {
            case,
            source: format!("tensors from {name}"),
            loss: loss.map(|l| (l, at("loss"))),
            grad_input: None,
            grads,
        })
    }
}

/// Your output: floating, and shaped as the step's output is.
fn ensure_output(label: &str, t: &Tensor, shape: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(
        t.dtype.is_float(),
        "{label}: dtype {} is not floating; save your output as the float it is",
        t.dtype
    );
    ensure_shape(label, t, shape, "the step's output")
}

fn ensure_shape(label: &str, t: &Tensor, shape: &[usize], of: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        t.shape == shape,
        "{label}: shape {:?}, but {of} has shape {shape:?}",
        t.shape
    );
    Ok(())
}

/// The step runs in one dtype, as OpenCLIP's model does.
fn ensure_dtype(label: &str, t: &Tensor, image: &Tensor) -> anyhow::Result<()> {
    anyhow::ensure!(
        t.dtype == image.dtype,
        "{label}: dtype {} differs from image_embeds' {}; save the step in one dtype",
        t.dtype,
        image.dtype
    );
    Ok(())
}
