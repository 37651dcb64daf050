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

  uint8 is read by the bilinear op itself (no float copy of the full-size
  image); the output keeps the input's value range.
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
      return tf.image.resize(image, size, method="bilinear", antialias=True)
    ks = [2 if 2 * int(n) >= 3 * int(s) else 1
          for n, s in zip(now, static_size)]
    resized = tf.image.resize(
        image, [k * int(s) for k, s in zip(ks, static_size)],
        method="bilinear")
    if max(ks) > 1:
      resized = _box_shrink_tf(resized, ks[0], ks[1])
    return tf.cast(resized, tf.float32)
  # One switch over the four cases (nested conds in a tf.data map function
  # cost far more than their ops: each level runs as a function call).
  size = tf.cast(size, tf.int32)
  index = _resize_case_tf(tf.shape(image)[-3:-1], size)
  return tf.switch_case(index, [
      lambda case=case: _resize_by_case_tf(image, size, case)
      for case in range(_RESIZE_CASES)])


# The resize rule's four filters (`resize_tf`): plain bilinear, bilinear to
# twice the size then pair means, triangle, box pre-shrink then triangle.
_RESIZE_CASES = 4


def _resize_case_tf(n, size) -> tf.Tensor:
  """Which of the rule's filters an [h, w] input resized to `size` takes."""
  n, size = tf.cast(n, tf.int32), tf.cast(size, tf.int32)
  # Over the last axis: n may hold many images' sizes ([..., 2]).
  return tf.where(tf.reduce_any(n >= 4 * size, -1), 3,
                  tf.where(tf.reduce_any(n >= 2 * size, -1), 2,
                           tf.where(tf.reduce_any(2 * n >= 3 * size, -1), 1,
                                    0)))


def _resize_by_case_tf(image: tf.Tensor, size: tf.Tensor,
                       case: int) -> tf.Tensor:
  """Filter `case` (`_resize_case_tf`) of the rule, no branch (float32 out).

  Factors are read from the image's own shape, so a case chosen from a
  stale size still gives an image of `size` (with another filter).
  """
  shape = image.shape
  n = tf.shape(image)[-3:-1]
  if case == 0:
    return tf.cast(tf.image.resize(image, size, method="bilinear"),
                   tf.float32)
  if case == 1:
    ks = tf.where(2 * n >= 3 * size, 2, 1)
    return _box_shrink_tf(tf.image.resize(image, ks * size,
                                          method="bilinear"), ks[0], ks[1])
  if case == 2:
    return tf.image.resize(tf.cast(image, tf.float32), size,
                           method="bilinear", antialias=True)
  pre = tf.maximum(n // size // 2, 1)
  shrunk = _box_shrink_tf(tf.cast(image, tf.float32), pre[0], pre[1])
  if shape.rank is not None:  # tf.image.resize needs the rank
    shrunk.set_shape(shape[:-3].concatenate([None, None]).concatenate(
        shape[-1:]))
  # Every axis shrunk by >= 4 is left with a factor in [2, 3).
  return tf.image.resize(shrunk, size, method="bilinear", antialias=True)


def resize_tf(image: tf.Tensor, size) -> tf.Tensor:
  """The project's one resize rule ([..., h, w, c] float -> size, in [0, 1]).

  Per axis, with f = input / output size:
  - f >= 4: an integer box pre-shrink averages floor(f / 2) pixels (one
    cheap pass), leaving a factor below 4;
  - then, if an axis still shrinks by >= 2: the triangle filter of
    `tf.image.resize(antialias=True)` (ScaleAndTranslate; on an image
    already shrunk, so its cost is small);
  - else, where the factor is in [1.5, 2) (large enough for bilinear's two
    taps to alias visibly): bilinear to twice the output size along that
    axis, then the mean of each pair: a box of the factor's width convolved
    with bilinear's tent, close to the triangle (tests hold it within a few
    grey levels) at a fraction of its cost (ScaleAndTranslate costs ~4x a
    JPEG decode at AVA sizes: portraits squeezed to 480x640);
  - below 1.5, plain bilinear.
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


def decode_plan_tf(header, size, max_pixels: Optional[int] = None
                  ) -> tf.Tensor:
  """How `decode_planned_tf` reads files of known headers (int32 [...]).

  Args:
    header: int [..., 4]: format id (`image_headers.FORMATS`), stored height
      and width, EXIF orientation, as `image_headers.header_tf` gives them.
      A format of 0 means unknown.
    size: (height, width) the images are resized to.
    max_pixels: pixel limit (default: `get_max_pixels()` when traced).

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
  ok = (tf.equal(fmt, image_headers.JPEG) & (height > 0) & (width > 0)
        & (height * width <= limit) & (orientation >= 1) & (orientation <= 8))
  plan = (tf.cast(orientation - 1, tf.int32) * _PLANS_PER_ORIENTATION
          + ratio_index * _RESIZE_CASES + case)
  return tf.where(ok, plan, PARSE_PLAN)


def mirrored_plan_tf(plan, mirror) -> tf.Tensor:
  """The plan of the left-right mirror image where `mirror` (a bool).

  Mirroring what EXIF orientation o shows gives orientation
  ((o - 1) xor 1) + 1 (1 <-> 2, 3 <-> 4, 5 <-> 6, 7 <-> 8), so a random
  flip costs a reverse of the decoded uint8 pixels, not of the float
  output. `PARSE_PLAN` is returned unchanged (not mirrored).
  """
  plan = tf.cast(plan, tf.int32)
  per = _PLANS_PER_ORIENTATION
  flipped = tf.bitwise.bitwise_xor(plan // per, 1) * per + plan % per
  return tf.where(mirror & (plan >= 0), flipped, plan)


def decode_planned_tf(image_bytes: tf.Tensor, plan, size,
                      max_pixels: Optional[int] = None,
                      scale: float = 1.0,
                      all_planned: bool = False) -> tf.Tensor:
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
  """
  size = tf.cast(size, tf.int32)
  plan = tf.cast(plan, tf.int32)
  parse = plan < 0
  plan = tf.maximum(plan, 0)
  orientation = plan // _PLANS_PER_ORIENTATION + 1
  ratio_index = plan % _PLANS_PER_ORIENTATION // _RESIZE_CASES
  # Two switches in sequence (decode, then filter), neither nested: one
  # switch whose branches decode and resize ran ~1.2x slower in the tf.data
  # map function.
  def jpeg(ratio, oriented):
    def decode():
      pixels = tf.io.decode_jpeg(image_bytes, channels=3, ratio=ratio)
      if oriented:  # the upright branches skip the transpose's ops
        pixels = image_graph.orient_tf(pixels, orientation)
      return pixels
    return decode

  ratios = len(image_graph.JPEG_RATIOS)
  pixels = tf.switch_case(
      tf.where(parse, 2 * ratios,
               tf.where(orientation > 1, ratios, 0) + ratio_index),
      [jpeg(r, oriented) for oriented in (False, True)
       for r in image_graph.JPEG_RATIOS]
      + [lambda: tf.zeros([0, 0, 3], tf.uint8)])  # parse: decoded below
  pixels.set_shape([None, None, 3])

  def resized(case):
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

  image = tf.switch_case(tf.where(parse, _RESIZE_CASES,
                                  plan % _RESIZE_CASES),
                         [resized(c) for c in range(_RESIZE_CASES)]
                         + [parsed])
  static = tf.get_static_value(size)
  image.set_shape([None, None, 3] if static is None
                  else [int(static[0]), int(static[1]), 3])
  return image


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
