"""Writes tests/data/npz/: the article's call as numpy `.npz` archives, as a
PyTorch user hands them over (np.savez and np.savez_compressed), with
PyTorch's own loss and gradient as the outputs under test, and a copy whose
loss is the article's printed 0.4122.

Run with the provisioned venv's python (torch 2.13.0, numpy):
    ~/.cache/ce-parity/torch-2.13.0/bin/python scripts/gen_npz.py
"""
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "npz"
out.mkdir(parents=True, exist_ok=True)

x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 1.5, 0.8]], requires_grad=True)
t = torch.tensor([0, 1])
loss = F.cross_entropy(x, t, label_smoothing=0.1)
loss.backward()
arrays = {
    "input": x.detach().numpy(),
    "target": t.numpy(),
    "loss": loss.detach().numpy(),
    "grad_input": x.grad.numpy(),
}
np.savez(out / "article.npz", **arrays)
np.savez_compressed(out / "article_compressed.npz", **arrays)
np.savez(out / "article_printed_loss.npz", **{**arrays, "loss": np.array(0.4122, dtype=np.float32)})
print(f"loss {loss.item():.6f}; wrote {out}")
