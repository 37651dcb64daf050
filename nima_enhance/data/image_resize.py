"""The resize rule, inside TensorFlow graphs.

`resize_tf` is the project's one resize rule (numpy callers reach it through
`images.resize`; docs/architecture.md, "The resize rule"). Its filter is
picked per size (`resize_case_tf`) so that `image_sized_decode` can plan it
before decoding. `images` re-exports the public names: callers read and
resize through `images`.
"""

from __future__ import annotations

import tensorflow as tf


def max_side_size_tf(height: tf.Tensor, width: tf.Tensor,
                     max_side: int) -> tf.Tensor:
  """Graph version of `max_side_size`: int32 [2] (height, width)."""
  height_f = tf.cast(height, tf.float32)
  width_f = tf.cast(width, tf.float32)
  scale = float(max_side) / tf.maximum(height_f, width_f)
  new_h = tf.maximum(1, tf.cast(tf.round(height_f * scale), tf.int32))
  new_w = tf.maximum(1, tf.cast(tf.round(width_f * scale), tf.int32))
  return tf.stack([new_h, new_w])


def _box_shrink_tf(image: tf.Tensor, factor_h, factor_w) -> tf.Tensor:
  """Means of factor_h x factor_w blocks ([..., h, w, c]; ints or tensors).

  The rows and columns that do not fill a block (fewer than the factor) are
  dropped, half on each side, so the framing stays centred. Rows, then
  columns: each mean runs over a middle axis of a contiguous block (fast).
  """
  shape = tf.shape(image)
  height, width = shape[-3] // factor_h, shape[-2] // factor_w
  top = (shape[-3] - height * factor_h) // 2
  left = (shape[-2] - width * factor_w) // 2
  image = image[..., top:top + height * factor_h,
                left:left + width * factor_w, :]
  rows = tf.reduce_mean(tf.reshape(image, tf.concat(
      [shape[:-3], tf.stack([height, factor_h, width * factor_w * shape[-1]])],
      0)), axis=-2)
  cols = tf.reshape(rows, tf.concat(
      [shape[:-3], tf.stack([height, width, factor_w, shape[-1]])], 0))
  return tf.reduce_mean(cols, axis=-2)


