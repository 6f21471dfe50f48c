#!/usr/bin/env python3
"""Writes the case definitions of fixtures/surface.json and fixtures/nonfinite.json.

Cases only: `expected` is recorded afterwards from libtorch through tch with
`cargo run -- refresh fixtures/surface.json fixtures/nonfinite.json`.
Standard library only, seeded, so the files are reproducible.
"""
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ["float32", "float64", "float16", "bfloat16"]
REDUCTIONS = ["mean", "sum", "none"]


def tensor(dtype, shape, data):
    return {"dtype": dtype, "shape": shape, "data": data}


def case(name, dtype, shape, x, target, weight=None, reduction="mean", eps=0.0, ignore_index=-100):
    c = {"name": name, "input": tensor(dtype, shape, x), "target": target, "weight": weight,
         "reduction": reduction, "label_smoothing": eps, "grad_output": None}
    if ignore_index != -100:
        c["ignore_index"] = ignore_index
    return c


def surface(rng):
    def rnd(n, scale=2.0):
        return [round(rng.gauss(0, scale), 4) for _ in range(n)]

    cases = []
    for dt in DTYPES:
        for red in REDUCTIONS:
            for eps in [0.0, 0.2]:
                s = f"{dt}/{red}/eps{eps}"
                w4 = tensor(dt, [4], [1, 2, 0.5, 1])
                cases += [
                    case(f"kdim3/{s}", dt, [2, 4, 3], rnd(24), tensor("int64", [2, 3], [0, 1, 2, 3, -100, 1]), w4, red, eps),
                    case(f"kdim4/{s}", dt, [2, 3, 2, 2], rnd(24), tensor("int64", [2, 2, 2], [0, 1, 2, 0, 1, 2, 0, -100]), None, red, eps),
                    case(f"kdim5/{s}", dt, [1, 3, 2, 1, 2], rnd(12), tensor("int64", [1, 2, 1, 2], [0, 1, 2, 0]), None, red, eps),
                    case(f"unbatched/{s}", dt, [5], rnd(5), tensor("int64", [], [3]), tensor(dt, [5], [1, 2, 3, 4, 5]), red, eps),
                    case(f"unbatched_ignored/{s}", dt, [5], rnd(5), tensor("int64", [], [-100]), None, red, eps),
                    case(f"probabilities/{s}", dt, [3, 4], rnd(12), tensor(dt, [3, 4], rnd(12, 0.5)), tensor(dt, [4], [1, -2, 0.5, 1]), red, eps),
                    case(f"probabilities_kdim/{s}", dt, [2, 3, 2], rnd(12), tensor(dt, [2, 3, 2], rnd(12, 0.5)), None, red, eps),
                    case(f"probabilities_unbatched/{s}", dt, [4], rnd(4), tensor(dt, [4], rnd(4, 0.5)), None, red, eps),
                    case(f"rows16x50/{s}", dt, [16, 50], rnd(800), tensor("int64", [16], [rng.randrange(50) for _ in range(16)]), None, red, eps),
                    case(f"uint8_target/{s}", dt, [3, 4], rnd(12), tensor("uint8", [3], [0, 3, 1]), None, red, eps),
                ]
    return cases


def nonfinite():
    cases = []
    for dt in DTYPES:
        for red in REDUCTIONS:
            for eps in [0.0, 0.1]:
                s = f"{dt}/{red}/eps{eps}"
                i64 = lambda d: tensor("int64", [len(d)], d)
                row = [1.0, "-inf", 0.5, 0.2, 0.3, 0.1]
                cases += [
                    case(f"neginf_other_class/{s}", dt, [2, 3], row, i64([0, 1]), None, red, eps),
                    case(f"neginf_target_class/{s}", dt, [2, 3], row, i64([1, 1]), None, red, eps),
                    case(f"posinf/{s}", dt, [2, 3], [1.0, "inf", 0.5, 0.2, 0.3, 0.1], i64([0, 1]), None, red, eps),
                    case(f"nan/{s}", dt, [2, 3], [1.0, "nan", 0.5, 0.2, 0.3, 0.1], i64([0, 1]), None, red, eps),
                    case(f"all_neginf_row/{s}", dt, [2, 3], ["-inf", "-inf", "-inf", 0.2, 0.3, 0.1], i64([0, 1]), None, red, eps),
                    case(f"ignored_nan_row/{s}", dt, [2, 3], ["nan", 1.0, 0.5, 0.2, 0.3, 0.1], i64([-100, 1]), None, red, eps),
                    case(f"zero_weight_on_neginf/{s}", dt, [2, 3], row, i64([0, 1]), tensor(dt, [3], [1, 0, 1]), red, eps),
                    case(f"empty_batch/{s}", dt, [0, 3], [], i64([]), None, red, eps),
                    case(f"empty_kdim/{s}", dt, [0, 3, 2], [], tensor("int64", [0, 2], []), None, red, eps),
                    case(f"empty_probabilities/{s}", dt, [0, 3], [], tensor(dt, [0, 3], []), None, red, eps),
                    case(f"probabilities_neginf/{s}", dt, [1, 3], [1.0, "-inf", 0.5], tensor(dt, [1, 3], [0.5, 0.0, 0.5]), None, red, eps),
                ]
    return cases


def write(path, description, cases):
    doc = {"format": "ce-parity-fixture/1", "description": description, "cases": cases}
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    write(ROOT / "fixtures/surface.json",
          "K-dim (3, 4, 5 dims), unbatched, class-probability targets (unnormalised, negative weights), "
          "uint8 targets and 16x50 rows, in float32, float64, float16 and bfloat16, every reduction, with and without smoothing.",
          surface(random.Random(20261128)))
    write(ROOT / "fixtures/nonfinite.json",
          "Non-finite logits (-inf on another class or the target, +inf, NaN, all -inf rows, ignored NaN rows, "
          "zero weight on a -inf class) and empty batches, in every float dtype and reduction.",
          nonfinite())
