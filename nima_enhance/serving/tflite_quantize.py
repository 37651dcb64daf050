"""int8 TFLite with named ops kept in float, and which ops of a file are float.

Used by `tflite.convert` for `--quantize int8`: TFLite's public converter is
all-or-nothing (full integer, or a float fallback it chooses); the scorer of
some backbones needs a few named ops in float to keep its means within 0.1
of the checkpoint (README "On-device").
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import tensorflow as tf

# --quantize int8 ops kept in float, per backbone (a regular expression on
# TFLite tensor names). small_cnn (models/small.py): the per-channel variance
# and square root of GlobalMeanStdPooling, 4 ops per stage. Per-tensor int8
# rounds the squared deviations of its weak channels (std ~0.003 against a
# range set by the strong channels, ~0.4) to zero: full-integer int8 shifted
# the means by up to 0.29-0.39, these 16 ops in float by 0.07-0.14 on two
# trainings (README "On-device"). Export-time rewrites (channel balancing folded into the
# convolutions, the LayerNorm folded into small_fc, the norm computed as an
# L2_NORMALIZATION dot product) were measured and did worse.
FLOAT_IN_INT8 = {
    "small_cnn": r"small_pool\d+(_\d+)?/(\S*Square\S*|Mean_1|add|Sqrt)$"}
FLOAT_IN_INT8_WHY = ("small_cnn per-channel standard deviation (squared "
                     "deviation, its spatial mean, +eps, sqrt per stage): "
                     "int8 rounds the weak channels' squared deviations to "
                     "zero")


def quantize_except(converter, pattern) -> Tuple[bytes, List[str]]:
  """int8 (uint8 input) with the ops producing `pattern` tensors in float.

  The public converter has no per-op switch; this is the route TFLite's own
  QuantizationDebugger takes (calibrate, then quantize with a denylist).
  """
  # Private TF modules: the only denylisting quantizer TF offers.
  from tensorflow.lite.python import convert as convert_lib  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.python import util as lite_util  # pylint: disable=g-import-not-at-top
  converter._experimental_calibrate_only = True  # pylint: disable=protected-access
  calibrated = converter.convert()
  details = tf.lite.Interpreter(model_content=calibrated).get_tensor_details()
  kept = sorted({d["name"] for d in details if pattern.search(d["name"])})
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


__all__ = ["FLOAT_IN_INT8", "FLOAT_IN_INT8_WHY", "quantize_except",
           "float_ops_of"]
