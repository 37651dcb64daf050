"""Layers of the enhancement CNN: symmetric padding and adaptive normalization.

`SymmetricPad2D` pads by any amount. `tf.pad(mode="SYMMETRIC")` refuses a pad
larger than the padded dimension, but the CAN's dilated 3x3 convolutions need
pads of up to 256 pixels while it must run on images as small as 1x1, so the
padding is done by gathering reflected indices: the symmetric extension of a
row of length n is periodic with period 2n, which `floormod` handles for any
pad and any (dynamic) size.

`AdaptiveNormalization` is Chen et al.'s (ICCV 2017) lambda * x + mu * BN(x)
with learnable scalars, initialised to the identity (lambda = 1, mu = 0).
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import keras
import tensorflow as tf

PadSpec = Union[int, Tuple[int, int], Sequence[Sequence[int]]]


def reflect_indices(size: tf.Tensor, before: int, after: int) -> tf.Tensor:
  """Indices into a length-`size` axis that realise numpy's "symmetric" pad.

  numpy's symmetric mode mirrors including the edge sample (..., 1, 0 | 0, 1,
  ..., n-1 | n-1, n-2, ...), repeated for pads longer than the axis. Position
  i (from -before to size + after - 1) maps to m = i mod 2n, then to m when
  m < n, else to 2n - 1 - m.

  Args:
    size: length of the axis (int or scalar int32 tensor), >= 1.
    before: samples added before the axis.
    after: samples added after the axis.

  Returns:
    int32 tensor of length before + size + after.
  """
  size = tf.cast(size, tf.int32)
  positions = tf.range(-before, size + after, dtype=tf.int32)
  period = 2 * size
  folded = tf.math.floormod(positions, period)
  return tf.where(folded < size, folded, period - 1 - folded)


def _normalize_padding(padding: PadSpec) -> Tuple[Tuple[int, int],
                                                   Tuple[int, int]]:
  """int | (rows, cols) | ((top, bottom), (left, right)) -> nested pairs."""
  if isinstance(padding, int):
    padding = (padding, padding)
  padding = tuple(padding)
  if len(padding) != 2:
    raise ValueError(f"padding must be an int, (rows, cols) or "
                     f"((top, bottom), (left, right)); got {padding!r}")
  pairs = []
  for item in padding:
    if isinstance(item, int):
      pairs.append((item, item))
    else:
      first, second = item
      pairs.append((int(first), int(second)))
  for value in pairs[0] + pairs[1]:
    if value < 0:
      raise ValueError(f"padding must be non-negative, got {padding!r}")
  return pairs[0], pairs[1]


class SymmetricPad2D(keras.layers.Layer):
  """Symmetric (edge-including mirror) padding of [batch, h, w, c] maps.

  Equals `numpy.pad(x, ..., mode="symmetric")` for any pad, including pads
  larger than the map (the mirror image repeats), with dynamic h and w.
  """

  def __init__(self, padding: PadSpec = 1, **kwargs):
    """Args: padding: int, (rows, cols) or ((top, bottom), (left, right))."""
    super().__init__(**kwargs)
    self.padding = _normalize_padding(padding)

  def call(self, inputs):
    (top, bottom), (left, right) = self.padding
    shape = tf.shape(inputs)
    outputs = inputs
    if top or bottom:
      outputs = tf.gather(outputs, reflect_indices(shape[1], top, bottom),
                          axis=1)
    if left or right:
      outputs = tf.gather(outputs, reflect_indices(shape[2], left, right),
                          axis=2)
    return outputs

  def compute_output_shape(self, input_shape):
    (top, bottom), (left, right) = self.padding
    batch, height, width, channels = input_shape
    height = None if height is None else height + top + bottom
    width = None if width is None else width + left + right
    return (batch, height, width, channels)

  def get_config(self):
    config = super().get_config()
    config["padding"] = [list(self.padding[0]), list(self.padding[1])]
    return config


class AdaptiveNormalization(keras.layers.Layer):
  """lambda * x + mu * BatchNorm(x) with learnable scalars (Chen et al. 2017).

  Starts as the identity (lambda = 1, mu = 0), so it does not disturb the CAN's
  identity initialisation; training decides how much normalization to use.
  With batch 1 the batch statistics are those of one image's pixels.
  """

  def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
    super().__init__(**kwargs)
    self.momentum = momentum
    self.epsilon = epsilon
    self.batch_norm = keras.layers.BatchNormalization(
        momentum=momentum, epsilon=epsilon, name="batch_norm")

  def build(self, input_shape):
    self.lam = self.add_weight(name="lambda", shape=(),
                               initializer=keras.initializers.Ones())
    self.mu = self.add_weight(name="mu", shape=(),
                              initializer=keras.initializers.Zeros())
    self.batch_norm.build(input_shape)
    super().build(input_shape)

  def call(self, inputs, training=None):
    return self.lam * inputs + self.mu * self.batch_norm(inputs,
                                                         training=training)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, epsilon=self.epsilon)
    return config
