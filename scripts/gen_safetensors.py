#!/usr/bin/env python3
"""Writes tests/data/safetensors/*.safetensors: PyTorch calls saved as a user
would save them for `ce-parity check --tensors`, with PyTorch's own loss and
gradient as the outputs under test.

Run with the provisioned venv (torch 2.13, plus `pip install safetensors numpy`):
    ~/.cache/ce-parity/torch-2.13.0/bin/python scripts/gen_safetensors.py

The files live under tests/data, not fixtures/: every fixtures/**/*.json is
bundled, and these are the tests' input, not fixtures.
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "safetensors"


def call(x, t, weight=None, grad_output=None, label_smoothing=0.0, reduction="mean", ignore_index=-100):
    """PyTorch's loss and d(loss·grad_output)/dx, in x's dtype."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(
        x, t, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    loss.backward(grad_output if grad_output is not None else torch.ones_like(loss))
    return loss.detach(), x.grad


def save(name, tensors, **options):
    """The file a user writes: tensors by name, options as string metadata."""
    tensors = {k: v.contiguous() for k, v in tensors.items() if v is not None}
    metadata = {k: str(v) for k, v in options.items()}
    save_file(tensors, OUT / name, metadata=metadata)
    print(f"{name}: " + ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in tensors.items()), metadata)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(14)

    # float32 with class weights, a non-default ignore_index (targets hit it) and smoothing.
    x = torch.randn(6, 5, generator=g) * 2
    t = torch.tensor([0, 3, 2, 3, 4, 1])
    w = torch.rand(5, generator=g) + 0.5
    options = dict(label_smoothing=0.1, reduction="mean", ignore_index=3)
    loss, grad = call(x, t, weight=w, **options)
    save("f32_weight_ignore.safetensors", dict(input=x, target=t, weight=w, loss=loss, grad_input=grad), **options)

    # float64, reduction sum, with an upstream gradient.
    x = torch.randn(4, 7, generator=g, dtype=torch.float64)
    t = torch.tensor([6, 0, 2, 5])
    go = torch.tensor(0.75, dtype=torch.float64)
    loss, grad = call(x, t, grad_output=go, reduction="sum", label_smoothing=0.05)
    save(
        "f64_sum.safetensors",
        dict(input=x, target=t, grad_output=go, loss=loss, grad_input=grad),
        reduction="sum",
        label_smoothing=0.05,
    )

    # bfloat16 rows: probability targets, mean.
    x = (torch.randn(8, 10, generator=g) * 3).to(torch.bfloat16)
    p = torch.softmax(torch.randn(8, 10, generator=g), dim=1).to(torch.bfloat16)
    loss, grad = call(x, p)
    save("bf16_rows.safetensors", dict(input=x, target=p, loss=loss, grad_input=grad))

    # float16 K-dim, reduction none, a random upstream gradient: PyTorch's own
    # float16 outputs, and the same outputs computed in float64 then cast to
    # float16 (what a careful port produces).
    for seed in range(100):
        g16 = torch.Generator().manual_seed(seed)
        x = (torch.randn(2, 4, 3, 5, generator=g16) * 3).to(torch.float16)
        t = torch.randint(0, 4, (2, 3, 5), generator=g16)
        t[0, 1, 2] = -100
        go = torch.randn(2, 3, 5, generator=g16).to(torch.float16)
        loss, grad = call(x, t, grad_output=go, reduction="none")
        loss64, grad64 = call(x.double(), t, grad_output=go.double(), reduction="none")
        cast = grad64.to(torch.float16)
        try:
            torch.testing.assert_close(cast, grad)  # float16: rtol 1e-3, atol 1e-5
        except AssertionError:
            break
    else:
        raise SystemExit("no seed puts the cast float64 gradient outside assert_close's float16 tolerance")
    print(f"seed {seed}: the float64 gradient cast to float16 fails assert_close against PyTorch's float16 one")
    save("f16_kdim_none.safetensors", dict(input=x, target=t, grad_output=go, loss=loss, grad_input=grad), reduction="none")
    save(
        "f16_kdim_none_from_f64.safetensors",
        dict(input=x, target=t, grad_output=go, loss=loss64.to(torch.float16), grad_input=cast),
        reduction="none",
    )

    # The article's case, tensors only: check runs ce-parity's Rust on it.
    x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 1.5, 0.8]])
    t = torch.tensor([0, 1])
    save("article.safetensors", dict(input=x, target=t), label_smoothing=0.1)


if __name__ == "__main__":
    main()
