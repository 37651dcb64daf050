"""Parameter and FLOP counts of NIMA models (paper Table 2).

FLOPs are measured on the TensorFlow graph of the inference-mode forward pass at
a fixed input shape with `tf.compat.v1.profiler` ("float_ops"), which counts a
multiply-add as 2 FLOPs for convolutions and matmuls, the convention of the
paper's Table 2. Parameters are the trainable weights (batch-norm moving
statistics are buffers, not parameters), which is what reproduces the paper's
counts.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops  # pylint: disable=g-direct-tensorflow-import

from nima_enhance.models.nima import build_nima

# Paper Table 2, NIMA on 480x640x3 images.
PAPER_TABLE2 = {
    "mobilenet": {"params_m": 3.22, "gflops": 6.97},
    "inception_v2": {"params_m": 10.16, "gflops": 23.80},
    "vgg16": {"params_m": 134.30, "gflops": 218.43},
}
PAPER_INPUT_SHAPE = (480, 640, 3)


def count_parameters(model: keras.Model, trainable_only: bool = True) -> int:
  """Number of (by default trainable) scalar weights of `model`."""
  variables = model.trainable_variables if trainable_only else model.variables
  return int(sum(np.prod(v.shape) for v in variables))


def count_flops(model: keras.Model, input_shape: Sequence[int],
                by_op_type: bool = False):
  """FLOPs of one inference forward pass, measured from the graph.

  Args:
    model: a Keras model with one image input.
    input_shape: the full input shape including batch, e.g. [1, 480, 640, 3].
    by_op_type: also return a {op type: flops} breakdown.

  Returns:
    Total float operations (int), or (total, breakdown) if `by_op_type`.
  """
  spec = tf.TensorSpec(list(input_shape), tf.float32)
  forward = tf.function(lambda x: model(x, training=False))
  graph = forward.get_concrete_function(spec).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  ).with_empty_output().build()
  profile = tf.compat.v1.profiler.profile(graph, options=options)
  total = int(profile.total_float_ops)
  if not by_op_type:
    return total
  breakdown: Dict[str, int] = {}
  for op in graph.get_operations():
    try:
      flops = _op_flops(graph, op)
    except (ValueError, NotImplementedError):
      continue
    if flops:
      breakdown[op.type] = breakdown.get(op.type, 0) + flops
  return total, breakdown


def _op_flops(graph, op) -> int:
  # The same per-op statistics the profiler sums (ops.RegisterStatistics).
  stats = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops")
  return int(stats.value or 0)


def table2_row(backbone: str, input_shape: Sequence[int] = PAPER_INPUT_SHAPE,
               with_flops: bool = True) -> Dict[str, Optional[float]]:
  """Measures NIMA(backbone) like Table 2 and compares with the paper.

  The model is built with random weights (the counts do not depend on them).

  Returns:
    {"backbone", "params", "params_m", "gflops", and, for the paper's three
    backbones, "paper_params_m", "paper_gflops", "params_diff", "gflops_diff"
    (relative differences, measured / paper - 1)}.
  """
  model = build_nima(backbone=backbone, input_shape=tuple(input_shape),
                     weights=None)
  params = count_parameters(model)
  row = {"backbone": backbone, "params": params, "params_m": params / 1e6,
         "gflops": None}
  if with_flops:
    row["gflops"] = count_flops(model, [1, *input_shape]) / 1e9
  paper = PAPER_TABLE2.get(backbone)
  if paper:
    row["paper_params_m"] = paper["params_m"]
    row["paper_gflops"] = paper["gflops"]
    row["params_diff"] = row["params_m"] / paper["params_m"] - 1.0
    if row["gflops"] is not None:
      row["gflops_diff"] = row["gflops"] / paper["gflops"] - 1.0
  del model
  keras.backend.clear_session()
  return row
