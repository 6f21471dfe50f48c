#!/usr/bin/env python3
"""Writes the case definitions of fixtures/errors.json: one case per rejection
libtorch's cross_entropy_loss makes (and a few look-alikes it accepts), each
with the combination that shows which check libtorch runs first.

Cases only; `cargo run -- refresh fixtures/errors.json` records libtorch's
first error line (or its values) through tch.
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def t(dtype, shape, fill=None):
    n = prod(shape)
    if fill is not None:
        data = [fill] * n
    elif dtype in ("int64", "uint8"):
        data = [i % 2 for i in range(n)]
    else:
        data = [round(0.37 * ((i * 7) % 11) - 1.5, 3) for i in range(n)]
    return {"dtype": dtype, "shape": shape, "data": data}


def probs(dtype, shape):
    return {"dtype": dtype, "shape": shape, "data": [round(0.1 + 0.05 * (i % 5), 3) for i in range(prod(shape))]}


def classes(values, dtype="int64", shape=None):
    return {"dtype": dtype, "shape": [len(values)] if shape is None else shape, "data": values}


CASES = []


def case(name, x, target, weight=None, reduction="mean", eps=0.0, ignore_index=-100):
    c = {"name": name, "input": x, "target": target, "weight": weight, "reduction": reduction,
         "label_smoothing": eps, "grad_output": None}
    if ignore_index != -100:
        c["ignore_index"] = ignore_index
    CASES.append(c)


F = "float32"
x34 = t(F, [3, 4])
# Targets out of range: the first bad one in order is reported, under every reduction.
case("target_out_of_bounds", x34, classes([0, 5, 1]))
case("target_out_of_bounds/first_reported", x34, classes([7, 5, 1]))
# (Under "none" libtorch checks rows in parallel, so with several bad targets
# which one it reports depends on thread timing: one bad target here.)
case("target_out_of_bounds/none", t(F, [4, 3]), classes([0, 1, 0, 5]), reduction="none")
case("target_out_of_bounds/negative", x34, classes([0, -5, 1]))
case("target_out_of_bounds/with_smoothing", x34, classes([0, 5, 1]), eps=0.1)
case("target_out_of_bounds/uint8", x34, classes([0, 9, 1], "uint8"))
case("target_out_of_bounds/kdim", t(F, [2, 3, 2]), classes([5, 0, 0, 9], shape=[2, 2]))
case("target_out_of_bounds/4d", t(F, [2, 3, 2, 2]), classes([3] * 8, shape=[2, 2, 2]))
case("target_out_of_bounds/unbatched", t(F, [4]), classes([4], shape=[]))
# label_smoothing above 1, checked first on the index path and last on the probability path.
case("label_smoothing_above_one", x34, classes([0, 1, 1]), eps=1.5)
case("label_smoothing_above_one/rounds_like_cpp", x34, classes([0, 1, 1]), eps=1.0000001)
case("label_smoothing_above_one/before_batch_size", x34, classes([0, 1]), eps=2.0)
case("label_smoothing_above_one/probabilities", x34, probs(F, [3, 4]), eps=1.5)
case("label_smoothing_above_one/after_probability_weight", x34, probs(F, [3, 4]), weight=t(F, [2]), eps=2.0)
# Batch size.
case("batch_size_mismatch", x34, classes([0, 1]))
case("batch_size_mismatch/0d_target", x34, classes([1], shape=[]))
case("batch_size_mismatch/kdim", t(F, [2, 3, 5]), t("int64", [3, 5]))
case("batch_size_mismatch/float_target", t(F, [2, 3, 5]), probs(F, [3, 5]))
case("batch_size_mismatch/empty_input", t(F, [0, 3]), classes([0, 1]))
# Weight shape: nll_loss's wording (1-D/2-D input), the probability path's, nll_loss2d's (K-dim).
case("weight_length", x34, classes([0, 1, 1]), weight=t(F, [2]))
case("weight_length/with_smoothing", x34, classes([0, 1, 1]), weight=t(F, [2]), eps=0.1)
case("weight_length/2d_weight", x34, classes([0, 1, 1]), weight=t(F, [1, 4]))
case("weight_length/0d_weight", x34, classes([0, 1, 1]), weight=t(F, []))
case("weight_length/unbatched", t(F, [4]), classes([1], shape=[]), weight=t(F, [3]))
case("weight_length/before_targets", x34, classes([0, 9, 1]), weight=t(F, [2]))
case("weight_length/empty_batch", t(F, [0, 3]), classes([]), weight=t(F, [2]))
case("weight_length/probabilities", x34, probs(F, [3, 4]), weight=t(F, [2]))
case("weight_length/probabilities_2d_weight", x34, probs(F, [3, 4]), weight=t(F, [1, 4]))
case("weight_length/probabilities_0d_weight", x34, probs(F, [3, 4]), weight=t(F, []))
case("weight_length/kdim", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t(F, [2]))
case("weight_length/kdim_with_smoothing", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t(F, [2]), eps=0.1)
case("weight_length/4d", t(F, [2, 3, 2, 2]), t("int64", [2, 2, 2]), weight=t(F, [2]))
case("weight_length/4d_before_size_mismatch", t(F, [2, 3, 2, 2]), t("int64", [2, 2, 3]), weight=t(F, [2]))
case("weight_length/kdim_before_uint8_target", t(F, [2, 3, 5]), t("uint8", [2, 5]), weight=t(F, [2]))
# A weight that is not 1-D: nll_loss2d only counts its elements; the smoothing term cannot use it.
case("weight_2d/kdim_accepted", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t(F, [3, 1]), reduction="sum")
case("weight_2d/kdim_smoothing_view", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t(F, [1, 3]), eps=0.1)
case("weight_2d/4d_smoothing_view", t(F, [2, 3, 2, 2]), t("int64", [2, 2, 2]), weight=t(F, [1, 3]), eps=0.1)
case("weight_2d/kdim_smoothing_mean_gather", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t(F, [3, 1]), eps=0.1)
case("weight_2d/kdim_smoothing_sum_accepted", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t(F, [3, 1]), eps=0.1, reduction="sum")
# dtypes.
case("weight_dtype", x34, classes([0, 1, 1]), weight=t("float64", [4]))
case("weight_dtype/with_smoothing", x34, classes([0, 1, 1]), weight=t("float64", [4]), eps=0.1)
case("weight_dtype/half_input", t("float16", [3, 4]), classes([0, 1, 1]), weight=t(F, [4]))
case("weight_dtype/before_targets", x34, classes([0, 9, 1]), weight=t("float64", [4]))
case("weight_dtype/kdim", t(F, [2, 3, 5]), t("int64", [2, 5]), weight=t("float64", [3]))
case("weight_dtype/kdim_before_uint8_target", t(F, [2, 3, 5]), t("uint8", [2, 5]), weight=t("float64", [3]))
case("weight_dtype/after_4d_size_mismatch", t(F, [2, 3, 2, 2]), t("int64", [2, 2, 3]), weight=t("float64", [3]))
case("integer_input", t("int64", [3, 4]), classes([0, 1, 1]))
case("integer_input/uint8", t("uint8", [3, 4]), classes([0, 1, 1]))
case("integer_input/kdim", t("int64", [3, 4, 2]), t("int64", [3, 2]))
case("integer_input/before_batch_size", t("int64", [3, 4]), classes([0, 1]))
case("integer_input/probabilities", t("int64", [3, 4]), probs(F, [3, 4]))
case("integer_input/probabilities_after_weight", t("int64", [3, 4]), probs(F, [3, 4]), weight=t(F, [2]))
case("uint8_target/kdim", t(F, [2, 3, 5]), t("uint8", [2, 5]))
case("uint8_target/4d", t(F, [2, 3, 2, 2]), t("uint8", [2, 2, 2]))
case("uint8_target/2d_accepted", x34, classes([0, 3, 1], "uint8"), eps=0.1)
# Class-probability targets.
case("probabilities_integer_target", x34, t("int64", [3, 4]))
case("probabilities_integer_target/uint8", x34, t("uint8", [3, 4]))
case("probabilities_integer_target/before_ignore_index", x34, t("int64", [3, 4]), ignore_index=0)
case("probabilities_ignore_index", x34, probs(F, [3, 4]), ignore_index=0)
case("probabilities_0d", t(F, []), probs(F, []))
case("probabilities_0d_integer_target", t(F, []), classes([0], shape=[]))
# Float class targets (not shaped like the input).
case("float_class_target", x34, probs(F, [3]))
case("float_class_target/unbatched", t(F, [4]), probs(F, []))
case("float_class_target/before_weight", x34, probs(F, [3]), weight=t(F, [2]))
case("float_class_target/kdim", t(F, [2, 3, 5]), probs(F, [2, 5]))
case("float_class_target/4d", t(F, [2, 3, 2, 2]), probs(F, [2, 2, 2]))
case("float_class_target/kdim_size_first", t(F, [2, 3, 5]), probs(F, [2, 6]))
# Target shapes.
case("multi_target", x34, t("int64", [3, 2]))
case("multi_target/float", x34, probs(F, [3, 5]))
case("multi_target/unbatched", t(F, [4]), t("int64", [1, 1]))
case("unbatched_1d_target", t(F, [4]), classes([0, 1]))
case("unbatched_1d_target/before_weight", t(F, [4]), classes([0, 1]), weight=t(F, [3]))
# The forward accepts a [1]-shaped target for 1-D input; nll_loss's backward does not.
case("unbatched_1d_target_of_one/backward", t(F, [4]), classes([1]), reduction="none")
case("unbatched_1d_target_of_one/smoothing", t(F, [4]), classes([1]), eps=0.1)
case("unbatched_1d_target_of_one/smoothing_bad_target_first", t(F, [4]), classes([7]), eps=0.1)
case("kdim_target_size", t(F, [2, 3, 5]), t("int64", [2, 4]))
case("kdim_target_size/dims", t(F, [2, 3, 5]), t("int64", [2]))
case("kdim_target_size/5d", t(F, [2, 3, 4, 5, 1]), t("int64", [2, 4, 5, 2]))
case("kdim_target_size/before_uint8", t(F, [2, 3, 5]), t("uint8", [2, 4]))
case("4d_target_dims", t(F, [2, 3, 2, 2]), t("int64", [2, 4]))
case("4d_target_dims/float", t(F, [2, 3, 2, 2]), probs(F, [2, 4]))
case("4d_size_mismatch", t(F, [2, 3, 2, 2]), t("int64", [2, 2, 3]))
case("4d_size_mismatch/before_uint8", t(F, [2, 3, 2, 2]), t("uint8", [2, 2, 3]))
case("0d_input", t(F, []), classes([0]))
case("0d_input/integer", t("int64", []), classes([0]))
case("0d_input/after_label_smoothing", t(F, []), classes([0]), eps=2.0)

if __name__ == "__main__":
    doc = {"format": "ce-parity-fixture/1",
           "description": "Every rejection libtorch's cross_entropy_loss makes, with the first line of its message, "
                          "and combinations that show which check runs first; a few look-alikes it accepts.",
           "cases": CASES}
    (ROOT / "fixtures/errors.json").write_text(json.dumps(doc, indent=1) + "\n")
