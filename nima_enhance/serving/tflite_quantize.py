"""int8 TFLite: ops kept in float, a file's float ops, int8's rounding floor.

Used by `tflite_convert.convert` for `--quantize int8`: TFLite's public
converter is all-or-nothing (full integer, or a float fallback it chooses);
the scorer of some backbones needs a few named ops in float to keep its means
within 0.1 of the checkpoint (docs/serving.md "On-device (TFLite)").
`int8_floor` measures what int8's own roundings (uint8 pixels, int8 kernels)
cost a checkpoint in float, for tflite_metadata.json.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
# Private TF modules: the only denylisting quantizer TF offers.
from tensorflow.lite.python import convert as convert_lib
from tensorflow.lite.python import util as lite_util

# --quantize int8 ops kept in float, per backbone (a regular expression on
# TFLite tensor names). small_cnn (models/small.py): its "statistics head",
# every op of the four GlobalMeanStdPooling layers, their concatenation and
# the LayerNorm over it, on [1, 416] vectors except the squared deviations.
# Its pooled per-channel means and standard deviations span three orders of
# magnitude (weak channels' std ~0.003 against ~0.4), and int8 gives a tensor
# one scale: full-integer int8 rounds the weak ones to a few steps or zero
# and moved the held-out means far past 0.1. The convolutions and dense
# layers (all the weights) stay int8. tools/benchmarks/tflite.py measures
# this choice beside full integer and the std ops alone (its record's
# int8_variants); docs/serving.md "On-device (TFLite)".
FLOAT_IN_INT8 = {
    "small_cnn": r"small_pool\d+(_\d+)?/|small_features|small_norm"}
FLOAT_IN_INT8_WHY = ("small_cnn statistics head (per-channel mean and "
                     "standard deviation pooling of the 4 stages, their "
                     "concatenation, LayerNorm): their values span three "
                     "orders of magnitude, which one int8 scale per tensor "
                     "rounds to zero for the weak channels")


# The scorer's output tail (mean and std from the 10-bucket distribution,
# under this name scope in `tflite._export_scorer`) stays float for every
# backbone: 30 multiply-adds, and the file's own `mean`/`std` outputs are then
# the closed forms of its `distribution` (in int8 they carried up to 0.27 of
# rounding).
SCORES_SCOPE = "scores"
FLOAT_TAIL = rf"^{SCORES_SCOPE}/"
FLOAT_TAIL_WHY = ("output tail (mean and std of the distribution): the "
                  "file's mean/std outputs are then exact functions of its "
                  "distribution output")


def float_pattern(backbone: Optional[str]) -> str:
  """The tensors an int8 scorer of this backbone keeps in float (a regex)."""
  own = FLOAT_IN_INT8.get(backbone or "")
  return FLOAT_TAIL + (f"|{own}" if own else "")


def float_reasons(backbone: Optional[str]) -> List[str]:
  """Why `float_pattern(backbone)` keeps each of its parts in float."""
  own = FLOAT_IN_INT8_WHY if backbone in FLOAT_IN_INT8 else None
  return [FLOAT_TAIL_WHY] + ([own] if own else [])


def quantize_except(converter, pattern, float_outputs: Sequence[str] = ()
                   ) -> Tuple[bytes, List[str]]:
  """int8 (uint8 input) with the ops producing `pattern` tensors in float.

  `float_outputs`: signature outputs whose producing op stays float too (a
  signature output tensor is named after the signature, "PartitionedCall:1",
  not after the op's name scope).

  The public converter has no per-op switch; this is the route TFLite's own
  QuantizationDebugger takes (calibrate, then quantize with a denylist).
  """
  converter._experimental_calibrate_only = True  # pylint: disable=protected-access
  calibrated = converter.convert()
  interpreter = tf.lite.Interpreter(model_content=calibrated)
  details = interpreter.get_tensor_details()
  kept = {d["name"] for d in details if pattern.search(d["name"])}
  if float_outputs:
    outputs = interpreter.get_signature_runner().get_output_details()
    kept |= {outputs[name]["name"] for name in float_outputs}
  kept = sorted(kept)
  # Float in and out, then the input set to uint8 (its calibrated scale)
  # as TFLiteConverter itself does for inference_input_type.
  content = convert_lib.mlir_quantize(calibrated, fully_quantize=False,
                                      denylisted_nodes=kept or None)
  return lite_util.modify_model_io_type(content, tf.uint8, tf.float32), kept


def float_ops_of(path: str) -> List[str]:
  """"OP_TYPE output_tensor" of every op of a .tflite file computing in float.

  QUANTIZE/DEQUANTIZE (the boundaries between float and integer tensors) are
  not counted; an empty list means every op computes in integers.
  """
  interpreter = tf.lite.Interpreter(model_path=path)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  found = []
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    if op["op_name"] in ("QUANTIZE", "DEQUANTIZE", "DELEGATE"):
      continue
    if any(tensors[i]["dtype"] == np.float32 for i in op["inputs"] if i >= 0):
      found.append(f"{op['op_name']} {tensors[op['outputs'][0]]['name']}")
  return found


# ---------------------------------------------------------------------------
# How far int8 must move a checkpoint's means, whatever the quantizer does.
#
# Two roundings are in every int8 scorer file: its uint8 input rounds the
# resized pixels to integers, and its weights are stored as int8 per output
# channel (scale max|w| / 127, the finest granularity TFLite offers; folding
# a batch norm scales whole channels, so the relative rounding is the same).
# Measured in float on the checkpoint itself, each is a cost that calibration,
# cross-layer range equalization (per-channel weights make it a no-op for the
# weights) or bias correction (they are hardly a shift: their mean was a few
# percent of their maximum on the benchmark's models) cannot remove; only
# learned rounding of the weights (AdaRound), not offered by TFLite, could
# lower the second. When either already moves the means past the target, the
# checkpoint is too sensitive for int8 (its score moves with invisible noise
# of +-0.5 grey levels), and float16 is the file to ship. docs/serving.md
# "On-device (TFLite)".


class RoundedPixels:
  """A scorer given its pixels rounded to integers (what uint8 input does)."""

  def __init__(self, scorer):
    self.scorer = scorer
    self.preprocessing = scorer.preprocessing

  def predict(self, pixels):
    return self.scorer.predict(tf.round(pixels))


def _channel_axes(layer, name: str, ndim: int) -> Tuple[int, ...]:
  """Axes reduced to one int8 scale per output channel of a kernel."""
  if name == "depthwise_kernel" or isinstance(layer,
                                               keras.layers.DepthwiseConv2D):
    return (0, 1)  # [kh, kw, in, multiplier]: a scale per in * multiplier
  if "Transpose" in type(layer).__name__:
    return tuple(i for i in range(ndim) if i != ndim - 2)  # [.., out, in]
  return tuple(range(ndim - 1))  # [..., out]


def _kernels(model: keras.Model):
  """(layer, attribute name, variable) of every conv/dense kernel."""
  for layer in model._flatten_layers():  # pylint: disable=protected-access
    for name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
      variable = getattr(layer, name, None)
      if isinstance(variable, keras.Variable) and len(variable.shape) >= 2:
        yield layer, name, variable


@contextlib.contextmanager
def int8_rounded_weights(model: keras.Model) -> Iterator[None]:
  """Every conv/dense kernel rounded as int8 per channel, restored on exit.

  Symmetric, to the nearest of 127 steps each side of zero per output
  channel, as TFLite's converter stores them.
  """
  saved = []
  try:
    for layer, name, variable in _kernels(model):
      value = np.asarray(variable.numpy(), np.float64)
      step = np.abs(value).max(
          axis=_channel_axes(layer, name, value.ndim), keepdims=True) / 127
      step = np.where(step > 0, step, 1.0)
      saved.append((variable, variable.numpy()))
      variable.assign((np.round(value / step) * step).astype(variable.dtype))
    yield
  finally:
    for variable, value in saved:
      variable.assign(value)


def int8_floor(bundle, paths: Sequence[str],
               agreement: Callable[..., Optional[Dict[str, float]]]
              ) -> Dict[str, object]:
  """The checkpoint's agreement with itself under each int8 rounding alone.

  Args:
    bundle: the float checkpoint (`scoring.NimaBundle`).
    paths: the images of the int8 agreement check.
    agreement: `tflite_convert.scorer_agreement` (reference, candidate, paths).

  Returns:
    {"pixels_rounded": agreement of the checkpoint fed integer pixels,
     "weights_rounded": agreement with its kernels rounded to int8 per
     channel, "kernels": how many kernels were rounded}.
  """
  return {"pixels_rounded": agreement(bundle, RoundedPixels(bundle), paths),
          "weights_rounded": agreement(bundle, RoundedWeights(bundle), paths),
          "kernels": len(list(_kernels(bundle.model)))}


class RoundedWeights:
  """A scorer running a bundle's model with its kernels rounded to int8.

  Rounded for each batch and restored after it, so the bundle itself (the
  reference of an agreement, scored before or after) keeps its weights.
  """

  def __init__(self, bundle):
    self.preprocessing = bundle.preprocessing
    self.model = bundle.model

  def predict(self, pixels):
    with int8_rounded_weights(self.model):
      return tf.identity(self.model(pixels, training=False))


__all__ = ["FLOAT_IN_INT8", "FLOAT_IN_INT8_WHY", "FLOAT_TAIL", "SCORES_SCOPE",
           "FLOAT_TAIL_WHY", "float_pattern", "float_reasons",
           "quantize_except", "float_ops_of", "RoundedPixels",
           "RoundedWeights", "int8_rounded_weights", "int8_floor"]
