"""The reading contract inside a TensorFlow graph (tf.data, SavedModels).

`decode_image_tf` is the one decoder of JPEG/PNG/GIF/BMP/WebP bytes: the
header (`image_headers.header_tf`) is parsed and the pixel limit checked
before TF's decoders run, alpha is composited over white and the EXIF
Orientation applied. The numpy path (`images.decode_image_bytes`) runs this
same function, so files give the same pixels everywhere; `orient` is its
numpy twin for tests and callers holding arrays. Stock TensorFlow ops only:
SavedModels built from it load without this package.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from nima_enhance.data import image_headers
from nima_enhance.data.image_files import get_max_pixels


def _to_rgb_tf(image: tf.Tensor) -> tf.Tensor:
  """Graph `to_float_rgb` of a float image with 1-4 channels."""
  channels = tf.shape(image)[-1]
  rgb = tf.cond(channels >= 3, lambda: image[..., :3],
                lambda: tf.tile(image[..., :1], [1, 1, 3]))
  return tf.cond(tf.equal(channels % 2, 0),
                 lambda: rgb * image[..., -1:] + (1.0 - image[..., -1:]),
                 lambda: rgb)


def orient_tf(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
  """Applies EXIF Orientation 1..8 so the image displays upright.

  One transpose and one reverse with computed arguments (no branch op: a
  Case in a tf.data map function keeps it off the fast single-threaded
  executor); an identity transpose or empty reverse returns its input.
  """
  o = tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8)
  swap = o >= 5
  perm = tf.where(swap, tf.constant([1, 0, 2]), tf.constant([0, 1, 2]))
  # After the transpose of 5-8, each orientation flips rows, columns or both.
  flip_rows = (o == 3) | (o == 4) | (o == 7) | (o == 8)
  flip_cols = (o == 2) | (o == 3) | (o == 6) | (o == 7)
  axes = tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip_rows, flip_cols]))
  return tf.reverse(tf.transpose(image, perm), axes)


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
  """numpy `orient_tf` (EXIF Orientation 1..8 -> upright)."""
  t = np.swapaxes(image, 0, 1) if orientation >= 5 else image
  flips = {2: (slice(None), slice(None, None, -1)),
           3: (slice(None, None, -1), slice(None, None, -1)),
           4: (slice(None, None, -1),), 6: (slice(None), slice(None, None, -1)),
           7: (slice(None, None, -1), slice(None, None, -1)),
           8: (slice(None, None, -1),)}.get(orientation, ())
  return np.ascontiguousarray(t[flips])


# libjpeg's DCT-domain scalings: a 1/r decode reads only the low-frequency
# coefficients of each 8x8 block (1/8: the block's mean), so it costs a
# fraction of a full decode and is close to an r x r box average of it.
JPEG_RATIOS = (1, 2, 4, 8)


def _jpeg_scale_index(height, width, target_size) -> tf.Tensor:
  """Index into JPEG_RATIOS of `jpeg_ratio_tf` (int32, height's shape).

  `target_size` is [2] or, for many photos at once, [..., 2] like height.
  """
  target = tf.cast(tf.convert_to_tensor(target_size), tf.int32)
  height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
  index = tf.zeros_like(height)
  for i, r in enumerate(JPEG_RATIOS[1:], start=1):
    fits = (height >= r * target[..., 0]) & (width >= r * target[..., 1])
    index = tf.where(fits, i, index)
  return tf.where(tf.reduce_all(target > 0, -1), index, 0)


def jpeg_ratio_tf(height, width, target_size) -> tf.Tensor:
  """The JPEG decode scale 1, 2, 4 or 8 for an upright height x width photo.

  The largest r with height >= r * target height and width >= r * target
  width: a photo at least twice the size it will be resized to, in both
  directions, is decoded at 1/2 (1/4, 1/8 for 4x, 8x), so the decoded
  ceil(h / r) x ceil(w / r) image is never smaller than the target and the
  resize after it (`images.resize_tf`) shrinks by less than 2 unless 1/8 was
  not enough. 1 when the target has a size <= 0.

  Args:
    height: upright height (EXIF orientation applied: the ratio must come
      from the size the photo is shown at, which orientations 5-8 swap).
    width: upright width.
    target_size: (height, width) the decoded image will be resized to.
  """
  return tf.gather(tf.constant(JPEG_RATIOS, tf.int32),
                   _jpeg_scale_index(height, width, target_size))


def upright_size_tf(image_bytes: tf.Tensor) -> tf.Tensor:
  """int32 [2]: (height, width) from the header, EXIF orientation applied.

  Unspecified for bytes `decode_image_tf` refuses.
  """
  _, height, width, orientation, _ = image_headers.header_tf(image_bytes)
  return upright_tf(height, width, orientation)


def checked_header_tf(image_bytes: tf.Tensor,
                      max_pixels: Optional[object] = None):
  """Parses the header once and asserts the reading contract's checks.

  Returns:
    (data, fmt, height, width, orientation): `data` is `image_bytes` gated
    on the checks (decoders must read it, so they run only after them); the
    others are int64 scalars of `image_headers.header_tf` (stored, not
    upright, height and width).
  """
  limit = tf.cast(max_pixels if max_pixels is not None else get_max_pixels(),
                  tf.int64)
  fmt, height, width, orientation, status = image_headers.header_tf(
      image_bytes)
  checks = [
      (tf.strings.length(image_bytes) > 0, "image bytes are empty"),
      ((fmt >= 1) & (fmt <= 5), "not a JPEG/PNG/GIF/BMP/WebP image (TIFF is "
       "read outside TensorFlow graphs only)"),
      (status != 1, "damaged image header"),
      (status != 2, "truncated image (ends inside its header)"),
      (status != 3, "animated WebP is not supported"),
      ((height > 0) & (width > 0), "image header gives a zero size"),
  ]
  deps = []
  for ok, message in checks:
    with tf.control_dependencies(deps):
      deps = [tf.debugging.Assert(ok, [message])]
  with tf.control_dependencies(deps):
    deps = [tf.debugging.Assert(
        height * width <= limit,
        ["image of", width, "x", height, "pixels is above the pixel limit",
         limit, "(max_pixels)"])]
  with tf.control_dependencies(deps):
    data = tf.identity(image_bytes)
  return data, fmt, height, width, orientation


def upright_tf(height, width, orientation) -> tf.Tensor:
  """int32 [2] upright (height, width) of a stored size and EXIF orientation."""
  size = tf.cast(tf.stack([height, width]), tf.int32)
  return tf.where(tf.cast(orientation, tf.int32) >= 5, size[::-1], size)


def decode_jpeg_uint8_tf(data: tf.Tensor, height, width, orientation,
                         target_size: Optional[object] = None) -> tf.Tensor:
  """A checked JPEG (`checked_header_tf`) -> upright uint8 RGB [h, w, 3].

  Reduced toward `target_size` by `jpeg_ratio_tf`. The pixels of
  `decode_image_tf` before its conversion to float: pipelines that resize
  next feed these to the resize (which reads uint8), skipping a float pass
  over the full-size image.
  """
  if target_size is None:
    scale = tf.constant(0, tf.int32)
  else:
    upright = upright_tf(height, width, orientation)
    scale = _jpeg_scale_index(upright[0], upright[1], target_size)
  # `ratio` is an attribute of the op, so one decoder per scale.
  def at(ratio):
    return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio)
  pixels = tf.switch_case(scale, [at(r) for r in JPEG_RATIOS])
  pixels = orient_tf(pixels, orientation)
  pixels.set_shape([None, None, 3])
  return pixels


def decode_image_tf(image_bytes: tf.Tensor,
                    max_pixels: Optional[object] = None,
                    target_size: Optional[object] = None) -> tf.Tensor:
  """The reading contract inside a graph: bytes -> float32 RGB [h, w, 3].

  JPEG (EXIF orientation applied), PNG (8/16-bit kept), GIF (first frame),
  BMP and still WebP; alpha composited over white. The header is parsed and
  the pixel limit checked before any decoder runs. Bytes that are empty, not
  one of these formats (TIFF included), animated WebP, above `max_pixels`
  (default: `get_max_pixels()` when traced) or not decodable raise
  InvalidArgumentError, which a SavedModel returns for that request only.
  Stock TensorFlow ops only.

  With `target_size` (height, width; a tensor or ints, <= 0 meaning none),
  the size the caller will resize the image to, a JPEG at least twice that
  size in both upright directions is decoded at a reduced scale in the DCT
  domain (`jpeg_ratio_tf`): same framing, fewer pixels; other formats are
  decoded in full. The pixel limit still applies to the full size.
  """
  return decode_checked_tf(*checked_header_tf(image_bytes, max_pixels),
                           target_size=target_size)


def decode_pixels_checked_tf(fmt_name: str, data, height, width, orientation,
                             target_size: Optional[object] = None
                             ) -> tf.Tensor:
  """One format's upright pixels as stored: uint8, or uint16 for PNG.

  The integer half of `decode_checked_tf` (the same decoders, all channels
  kept), for callers that convert to float outside TensorFlow: the numpy
  reading path (`images.decode_image_bytes`), whose float copy of a large
  photo then never sits in TensorFlow's allocator pool, which keeps freed
  memory for TensorFlow's own later use, not numpy's.

  Args:
    fmt_name: one of `image_headers.GRAPH_FORMATS` (a Python string: one trace each).
    data, height, width, orientation: `checked_header_tf`'s outputs.
    target_size: as in `decode_image_tf` (JPEG only).
  """
  if fmt_name == "jpeg":
    # Oriented inside (as uint8), after a decode reduced toward target_size.
    return decode_jpeg_uint8_tf(data, height, width, orientation, target_size)
  if fmt_name == "png":
    pixels = tf.io.decode_png(data, channels=0, dtype=tf.uint16)
  elif fmt_name == "gif":
    # decode_image stops after the first frame (decode_gif would decode them
    # all: frames x pixels, unbounded by the header check).
    pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
  elif fmt_name == "bmp":
    pixels = tf.io.decode_bmp(data, channels=3)
  elif fmt_name == "webp":
    pixels = tf.io.decode_webp(data, channels=0)[0]
  else:
    raise ValueError(f"no graph decoder for {fmt_name!r}")
  return orient_tf(pixels, orientation)


def decode_checked_tf(data, fmt, height, width, orientation,
                      target_size: Optional[object] = None) -> tf.Tensor:
  """`decode_image_tf` after `checked_header_tf` (the header parsed once)."""
  def branch(fmt_name):
    def decode():
      pixels = decode_pixels_checked_tf(fmt_name, data, height, width,
                                        orientation, target_size)
      scale = 65535.0 if pixels.dtype == tf.uint16 else 255.0
      image = tf.cast(pixels, tf.float32) / scale
      # JPEG, GIF and BMP are decoded to three channels already.
      return _to_rgb_tf(image) if fmt_name in ("png", "webp") else image
    return decode

  image = tf.switch_case(tf.clip_by_value(tf.cast(fmt, tf.int32) - 1, 0, 4),
                         [branch(name) for name in image_headers.GRAPH_FORMATS])
  image.set_shape([None, None, 3])
  return image