def resize_values_tf(image: tf.Tensor, size) -> tf.Tensor:
  """`resize_tf` without its clip, for float or uint8 images (float32 out).

  The output keeps the input's value range (uint8: [0, 255]).
  """
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8 and not image.dtype.is_floating:
    image = tf.cast(image, tf.float32)
  static_size = tf.get_static_value(tf.convert_to_tensor(size))
  static_in = image.shape[-3:-1]
  if static_size is not None and None not in static_in.as_list():
    pre = [max(1, int(n) // max(1, int(s)) // 2)
           for n, s in zip(static_in, static_size)]
    if max(pre) > 1:
      image = _box_shrink_tf(tf.cast(image, tf.float32), pre[0], pre[1])
    now = image.shape[-3:-1]
    if any(int(n) >= 2 * int(s) for n, s in zip(now, static_size)):
      return _triangle_tf(image, size)
    return _pair_bilinear_tf(image, size, *[
        2 * int(n) >= 3 * int(s) for n, s in zip(now, static_size)])
  # One switch over the cases (nested conds in a tf.data map function
  # cost far more than their ops: each level runs as a function call).
  size = tf.cast(size, tf.int32)
  index = resize_case_tf(tf.shape(image)[-3:-1], size)
  return tf.switch_case(index, [
      lambda case=case: resize_by_case_tf(image, size, case)
      for case in range(RESIZE_CASES)])


# The resize rule's filters (`resize_tf`): bilinear (0), after 2-tap means
# of rows (1), of columns (2) or of both (3); triangle (4); box pre-shrink
# then triangle (5).
RESIZE_CASES = 6


def resize_case_tf(n, size) -> tf.Tensor:
  """Which of the rule's filters an [h, w] input resized to `size` takes."""
  n, size = tf.cast(n, tf.int32), tf.cast(size, tf.int32)
  # Over the last axis: n may hold many images' sizes ([..., 2]).
  pairs = tf.cast(2 * n >= 3 * size, tf.int32)
  return tf.where(tf.reduce_any(n >= 4 * size, -1), 5,
                  tf.where(tf.reduce_any(n >= 2 * size, -1), 4,
                           pairs[..., 0] + 2 * pairs[..., 1]))


def _pair_bilinear_tf(image: tf.Tensor, size, rows: bool,
                      cols: bool) -> tf.Tensor:
  """Bilinear to `size` after 2-tap means of rows and/or columns (float32).

  The mean of each two neighbouring pixels (uint8 cast to float first: TF's
  float bilinear kernel is faster than its uint8 one, same values) is
  resampled bilinearly: the box of 2 convolved with bilinear's tent, a
  3-tap antialiasing filter for factors in [1.5, 2) at the cost of one add
  (a row slice is a view). The n - 1 means sit between pixels, so they
  span the image less half a pixel at each end (a stretch of 1 / n). The
  sum is halved on the output, the smaller image.
  """
  halvings = int(rows) + int(cols)
  if rows and image.dtype == tf.uint8:  # a decoder's pixels
    image = _row_pair_means_tf(image)
    halvings -= 1
  if image.dtype != tf.float32:
    image = tf.cast(image, tf.float32)
  if rows and halvings > int(cols):
    image = image[..., :-1, :, :] + image[..., 1:, :, :]
  if cols:
    image = image[..., :, :-1, :] + image[..., :, 1:, :]
  resized = tf.image.resize(image, size, method="bilinear")
  return resized * (0.5 ** halvings) if halvings else resized


def _row_pair_means_tf(image: tf.Tensor) -> tf.Tensor:
  """uint8 [..., h, w, c] -> the means of each two neighbouring rows, float32.

  One ScaleAndTranslate row pass (triangle, scale 1, shifted half a row:
  weights 1/2 and 1/2), reading the uint8 pixels directly: the same
  values as the cast, the two row slices and their sum halved (both round
  once; halving is exact), without the float copy of the image and the
  slices' copies (~0.3 ms less for an 800x600 AVA portrait). For
  decoders' uint8 pixels only: float images (training graphs, XLA) keep
  the slices.
  """
  shape = tf.shape(image)
  rows = tf.reshape(image, tf.stack([-1, shape[-3], 1,
                                     shape[-2] * shape[-1]]))
  means = tf.raw_ops.ScaleAndTranslate(
      images=rows, size=tf.stack([shape[-3] - 1, 1]),
      scale=tf.constant([1.0, 1.0]), translation=tf.constant([-0.5, 0.0]),
      kernel_type="triangle", antialias=False)
  means = tf.reshape(means, tf.concat([shape[:-3], [shape[-3] - 1],
                                       shape[-2:]], 0))
  if image.shape.rank is not None:
    static = image.shape
    means.set_shape(static[:-3].concatenate(
        [None if static[-3] is None else static[-3] - 1])
                    .concatenate(static[-2:]))
  return means


def _triangle_rows_tf(image: tf.Tensor, height) -> tf.Tensor:
  """The triangle filter along axis 1 only: [b, h, w, c] -> [b, height, w, c].

  Each row of w * c values is one pixel of w * c channels in an image one
  pixel wide, so ScaleAndTranslate runs its fast pass (a weighted sum of
  whole rows, vectorised) and its per-pixel column pass does nothing (one
  tap of weight 1: the same values).
  """
  shape = tf.shape(image)
  rows = tf.reshape(image, tf.stack([shape[0], shape[1], 1,
                                     shape[2] * shape[3]]))
  rows = tf.image.resize(rows, tf.stack([height, 1]), method="bilinear",
                         antialias=True)
  return tf.reshape(rows, tf.stack([shape[0], height, shape[2], shape[3]]))


def _triangle_tf(image: tf.Tensor, size) -> tf.Tensor:
  """`tf.image.resize(antialias=True)` ([..., h, w, c] -> float32), faster.

  The same pixels (bit for bit, tests/test_image_resize.py): the triangle
  filter is separable and ScaleAndTranslate filters the rows first, then
  the columns, but its column pass loops over single pixels of 3 channels.
  Here both passes are its row pass (`_triangle_rows_tf`), the columns
  after a transpose. Measured on one core from uint8 (tf.function, 50
  calls): 500x750 -> 256x256 ~0.7 ms against ~1.75, 1512x2016 (a 12 MP
  JPEG at 1/2) -> 480x640 ~4.5 ms against ~11.4.
  """
  image = tf.convert_to_tensor(image)
  if image.dtype not in (tf.float32, tf.uint8):  # uint8: read by the op
    image = tf.cast(image, tf.float32)
  size = tf.cast(size, tf.int32)
  shape = tf.shape(image)
  batch = tf.reshape(image, tf.concat([[-1], shape[-3:]], 0))
  rows = _triangle_rows_tf(batch, size[0])
  cols = _triangle_rows_tf(tf.transpose(rows, [0, 2, 1, 3]), size[1])
  out = tf.reshape(tf.transpose(cols, [0, 2, 1, 3]),
                   tf.concat([shape[:-3], size, shape[-1:]], 0))
  static = tf.get_static_value(size)
  if image.shape.rank is not None:
    out.set_shape(image.shape[:-3].concatenate(
        [None, None] if static is None else [int(v) for v in static])
                  .concatenate(image.shape[-1:]))
  return out


def resize_by_case_tf(image: tf.Tensor, size: tf.Tensor,
                       case: int) -> tf.Tensor:
  """Filter `case` (`resize_case_tf`) of the rule, no branch (float32 out).

  Factors are read from the image's own shape, so a case chosen from a
  stale size still gives an image of `size` (with another filter).
  """
  shape = image.shape
  n = tf.shape(image)[-3:-1]
  if case < 4:
    return _pair_bilinear_tf(image, size, bool(case & 1), bool(case & 2))
  if case == 4:
    return _triangle_tf(image, size)
  pre = tf.maximum(n // size // 2, 1)
  shrunk = _box_shrink_tf(tf.cast(image, tf.float32), pre[0], pre[1])
  if shape.rank is not None:
    shrunk.set_shape(shape[:-3].concatenate([None, None]).concatenate(
        shape[-1:]))
  # Every axis shrunk by >= 4 is left with a factor in [2, 3).
  return _triangle_tf(shrunk, size)


def resize_tf(image: tf.Tensor, size) -> tf.Tensor:
  """The project's one resize rule ([..., h, w, c] float -> size, in [0, 1]).

  Per axis, with f = input / output size:
  - f >= 4: an integer box pre-shrink averages floor(f / 2) pixels (one
    cheap pass), leaving a factor below 4;
  - then, if an axis still shrinks by >= 2: the triangle filter of
    `tf.image.resize(antialias=True)` (ScaleAndTranslate, its pixels run
    as two row passes: `_triangle_tf`, ~2.5x faster for an AVA photo);
  - else bilinear, after the mean of each two neighbouring pixels along
    the axes with f in [1.5, 2) (where bilinear's two taps alias
    visibly): a 3-tap filter close to the triangle at the cost of one add
    (`_pair_bilinear_tf`); plain bilinear below 1.5 and for enlargements.
  For an 800x600 JPEG (~1.3 ms to decode) squeezed to 480x640, the 2-tap
  means add ~0.5 ms to bilinear's ~0.6, where bilinear to twice the size
  then pair means (this rule's [1.5, 2) filter before issue 12) added
  ~1.2 ms and the triangle ~4 ms, for scores as close to the triangle's
  (docs/architecture.md, "The resize rule").
  After a reduced JPEG decode (`decode_image_tf(target_size=)`) the factor
  left is below 2 unless 1/8 was not enough.
  Every filter is a convex combination (values stay in range up to float
  rounding). Differentiable; with static shapes (XLA) the choices are made
  in Python.
  """
  image = tf.convert_to_tensor(image)
  if not image.dtype.is_floating:
    image = tf.cast(image, tf.float32)
  return tf.clip_by_value(resize_values_tf(image, size), 0.0, 1.0)


def resize_max_side_tf(image: tf.Tensor, max_side: int) -> tf.Tensor:
  """Resizes (down or up) so the largest side is `max_side` (graph version)."""
  shape = tf.shape(image)
  return resize_tf(image, max_side_size_tf(shape[-3], shape[-2], max_side))
