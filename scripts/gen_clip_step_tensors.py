#!/usr/bin/env python3
"""Writes tests/data/clip_step/: OpenCLIP's loss step saved as a user would
save it for `ce-parity check --tensors STEP.safetensors` — the embeddings,
the learnable logit_scale, and PyTorch's own loss and gradients (w.r.t. both
embeddings and logit_scale) as the outputs under test:

    logits = logit_scale.exp() * F.normalize(image) @ F.normalize(text).t()
    loss   = (F.cross_entropy(logits, labels, label_smoothing=eps)
              + F.cross_entropy(logits.t(), labels, label_smoothing=eps)) / 2

Run with the provisioned venv's python (torch 2.13.0, numpy, safetensors):
    ~/.cache/ce-parity/torch-2.13.0/bin/python scripts/gen_clip_step_tensors.py
"""
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "clip_step"


def step(image, text, logit_scale, eps, grad_output=None):
    """PyTorch's CLIP step: the loss and the three gradients autograd leaves."""
    image = image.detach().clone().requires_grad_(True)
    text = text.detach().clone().requires_grad_(True)
    logit_scale = logit_scale.detach().clone().requires_grad_(True)
    logits = logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()
    labels = torch.arange(image.shape[0])
    loss = (F.cross_entropy(logits, labels, label_smoothing=eps)
            + F.cross_entropy(logits.t(), labels, label_smoothing=eps)) / 2
    loss.backward(grad_output if grad_output is not None else torch.ones_like(loss))
    return dict(image_embeds=image.detach(), text_embeds=text.detach(), logit_scale=logit_scale.detach(),
                loss=loss.detach(), grad_image_embeds=image.grad, grad_text_embeds=text.grad,
                grad_logit_scale=logit_scale.grad)


def pairs(g, n, d, dtype):
    """Matched pairs: text i near image i, norms varied so normalize matters."""
    image = torch.randn(n, d, generator=g, dtype=torch.float64) * (torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 + 0.5)
    text = image * 0.8 + torch.randn(n, d, generator=g, dtype=torch.float64)
    return image.to(dtype), text.to(dtype)


def save(name, tensors, **metadata):
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, OUT / name, metadata={k: str(v) for k, v in metadata.items()})
    print(f"{name}: loss {tensors['loss'].item():.6f}, grad_logit_scale {tensors['grad_logit_scale'].item():.6f}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(16)

    # The article's setting: image–report pairs, OpenCLIP's initial
    # temperature (logit_scale = ln(1/0.07)), label smoothing 0.1, float32.
    image, text = pairs(g, 6, 8, torch.float32)
    scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float32)
    article = step(image, text, scale, 0.1)
    save("f32_article.safetensors", article, kind="clip_step", label_smoothing=0.1)

    # float64 at OpenCLIP's clamp (logit_scale = ln 100), smoothing 0.2, an upstream gradient.
    image, text = pairs(g, 5, 4, torch.float64)
    scale = torch.tensor(math.log(100), dtype=torch.float64)
    go = torch.tensor(0.75, dtype=torch.float64)
    save("f64_scale_max.safetensors", {**step(image, text, scale, 0.2, go), "grad_output": go},
         kind="clip_step", label_smoothing=0.2)

    # The article's step without metadata, as np.savez writes it (the kind
    # is told by image_embeds, the smoothing given as a flag).
    np.savez(OUT / "f32_article.npz", **{k: v.numpy() for k, v in article.items()})
    print("f32_article.npz: the same step, np.savez")


if __name__ == "__main__":
    main()
