"""Exact bounded-memory CAN inference: a line-buffered row-band schedule.

The CAN (`models/can.py`) is fully convolutional with a receptive field of
1023 pixels, so any photo can be enhanced exactly in memory that depends on
its width only. As a Halide-style sliding window (docs/can_streaming.md):
the image is consumed in bands of `band_rows` rows and every 3x3 layer k
(dilation d_k) keeps only the rows of its output that layer k + 1 still
needs, about 2 * d_{k+1} rows. Each step, every layer computes up to
`band_rows` new output rows, as far as the rows it has of the layer below
allow (row r needs rows r - d, r, r + d), so every activation row is
computed exactly once. The 1x1 head turns the last layer's new rows into
output rows at once. Top and bottom borders are padded with the rows of the
true image borders, as the whole-image `SymmetricPad2D` pads them: each
layer's buffer stores the mirrored rows with its first and last rows, so the
next layer's input is a slice of the buffer there too (reflected row indices
are gathered only when the band that reached a border is shorter than the
pad). The full width is padded as the whole-image pass pads it, so the
result equals the one-piece output up to float rounding.

Memory: the rows held are about 2 * (d_1 + ... + d_8) = 1020 rows of 32
maps plus one band's temporaries, independent of the height. Photos wider
than tall are transposed (with the kernels) so the rows run along the short
side.

Inference only: batch normalization in inference mode is a per-channel
affine map, so each adaptive normalization lambda * x + mu * BN(x) is folded
into its convolution's kernel and bias (`fold_can`), and the schedule runs
convolution + bias + leaky ReLU per layer. The schedule is one
`tf.while_loop`, so the same code runs in `enhance` (inside a tf.function)
and in the exported SavedModel (TF Serving gets the bounded memory too).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from nima_enhance.models import can
from nima_enhance.models.layers import AdaptiveNormalization
from nima_enhance.models.layers import reflect_indices

PRECISIONS = ("float32", "bfloat16")
# Default working-memory budget of the band schedule (GB = 1e9 bytes), not
# counting the input and output images: 24 and 48 MP photos then stay under
# 4 GB of resident memory through `enhance` on CPU, and a 16 GB accelerator
# has room to spare (README, Performance).
DEFAULT_MEMORY_BUDGET_GB = 1.5
# Memory model of the band schedule with B-row bands and rows W wide (bytes):
# every 3x3 layer but the last holds 2 * d + B rows of 32 float32 maps padded
# to W + 2 * d (sum over layers: 1020 + 8 B rows); appending a band copies
# the largest buffer once more (512 + B rows) and at the top and bottom
# borders a layer's input could be gathered (512 + B rows; now the mirrored
# rows are stored in the buffer instead, at most 256 rows, so the model errs
# on the safe side): about
# ROW_BYTES * (W + WIDTH_PAD) * (HELD_ROWS + BAND_FACTOR * B), which matches
# tools/benchmarks/can_inference.py --bounded (VmHWM per band size at 12 MP).
ROW_BYTES = 32 * 4
WIDTH_PAD = 512
HELD_ROWS = 1020 + 2 * 512
BAND_FACTOR = 10
MIN_BAND_ROWS = 16
MAX_BAND_ROWS = 512


@dataclasses.dataclass
class FoldedCAN:
  """A CAN's inference weights with adaptive normalization folded in.

  Attributes:
    kernels: per 3x3 layer, float32 [3, 3, cin, cout].
    biases: per 3x3 layer, float32 [cout].
    dilations: per 3x3 layer.
    slope: the leaky ReLUs' negative slope.
    head_kernel: float32 [cin, 3] of the final 1x1 convolution.
    head_bias: float32 [3].
  """
  kernels: List[np.ndarray]
  biases: List[np.ndarray]
  dilations: Tuple[int, ...]
  slope: float
  head_kernel: np.ndarray
  head_bias: np.ndarray


def fold_can(model: keras.Model) -> FoldedCAN:
  """Folds a `build_can` model's inference-mode normalization into its convs.

  With BN's moving statistics, lambda * y + mu * BN(y) = a * y + b per
  channel (a = lambda + mu * gamma / sqrt(var + eps), b = mu * (beta - gamma
  * mean / sqrt(var + eps))), and y = conv(x) + bias, so the layer is a conv
  with kernel * a and bias * a + b.

  Raises:
    ValueError: the model is not a CAN built by `build_can`.
  """
  convs = can.conv_layers(model)
  if len(convs) < 2 or tuple(convs[-1].kernel.shape[:2]) != (1, 1):
    raise ValueError(f"{model.name}: not a CAN (expected 3x3 convs and a "
                     "final 1x1 conv)")
  slope = 0.2
  kernels, biases, dilations = [], [], []
  for k, conv in enumerate(convs[:-1]):
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    bias = np.asarray(conv.bias.numpy(), np.float64)
    try:
      norm = model.get_layer(f"adaptive_norm_{k}")
    except ValueError:
      norm = None
    if isinstance(norm, AdaptiveNormalization):
      bn = norm.batch_norm
      inv = 1.0 / np.sqrt(np.asarray(bn.moving_variance.numpy(), np.float64)
                          + bn.epsilon)
      gamma = (np.asarray(bn.gamma.numpy(), np.float64) if bn.scale
               else np.ones_like(inv))
      beta = (np.asarray(bn.beta.numpy(), np.float64) if bn.center
              else np.zeros_like(inv))
      mean = np.asarray(bn.moving_mean.numpy(), np.float64)
      lam, mu = float(norm.lam.numpy()), float(norm.mu.numpy())
      scale = lam + mu * gamma * inv
      shift = mu * (beta - gamma * mean * inv)
      kernel = kernel * scale
      bias = bias * scale + shift
    slope = float(model.get_layer(f"lrelu_{k}").negative_slope)
    kernels.append(kernel.astype(np.float32))
    biases.append(bias.astype(np.float32))
    dilations.append(int(conv.dilation_rate[0]))
  head = convs[-1]
  return FoldedCAN(kernels, biases, tuple(dilations), slope,
                   np.asarray(head.kernel.numpy()[0, 0], np.float32),
                   np.asarray(head.bias.numpy(), np.float32))


def band_rows_for(width, memory_budget_gb: float):
  """Band rows whose working set fits the budget, for rows `width` wide.

  Follows the memory model above, clipped to [MIN_BAND_ROWS, MAX_BAND_ROWS]
  (larger bands gain no time, see README Performance). Works on Python ints
  and on scalar int32 tensors (inside the graph); returns an int32 tensor.
  """
  budget = float(memory_budget_gb) * 1e9
  per_row = (tf.cast(width, tf.float64) + WIDTH_PAD) * ROW_BYTES
  rows = (budget / per_row - HELD_ROWS) / BAND_FACTOR
  rows = tf.clip_by_value(rows, MIN_BAND_ROWS, MAX_BAND_ROWS)
  return tf.cast(rows, tf.int32)


def _layer_rows(fetch, start, stop, height, kernel, bias, dilation, slope):
  """Output rows [start, stop) of one 3x3 layer.

  fetch(start, stop) returns the input rows start - dilation .. stop +
  dilation - 1, already padded across the width by reflection as the
  whole-image pass pads them, and reflected at the true top and bottom
  borders.
  """
  del height  # the fetch reflects
  y = tf.nn.conv2d(fetch(start, stop)[None], kernel, 1, "VALID",
                   dilations=dilation)
  return tf.nn.leaky_relu(tf.nn.bias_add(y, bias), slope)[0]


def _buffer_rows(buf, lo, start, stop, dilation, height):
  """Rows start - dilation .. stop + dilation - 1 of a layer, from its buffer.

  buf holds rows lo, lo + 1, ... of the layer's output; rows < 0 and >= height
  are the symmetric pad, which the buffer holds when `enhance_bands` stored
  the mirrored rows with the top or bottom rows (the usual case). Then the
  rows are a slice, which shares buf's memory. Otherwise (a pad the band that
  reached the border was too short to mirror) the real rows are gathered at
  their reflected indices.
  """
  first, end = start - dilation, stop + dilation
  covered = tf.logical_and(lo <= first, end <= lo + tf.shape(buf)[0])

  def gathered():
    rows = reflect_indices(height, dilation - start, stop + dilation - height)
    return tf.gather(buf, rows - lo, axis=0)

  return tf.cond(covered, lambda: buf[first - lo:end - lo], gathered)


def _append_rows(buf, lo, rows, start, stop, height, pad):
  """buf (rows lo, ...) extended by a layer's new rows [start, stop).

  `rows` are already padded across the width. With the image's first rows
  the `pad` rows mirrored above row 0 are stored too (rows -pad .. -1), and
  with its last rows the `pad` rows mirrored below it, so that the next layer
  reads its padded input as a slice (`_buffer_rows`) instead of gathering it.
  That needs the pad's source rows in this band (and pad <= height).

  Returns:
    (new buffer, its first row index).
  """
  start, stop, height = (tf.convert_to_tensor(v, tf.int32)
                         for v in (start, stop, height))
  count = stop - start
  mirror = pad <= height
  top = tf.logical_and(mirror, tf.logical_and(start == 0, count >= pad))
  bottom = tf.logical_and(mirror, tf.logical_and(
      stop == height, count >= pad))
  top_rows = tf.where(top, pad, 0)
  bottom_rows = tf.where(bottom, pad, 0)
  above = tf.reverse(rows[:top_rows], [0])
  below = tf.reverse(rows[count - bottom_rows:], [0])
  # Always a fresh concat, even of nothing new: the kept rows were sliced
  # from the previous buffer, and only a copy lets that allocation go
  # (passing the slice on measured +0.57 GB at 48 MP in the SavedModel).
  new_buf = tf.concat([buf, above, rows, below], axis=0)
  return new_buf, tf.where(top, -top_rows, lo)


def enhance_bands(image: tf.Tensor, weights: Sequence[tf.Tensor],
                  dilations: Sequence[int], slope: float, band_rows,
                  dtype: tf.DType = tf.float32,
                  output_uint8: bool = False,
                  transpose_back: bool = True) -> tf.Tensor:
  """Runs the folded CAN on one image by the line-buffered band schedule.

  Rows are streamed along the image's long side (a wide image is read and
  written column band by column band, with transposed kernels), so the rows
  held span the short side.

  Args:
    image: [h, w, 3], float32 in [0, 1] or uint8 (scaled by 1/255 band by
      band, so no float copy of the whole image is made).
    weights: kernel_0, bias_0, ..., kernel_8, bias_8, head_kernel, head_bias
      (as `weight_list` returns them).
    dilations: per 3x3 layer.
    slope: leaky ReLU slope.
    band_rows: rows per layer per step (int or scalar int32 tensor); values
      < 1 mean the whole image in one step.
    dtype: compute dtype of the activations (float32 or bfloat16).
    output_uint8: return round(255 * output) as uint8 (built band by band).
    transpose_back: False returns a wide image's output as [w, h, 3] (the
      caller transposes it as a view, saving a copy of the whole output).

  Returns:
    [h, w, 3] float32 clipped to [0, 1], or uint8.
  """
  n = len(dilations)
  shape = tf.shape(image)
  transposed = shape[1] > shape[0]
  height = tf.maximum(shape[0], shape[1])
  width = tf.minimum(shape[0], shape[1])
  band_rows = tf.cast(band_rows, tf.int32)
  band_rows = tf.where(band_rows > 0, band_rows, height + sum(dilations))
  kernels = [tf.cast(tf.where(transposed,
                              tf.transpose(weights[2 * k], [1, 0, 2, 3]),
                              weights[2 * k]), dtype) for k in range(n)]
  biases = [tf.cast(weights[2 * k + 1], dtype) for k in range(n)]
  head_kernel = tf.cast(weights[2 * n], tf.float32)
  head_bias = tf.cast(weights[2 * n + 1], tf.float32)
  channels = [int(k.shape[-1]) for k in weights[0:2 * n:2]]
  col_index = [reflect_indices(width, d, d) for d in dilations]
  scale = 1.0 / 255.0 if image.dtype == tf.uint8 else 1.0
  out_dtype = tf.uint8 if output_uint8 else tf.float32
  zero = tf.constant(0, tf.int32)

  def image_rows(rows):
    picked = tf.cond(
        transposed,
        lambda: tf.transpose(tf.gather(image, rows, axis=1), [1, 0, 2]),
        lambda: tf.gather(image, rows, axis=0))
    picked = tf.gather(picked, col_index[0], axis=1)
    return tf.cast(tf.cast(picked, tf.float32) * scale, dtype)

  def step(i, his, los, bufs, out):
    his, los, bufs = list(his), list(los), list(bufs)
    for k, d in enumerate(dilations):
      prev_hi = height if k == 0 else his[k - 1]
      if k == 0:
        fetch = lambda start, stop, d=d: image_rows(
            reflect_indices(height, d - start, stop + d - height))
      else:
        fetch = (lambda start, stop, d=d, buf=bufs[k - 1], lo=los[k - 1]:
                 _buffer_rows(buf, lo, start, stop, d, height))
      # Row r needs rows r - d, r, r + d of the layer below: wait for r + d
      # unless the layer below is complete (its bottom reflection is then
      # available too).
      target = tf.where(prev_hi >= height, height,
                        tf.maximum(0, prev_hi - d))
      new_hi = tf.minimum(target, his[k] + band_rows)
      start = his[k]
      rows = tf.cond(
          new_hi > his[k],
          lambda fetch=fetch, start=his[k], stop=new_hi, k=k, d=d:
          _layer_rows(fetch, start, stop, height, kernels[k], biases[k], d,
                      slope),
          lambda k=k: tf.zeros([0, width, channels[k]], dtype))
      his[k] = new_hi
      if k > 0:
        # Drop the rows of layer k - 1 that layer k no longer needs (a pad
        # longer than the image reflects more than once: keep them all).
        keep = tf.where(d <= height, tf.maximum(los[k - 1], new_hi - d),
                        los[k - 1])
        bufs[k - 1] = bufs[k - 1][keep - los[k - 1]:]
        los[k - 1] = keep
      if k < n - 1:
        # Stored padded across the width (and, at the top and bottom, with
        # the mirrored rows) for layer k + 1, so its input rows are a slice
        # of the buffer (no copy).
        padded = tf.gather(rows, col_index[k + 1], axis=1)
        bufs[k], los[k] = _append_rows(bufs[k], los[k], padded, start,
                                       new_hi, height, dilations[k + 1])
    flat = tf.reshape(tf.cast(rows, tf.float32), [-1, channels[-1]])
    band = tf.clip_by_value(tf.matmul(flat, head_kernel) + head_bias, 0.0, 1.0)
    if output_uint8:
      # Half to even, as image_write.quantize (np.round) rounds.
      band = tf.round(band * 255.0)
    out = out.write(i, tf.cast(tf.reshape(band, [-1, width, 3]), out_dtype))
    return i + 1, his, los, bufs, out

  initial = (zero, [zero] * n, [zero] * (n - 1),
             [tf.zeros([0, width + 2 * dilations[k + 1], channels[k]], dtype)
              for k in range(n - 1)],
             tf.TensorArray(out_dtype, size=0, dynamic_size=True,
                            infer_shape=False,
                            element_shape=tf.TensorShape([None, None, 3])))
  _, _, _, _, out = tf.while_loop(
      lambda i, his, los, bufs, out: his[-1] < height, step, initial,
      shape_invariants=(tf.TensorShape([]), [tf.TensorShape([])] * n,
                        [tf.TensorShape([])] * (n - 1),
                        [tf.TensorShape([None, None, c])
                         for c in channels[:-1]],
                        tf.TensorShape(None)),
      parallel_iterations=1)
  out = tf.reshape(out.concat(), [height, width, 3])
  if not transpose_back:
    return out
  return tf.cond(transposed, lambda: tf.transpose(out, [1, 0, 2]),
                 lambda: tf.identity(out))


def weight_list(folded: FoldedCAN) -> List[np.ndarray]:
  """The folded weights in `enhance_bands` order."""
  weights = []
  for kernel, bias in zip(folded.kernels, folded.biases):
    weights += [kernel, bias]
  return weights + [folded.head_kernel, folded.head_bias]


def enhance_image(image: tf.Tensor, weights: Sequence[tf.Tensor],
                  dilations: Sequence[int], slope: float,
                  tile_size=None,
                  memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
                  dtype: tf.DType = tf.float32,
                  output_uint8: bool = False,
                  transpose_back: bool = True) -> tf.Tensor:
  """Enhances one [h, w, 3] image in bounded memory (`enhance_bands`).

  Args:
    image: float32 [h, w, 3] in [0, 1], or uint8.
    weights: `weight_list` of a FoldedCAN (arrays, tensors or variables).
    dilations, slope: of the FoldedCAN.
    tile_size: band rows; 0 = the whole image in one piece; None = chosen
      from memory_budget_gb and the image's short side.
    memory_budget_gb: working memory allowed for the CAN (when tile_size is
      None).
    dtype: compute dtype (tf.float32 or tf.bfloat16).
    output_uint8, transpose_back: see `enhance_bands`.

  Returns:
    float32 [h, w, 3] in [0, 1] (or uint8).
  """
  if tile_size is None:
    shape = tf.shape(image)
    band = band_rows_for(tf.minimum(shape[0], shape[1]), memory_budget_gb)
  else:
    band = tile_size
  return enhance_bands(image, [tf.convert_to_tensor(w) for w in weights],
                       dilations, slope, band, dtype=dtype,
                       output_uint8=output_uint8,
                       transpose_back=transpose_back)


def check_options(tile_size: Optional[int], memory_budget_gb: float,
                  precision: str) -> None:
  """Raises ValueError naming the first bad inference option.

  Args:
    tile_size: band rows (0 = one piece, None = from the budget); >= 0.
    memory_budget_gb: the CAN's working-memory budget; > 0.
    precision: one of PRECISIONS.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                     f"got {precision!r}")
  if tile_size is not None and tile_size < 0:
    raise ValueError(f"tile_size must be >= 0, got {tile_size}")
  if memory_budget_gb <= 0:
    raise ValueError(f"memory_budget_gb must be > 0, got {memory_budget_gb}")


