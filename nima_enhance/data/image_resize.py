"""The resize rule and decoding straight to a size, inside TensorFlow graphs.

`resize_tf` is the project's one resize rule (numpy callers reach it through
`images.resize`); `decode_resized_tf`, `decode_planned_tf` and
`decode_max_side_tf` decode an image's bytes straight to the size a pipeline
needs (a JPEG reduced in the DCT domain first, then the rule's filter), with
the pixels of decoding in full and resizing by the rule. `images` re-exports
the public names: callers read and resize through `images`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from nima_enhance.data import image_graph
from nima_enhance.data import image_headers
from nima_enhance.data.image_files import get_max_pixels


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


def _resize_values_tf(image: tf.Tensor, size) -> tf.Tensor:
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
  index = _resize_case_tf(tf.shape(image)[-3:-1], size)
  return tf.switch_case(index, [
      lambda case=case: _resize_by_case_tf(image, size, case)
      for case in range(_RESIZE_CASES)])


# The resize rule's filters (`resize_tf`): bilinear (0), after 2-tap means
# of rows (1), of columns (2) or of both (3); triangle (4); box pre-shrink
# then triangle (5).
_RESIZE_CASES = 6


def _resize_case_tf(n, size) -> tf.Tensor:
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


def _resize_by_case_tf(image: tf.Tensor, size: tf.Tensor,
                       case: int) -> tf.Tensor:
  """Filter `case` (`_resize_case_tf`) of the rule, no branch (float32 out).

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
  return tf.clip_by_value(_resize_values_tf(image, size), 0.0, 1.0)


