"""Decoding an image's bytes straight to a size, inside TensorFlow graphs.

`decode_resized_tf`, `decode_planned_tf` and `decode_max_side_tf` decode to
the size a pipeline needs: a JPEG reduced in the DCT domain first, then the
filter of `image_resize.resize_tf` read from its uint8 pixels, with the
pixels of decoding in full and resizing by the rule. A planned decode
(`decode_plan_tf`) follows a header read before training, with no parse in
the graph. `images` re-exports the public names: callers read and resize
through `images`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from nima_enhance.data import image_graph
from nima_enhance.data import image_headers
from nima_enhance.data import image_resize
from nima_enhance.data.image_files import get_max_pixels


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
      return (image_resize.resize_by_case_tf(pixels, size, case)
              * (scale / 255.0))
    return decode

  def other():
    image = image_graph.decode_checked_tf(data, fmt, height, width,
                                          orientation)
    return image_resize.resize_values_tf(image, size) * scale

  # One flat switch over (JPEG scale, resize filter) pairs: the filter is
  # picked from the size libjpeg decodes to, ceil(upright / ratio), known
  # from the header. A switch nested in a branch (the filter chosen after
  # decoding) ran the JPEG path ~1.3x slower in the tf.data map function.
  ratio_index = image_graph._jpeg_scale_index(upright[0], upright[1], size)  # pylint: disable=protected-access
  ratio = tf.gather(tf.constant(image_graph.JPEG_RATIOS, tf.int32),
                    ratio_index)
  case = image_resize.resize_case_tf((upright + ratio - 1) // ratio, size)
  index = tf.where(tf.equal(fmt, image_headers.JPEG),
                   ratio_index * image_resize.RESIZE_CASES + case,
                   len(image_graph.JPEG_RATIOS) * image_resize.RESIZE_CASES)
  image = tf.switch_case(index, [
      jpeg(r, c) for r in image_graph.JPEG_RATIOS
      for c in range(image_resize.RESIZE_CASES)] + [other])
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
_PLANS_PER_ORIENTATION = (len(image_graph.JPEG_RATIOS)
                          * image_resize.RESIZE_CASES)
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
    `_PLANS_PER_ORIENTATION` + scale index * `image_resize.RESIZE_CASES` +
    filter (the ratio `image_graph.jpeg_ratio_tf` picks, then the filter
    `resize_tf` picks for the size libjpeg decodes to, ceil(upright /
    ratio));
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
  case = image_resize.resize_case_tf((upright + ratio - 1) // ratio, size)
  sane = ((height > 0) & (width > 0) & (height * width <= limit)
          & (orientation >= 1) & (orientation <= 8))
  plan = (tf.cast(orientation - 1, tf.int32) * _PLANS_PER_ORIENTATION
          + ratio_index * image_resize.RESIZE_CASES + case)
  plan = tf.where(tf.equal(fmt, image_headers.JPEG) & sane, plan, PARSE_PLAN)
  if png:  # no reduced decode, never oriented (a PNG has no EXIF here)
    png_plan = PNG_PLANS + image_resize.resize_case_tf(upright, size)
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
  ratio_index = plan % _PLANS_PER_ORIENTATION // image_resize.RESIZE_CASES
  ratios = len(image_graph.JPEG_RATIOS)
  # Decode keys: oriented * ratios + ratio index, 2 * ratios for the parse
  # path; filter keys: the case, image_resize.RESIZE_CASES for the parse path.
  if plans is None:
    decode_keys = set(range(2 * ratios + 1))
    filter_keys = set(range(image_resize.RESIZE_CASES + 1))
  else:
    listed = np.unique(np.asarray(plans, np.int64))
    planned = listed[listed >= 0]
    decode_keys = set(((planned >= _PLANS_PER_ORIENTATION) * ratios
                       + planned % _PLANS_PER_ORIENTATION
                       // image_resize.RESIZE_CASES).tolist())
    filter_keys = set((planned % image_resize.RESIZE_CASES).tolist())
    if not planned.size or listed[0] < 0:
      decode_keys.add(2 * ratios)
      filter_keys.add(image_resize.RESIZE_CASES)

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
    if case == image_resize.RESIZE_CASES:
      return parsed
    def resize_it():
      image = image_resize.resize_by_case_tf(pixels, size, case)
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

  cases = image_resize.RESIZE_CASES
  image = _switch_tf(tf.where(parse, cases, plan % cases), filter_keys,
                     resized)
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
      out = image_resize.resize_by_case_tf(image, size, case)
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
    return (image_resize.max_side_size_tf(upright[0], upright[1], max_side),
            tf.reduce_max(upright) > max_side)
  return _decode_resized_tf(image_bytes, size_of, None, 1.0)