class StreamingEnhancer:
  """A CAN as one tf.function: float [h, w, 3] -> enhanced, bounded memory.

  Args:
    model: a `build_can` model (its weights are folded once).
    tile_size: band rows; 0 = one piece; None = from the memory budget.
    memory_budget_gb: see `enhance_image`.
    precision: "float32" or "bfloat16".
  """

  def __init__(self, model: keras.Model, tile_size: Optional[int] = None,
               memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
               precision: str = "float32"):
    check_options(tile_size, memory_budget_gb, precision)
    folded = fold_can(model)
    self.folded = folded
    self.tile_size = tile_size
    self.memory_budget_gb = float(memory_budget_gb)
    self.precision = precision
    weights = [tf.constant(w) for w in weight_list(folded)]
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    def run(x, output_uint8):
      return enhance_image(x, weights, folded.dilations, folded.slope,
                           tile_size, self.memory_budget_gb, dtype,
                           output_uint8=output_uint8, transpose_back=False)

    # float32 or uint8 pixels in (uint8: a quarter of the memory for 8-bit
    # photos); float32 [0, 1] or uint8 (round(255 x)) out.
    self._fns = {
        (in_dtype, out_uint8): tf.function(
            lambda x, out_uint8=out_uint8: run(x, out_uint8),
            input_signature=[tf.TensorSpec([None, None, 3], in_dtype)])
        for in_dtype in (tf.float32, tf.uint8) for out_uint8 in (False, True)}

  def __call__(self, image, output_uint8: bool = False,
               as_tensor: bool = False):
    """float [h, w, 3] in [0, 1] or uint8 (numpy or tensor) -> enhanced.

    Returns float32 clipped to [0, 1], or uint8 round(255 x) when
    output_uint8. As numpy, a wide image's result is a transposed view (no
    copy). `as_tensor` returns an upright tf.Tensor instead: its memory comes
    from TensorFlow's allocator, which keeps the CAN's working memory after
    the loop, so transposing and encoding it there (`image_write.encode_image`
    takes uint8 tensors) adds nothing to the process's peak, where numpy
    copies would sit on top of it (docs/can_streaming.md, "Write phase").
    """
    pixels = tf.convert_to_tensor(image)
    del image  # a caller that passes a tensor frees its pixels early
    if pixels.dtype != tf.uint8:
      pixels = tf.cast(pixels, tf.float32)
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    out = self._fns[(pixels.dtype, bool(output_uint8))](pixels)
    del pixels
    if as_tensor:
      return tf.transpose(out, [1, 0, 2]) if width > height else out
    out = out.numpy()
    return np.swapaxes(out, 0, 1) if width > height else out