def _decode_resized_tf(image_bytes: tf.Tensor, size_of, max_pixels,
                       scale: float) -> tf.Tensor:
  """Checked decode, resized to size_of(upright) -> (size, resize?), * scale.

  The header is parsed once and one switch picks the decoder: JPEG at the
  reduced scale (resized from its uint8 pixels) or any other format through
  `decode_checked_tf`. A photo not to be resized goes through the resize at
  its own size (bilinear at scale 1: the same values, no branch). Not
  clipped (convex filters): `resize_tf` of the float decode up to float
  rounding (~1e-6 of `scale`).
  """
  data, fmt, height, width, orientation = image_graph.checked_header_tf(
      image_bytes, max_pixels)
  upright = image_graph.upright_tf(height, width, orientation)
  size, shrink = size_of(upright)
  if shrink is not True:
    size = tf.where(shrink, size, upright)

  def jpeg(ratio, case):
    def decode():
      pixels = image_graph.orient_tf(
          tf.io.decode_jpeg(data, channels=3, ratio=ratio), orientation)
      pixels.set_shape([None, None, 3])
      return _resize_by_case_tf(pixels, size, case) * (scale / 255.0)
    return decode

  def other():
    image = image_graph.decode_checked_tf(data, fmt, height, width,
                                          orientation)
    return _resize_values_tf(image, size) * scale

  # One flat switch over (JPEG scale, resize filter) pairs: the filter is
  # picked from the size libjpeg decodes to, ceil(upright / ratio), known
  # from the header. A switch nested in a branch (the filter chosen after
  # decoding) ran the JPEG path ~1.3x slower in the tf.data map function.
  ratio_index = image_graph._jpeg_scale_index(upright[0], upright[1], size)  # pylint: disable=protected-access
  ratio = tf.gather(tf.constant(image_graph.JPEG_RATIOS, tf.int32),
                    ratio_index)
  case = _resize_case_tf((upright + ratio - 1) // ratio, size)
  index = tf.where(tf.equal(fmt, image_headers.JPEG),
                   ratio_index * _RESIZE_CASES + case,
                   len(image_graph.JPEG_RATIOS) * _RESIZE_CASES)
  image = tf.switch_case(index, [jpeg(r, c) for r in image_graph.JPEG_RATIOS
                                 for c in range(_RESIZE_CASES)] + [other])
  image.set_shape([None, None, 3])
  return image


def decode_resized_tf(image_bytes: tf.Tensor, size,
                      max_pixels: Optional[int] = None,
                      scale: float = 1.0, header=None) -> tf.Tensor:
  """`resize_tf(decode_image_tf(image_bytes, target_size=size), size) * scale`.

  The training pipelines' reader: one header parse, the reduced JPEG decode,
  and the resize read straight from the JPEG's uint8 pixels (no float copy
  of the decoded image, no clip; `scale=255` gives NIMA's [0, 255] input
  without a further pass). Same pixels as the composition, up to float
  rounding.

  `header`: the file's header when it is already known (int [4]: format
  id, stored height, width, EXIF orientation, as `ava.check_images` stores
  them): no in-graph header parse (`decode_planned_tf`).
  """
  size = tf.cast(size, tf.int32)
  if header is not None:
    return decode_planned_tf(image_bytes,
                             decode_plan_tf(header, size, max_pixels), size,
                             max_pixels, scale)
  image = _decode_resized_tf(image_bytes, lambda _: (size, True), max_pixels,
                             scale)
  static = tf.get_static_value(size)
  if static is not None:
    image.set_shape([int(static[0]), int(static[1]), 3])
  return image


# Planned decodes (`decode_plan_tf`): a file whose header is known (checked
# before training) needs no header parse, no checks and no decision in the
# graph, only one switch. In a tf.data map function every small op costs
# ~20 us of dispatch: the parse, its checks and the EXIF transpose cost more
# than decoding an AVA-size JPEG (tools/benchmarks/input_pipeline.py).
PARSE_PLAN = -1  # the plan of a file decoded through the in-graph parse
_PLANS_PER_ORIENTATION = len(image_graph.JPEG_RATIOS) * _RESIZE_CASES
# PNG plans (`decode_plan_tf(png=True)`) follow the 8 orientations' JPEG
# plans: PNG_PLANS + filter.
PNG_PLANS = 8 * _PLANS_PER_ORIENTATION


def decode_plan_tf(header, size, max_pixels: Optional[int] = None,
                   png: bool = False) -> tf.Tensor:
  """How `decode_planned_tf` reads files of known headers (int32 [...]).

  Args:
    header: int [..., 4]: format id (`image_headers.FORMATS`), stored height
      and width, EXIF orientation, as `image_headers.header_tf` gives them.
      A format of 0 means unknown.
    size: (height, width) the images are resized to: int [2] for all, or
      [..., 2] per file (e.g. each photo's `max_side_size_tf`).
    max_pixels: pixel limit (default: `get_max_pixels()` when traced).
    png: PNGs that pass the checks get a PNG plan (`PNG_PLANS` + the
      filter for their size) instead of `PARSE_PLAN`; `decode_planned_tf`
      reads them only when its `plans` are all PNG plans.

  Returns:
    For a JPEG that passes the header checks, (orientation - 1) *
    `_PLANS_PER_ORIENTATION` + scale index * `_RESIZE_CASES` + filter (the
    ratio `image_graph.jpeg_ratio_tf` picks, then the filter `resize_tf`
    picks for the size libjpeg decodes to, ceil(upright / ratio));
    `PARSE_PLAN` for anything else (unknown header, other formats, a header
    the checks refuse: the parse path decodes or names the problem).
  """
  header = tf.cast(header, tf.int64)
  size = tf.cast(size, tf.int32)
  limit = max_pixels or get_max_pixels()
  fmt, height, width, orientation = (header[..., i] for i in range(4))
  upright = tf.cast(tf.where((orientation >= 5)[..., None],
                             tf.stack([width, height], -1),
                             tf.stack([height, width], -1)), tf.int32)
  ratio_index = image_graph._jpeg_scale_index(upright[..., 0], upright[..., 1],  # pylint: disable=protected-access
                                              size)
  ratio = tf.gather(tf.constant(image_graph.JPEG_RATIOS, tf.int32),
                    ratio_index)[..., None]
  case = _resize_case_tf((upright + ratio - 1) // ratio, size)
  sane = ((height > 0) & (width > 0) & (height * width <= limit)
          & (orientation >= 1) & (orientation <= 8))
  plan = (tf.cast(orientation - 1, tf.int32) * _PLANS_PER_ORIENTATION
          + ratio_index * _RESIZE_CASES + case)
  plan = tf.where(tf.equal(fmt, image_headers.JPEG) & sane, plan, PARSE_PLAN)
  if png:  # no reduced decode, never oriented (a PNG has no EXIF here)
    png_plan = PNG_PLANS + _resize_case_tf(upright, size)
    plan = tf.where(tf.equal(fmt, image_headers.PNG) & sane, png_plan, plan)
  return plan


def _switch_tf(key: tf.Tensor, keys, branch_of):
  """`tf.switch_case` over the branches of the static `keys` only.

  `branch_of(k)` builds key k's branch; a key not in `keys` runs the first
  one's. One key: its branch inline, no switch (a branch op in a tf.data
  map function costs a function call and keeps the function off the fast
  single-threaded executor).
  """
  keys = sorted(keys)
  if len(keys) == 1:
    return branch_of(keys[0])()
  if keys != list(range(len(keys))):  # a table from key to branch
    table = np.zeros(keys[-1] + 1, np.int32)
    table[keys] = np.arange(len(keys))
    key = tf.gather(tf.constant(table), tf.clip_by_value(key, 0, keys[-1]))
  return tf.switch_case(key, [branch_of(k) for k in keys])


def decode_planned_tf(image_bytes: tf.Tensor, plan, size,
                      max_pixels: Optional[int] = None,
                      scale: float = 1.0,
                      all_planned: bool = False,
                      plans=None) -> tf.Tensor:
  """`decode_resized_tf` following a `decode_plan_tf` plan (one switch).

  A JPEG is decoded at the planned scale, oriented (unless upright) and
  resized by the planned filter, straight from the bytes: the plan stands
  for the header checks, done when the plan was made. `PARSE_PLAN` takes
  the checked path (header parsed in the graph). The plan must come from
  these bytes' header: a stale one (the file replaced) gives a wrong
  orientation or filter, still of `size` (or a decode error).

  `all_planned=True` (the caller knows no plan is `PARSE_PLAN`) leaves the
  parse path out of the graph (an error if one comes anyway): its nested
  control flow in a branch slowed every file's map call by ~10%.

  `plans`: every plan that can come (static ints, e.g. a dataset's plans),
  or None for any. The graph then holds only their branches: AVA-size
  JPEGs for 480x640 all decode at 1/1, upright, bilinear, so their map
  function has no branch op at all. A plan outside `plans` (`PARSE_PLAN`
  included) runs a listed plan's branches: pixels unspecified (of `size`,
  or a decode error).
  """
  size = tf.cast(size, tf.int32)
  plan = tf.cast(plan, tf.int32)
  if plans is not None:
    listed = np.unique(np.asarray(plans, np.int64))
    png = listed >= PNG_PLANS
    if png.all() and png.size:
      return _decode_planned_png_tf(image_bytes, plan, size, scale,
                                    (listed - PNG_PLANS).tolist())
    if png.any():
      raise ValueError("PNG plans cannot share a decode_planned_tf with "
                       "other plans")
  parse = plan < 0
  plan = tf.maximum(plan, 0)
  orientation = plan // _PLANS_PER_ORIENTATION + 1
  ratio_index = plan % _PLANS_PER_ORIENTATION // _RESIZE_CASES
  ratios = len(image_graph.JPEG_RATIOS)
  # Decode keys: oriented * ratios + ratio index, 2 * ratios for the parse
  # path; filter keys: the case, _RESIZE_CASES for the parse path.
  if plans is None:
    decode_keys = set(range(2 * ratios + 1))
    filter_keys = set(range(_RESIZE_CASES + 1))
  else:
    listed = np.unique(np.asarray(plans, np.int64))
    planned = listed[listed >= 0]
    decode_keys = set(((planned >= _PLANS_PER_ORIENTATION) * ratios
                       + planned % _PLANS_PER_ORIENTATION
                       // _RESIZE_CASES).tolist())
    filter_keys = set((planned % _RESIZE_CASES).tolist())
    if not planned.size or listed[0] < 0:
      decode_keys.add(2 * ratios)
      filter_keys.add(_RESIZE_CASES)

  # Two switches in sequence (decode, then filter), neither nested: one
  # switch whose branches decode and resize ran ~1.2x slower in the tf.data
  # map function.
  def decode(key):
    if key == 2 * ratios:  # parse: decoded below
      return lambda: tf.zeros([0, 0, 3], tf.uint8)
    def decode_it():
      pixels = tf.io.decode_jpeg(image_bytes, channels=3,
                                 ratio=image_graph.JPEG_RATIOS[key % ratios])
      if key >= ratios:  # the upright branches skip the transpose's ops
        pixels = image_graph.orient_tf(pixels, orientation)
      return pixels
    return decode_it

  pixels = _switch_tf(tf.where(parse, 2 * ratios,
                               tf.where(orientation > 1, ratios, 0)
                               + ratio_index), decode_keys, decode)
  pixels.set_shape([None, None, 3])

  def resized(case):
    if case == _RESIZE_CASES:
      return parsed
    def resize_it():
      image = _resize_by_case_tf(pixels, size, case)
      # From uint8 through convex filters: already in [0, 255].
      return image if scale == 255.0 else image * (scale / 255.0)
    return resize_it

  def parsed():
    if all_planned:
      with tf.control_dependencies([tf.debugging.Assert(
          False, ["no decode plan (all_planned=True)"])]):
        return tf.zeros(tf.concat([size, [3]], 0))
    return _decode_resized_tf(image_bytes, lambda _: (size, True),
                              max_pixels, scale)

  image = _switch_tf(tf.where(parse, _RESIZE_CASES, plan % _RESIZE_CASES),
                     filter_keys, resized)
  static = tf.get_static_value(size)
  image.set_shape([None, None, 3] if static is None
                  else [int(static[0]), int(static[1]), 3])
  return image


def _decode_planned_png_tf(image_bytes: tf.Tensor, plan: tf.Tensor, size,
                           scale: float, cases) -> tf.Tensor:
  """`decode_planned_tf` of PNG plans (`cases`: their filters, static).

  The PNG branch of `decode_image_tf` (all channels at 16 bits, alpha over
  white) without the header parse, then the planned filter.
  """
  image = tf.cast(tf.io.decode_png(image_bytes, channels=0, dtype=tf.uint16),
                  tf.float32) / 65535.0
  image = image_graph._to_rgb_tf(image)  # pylint: disable=protected-access
  image.set_shape([None, None, 3])

  def resized(case):
    def resize_it():
      out = _resize_by_case_tf(image, size, case)
      return out if scale == 1.0 else out * scale
    return resize_it

  out = _switch_tf(plan - PNG_PLANS, cases, resized)
  static = tf.get_static_value(size)
  out.set_shape([None, None, 3] if static is None
                else [int(static[0]), int(static[1]), 3])
  return out


def decode_max_side_tf(image_bytes: tf.Tensor,
                       max_side: Optional[int]) -> tf.Tensor:
  """`decode_image_tf`, shrunk so the largest side is `max_side` (never enlarged).

  The output size is `max_side_size` of the header's upright size (what
  `resize_max_side` of the full decode gives); a JPEG is decoded reduced
  toward it and resized from uint8 (`decode_resized_tf`). None or 0: the
  full decode, unresized.
  """
  if not max_side:
    return image_graph.decode_image_tf(image_bytes)
  def size_of(upright):
    return (max_side_size_tf(upright[0], upright[1], max_side),
            tf.reduce_max(upright) > max_side)
  return _decode_resized_tf(image_bytes, size_of, None, 1.0)


def resize_max_side_tf(image: tf.Tensor, max_side: int) -> tf.Tensor:
  """Resizes (down or up) so the largest side is `max_side` (graph version)."""
  shape = tf.shape(image)
  return resize_tf(image, max_side_size_tf(shape[-3], shape[-2], max_side))
