#!/usr/bin/env python3
"""Writes the case definitions of fixtures/clip_step.json: OpenCLIP's loss
step from embeddings with a learnable logit_scale,

    logits = exp(logit_scale) · normalize(image_embeds) · normalize(text_embeds)ᵀ
    loss   = ½ · (CE(logits, arange(N), ε) + CE(logitsᵀ, arange(N), ε)),

judged on the loss and its gradients w.r.t. image_embeds, text_embeds and
logit_scale.

Cases only: `expected` is recorded afterwards from libtorch through tch with
`cargo run -- refresh fixtures/clip_step.json`.
Standard library only, seeded, so the file is reproducible.
"""
import json
import math
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP_INIT = math.log(1 / 0.07)  # OpenCLIP's initial logit_scale
CLIP_MAX = math.log(100)  # where OpenCLIP clamps it


def tensor(dtype, shape, data):
    return {"dtype": dtype, "shape": shape, "data": data}


def case(name, dtype, image, text, logit_scale, eps, grad_output=None, shapes=None):
    image_shape, text_shape = shapes or ([len(image) // DIM[0], DIM[0]], [len(text) // DIM[0], DIM[0]])
    return {"name": name, "loss": "clip_step",
            "image_embeds": tensor(dtype, image_shape, image),
            "text_embeds": tensor(dtype, text_shape, text),
            "logit_scale": tensor(dtype, [], [logit_scale]),
            "label_smoothing": eps, "grad_output": grad_output}


DIM = [32]


def embeddings(rng, n, dim, pull=0.8):
    """Raw (unnormalised) embeddings of n pairs: text i pulled towards image
    i, as a trained model's would be; norms vary so normalize matters."""
    images = [[rng.gauss(0, 1) * rng.uniform(0.5, 3.0) for _ in range(dim)] for _ in range(n)]
    texts = [[rng.gauss(0, 1) + pull * x for x in img] for img in images]
    flat = lambda rows: [round(x, 4) for row in rows for x in row]
    return flat(images), flat(texts)


def main():
    rng = random.Random(20261201)
    cases = []

    def add(name, dtype, n, dim, logit_scale, eps, **kw):
        DIM[0] = dim
        image, text = embeddings(rng, n, dim)
        cases.append(case(name, dtype, image, text, logit_scale, eps, **kw))

    for dtype in ["float32", "float64"]:
        for scale_name, scale in [("init", CLIP_INIT), ("max", CLIP_MAX)]:
            for n in [1, 2, 7, 16, 64]:
                add(f"clip_step/{dtype}/scale_{scale_name}/n{n}/eps0.1", dtype, n, 32 if n < 64 else 16, scale, 0.1)
            for eps in [0.0, 0.2]:
                add(f"clip_step/{dtype}/scale_{scale_name}/n8/eps{eps}", dtype, 8, 16, scale, eps)
    # No float16/bfloat16 cases: at logit scale up to 100 a half logit's ulp
    # is up to 0.5, so one matmul accumulation order rounding a logit the
    # other way moves the gradients by many half ulps; ce-parity's f32
    # accumulation cannot follow MKL's. The CLIP step's rounding allowance
    # (src/runner/clip_step_bound.rs) accepts such values, but for half
    # dtypes it is wide enough (per cent to tens of per cent) that a bundled
    # half case would prove little.
    add("clip_step/medical16/float32/d64/eps0.1", "float32", 16, 64, CLIP_INIT, 0.1)
    add("clip_step/grad_output/float32", "float32", 4, 8, CLIP_INIT, 0.1, grad_output=tensor("float32", [], [2.5]))
    add("clip_step/grad_output/float64", "float64", 4, 8, CLIP_MAX, 0.2, grad_output=tensor("float64", [], [-0.75]))
    add("clip_step/scale0/float32", "float32", 5, 8, 0.0, 0.1)
    add("clip_step/d1/float32", "float32", 3, 1, CLIP_INIT, 0.1)
    # A zero embedding: F.normalize's eps keeps it at 0 (no gradient through the norm).
    DIM[0] = 4
    cases.append(case("clip_step/zero_image/float32", "float32", [0, 0, 0, 0, 0.5, -1, 2, 0.25],
                      [0.3, 0.1, -0.2, 0.9, 0.5, -0.8, 1.5, 0.0], CLIP_INIT, 0.1))
    cases.append(case("clip_step/nan_text/float32", "float32", [1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5],
                      [1, 0, 0, "nan", 0.5, 0.5, 0.5, 0.5], CLIP_INIT, 0.1))
    cases.append(case("clip_step/empty/float32", "float32", [], [], CLIP_INIT, 0.1,
                      shapes=([0, 4], [0, 4])))
    # The article's setting, small enough to show whole: `ce-parity explain
    # --clip-step` walks it step by step (4 image–report pairs, D = 6).
    add("clip_step/article/float32", "float32", 4, 6, CLIP_INIT, 0.1)
    # Rejections, as libtorch raises them for the composition.
    two = [0.5, -1.0, 0.25, 2.0, 1.0, 0.0]
    reject = [
        ("width_mismatch", two, [2, 3], [0.5, 1, 1, 0.5, -1, 0, 0, 1], [2, 4], 0.1),
        ("more_images_than_texts", two, [3, 2], [1, 0, 0, 1], [2, 2], 0.1),
        ("fewer_images_than_texts", [1, 0, 0, 1], [2, 2], two, [3, 2], 0.1),
        ("fewer_images_than_texts/label_smoothing_1.5", [1, 0, 0, 1], [2, 2], two, [3, 2], 1.5),
        ("label_smoothing_1.5", [1, 0, 0, 1], [2, 2], [1, 0, 0, 1], [2, 2], 1.5),
        ("text_3d", [1, 0, 0, 1], [2, 2], [1, 0, 0, 1, 1, 0, 0, 1], [2, 2, 2], 0.1),
        ("image_3d", [1, 0, 0, 1, 1, 0, 0, 1], [2, 2, 2], [1, 0, 0, 1], [2, 2], 0.1),
        ("image_3d_width_mismatch", [1, 0, 0, 1, 1, 0, 0, 1], [2, 2, 2], [1, 0, 0, 1, 1, 0], [2, 3], 0.1),
        ("image_0d", [1], [], [1, 0, 0, 1], [2, 2], 0.1),
    ]
    for name, image, image_shape, text, text_shape, eps in reject:
        cases.append(case(f"clip_step/reject/{name}/float32", "float32", image, text, CLIP_INIT, eps,
                          shapes=(image_shape, text_shape)))
    fixture = {
        "format": "ce-parity-fixture/1",
        "description": "OpenCLIP's loss step from embeddings with a learnable logit_scale: "
                       "logits = exp(logit_scale)·normalize(image_embeds)·normalize(text_embeds)ᵀ, "
                       "loss = ½·(CE(logits, arange(N), ε) + CE(logitsᵀ, arange(N), ε)), judged on the loss and "
                       "its gradients w.r.t. image_embeds, text_embeds and logit_scale. Paired embeddings (texts "
                       "pulled towards their images, varied norms), N from 1 to 64, logit_scale at OpenCLIP's "
                       "initial ln(1/0.07) and its clamp ln 100, smoothing 0, 0.1 and 0.2, float32 and float64, a "
                       "scalar upstream gradient, a zero embedding, a NaN, an empty batch and the rejections; "
                       "generated by scripts/gen_clip_step.py, recorded from libtorch through tch.",
        "cases": cases,
    }
    (ROOT / "fixtures" / "clip_step.json").write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
