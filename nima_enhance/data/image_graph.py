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
  """Applies EXIF Orientation 1..8 so the image displays upright."""
  def t(x):
    return tf.transpose(x, [1, 0, 2])
  branches = [lambda: image, lambda: image[:, ::-1], lambda: image[::-1, ::-1],
              lambda: image[::-1], lambda: t(image), lambda: t(image)[:, ::-1],
              lambda: t(image)[::-1, ::-1], lambda: t(image)[::-1]]
  index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
  return tf.switch_case(index, branches)


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
  """Index into JPEG_RATIOS of `jpeg_ratio_tf` (int32 scalar)."""
  target = tf.cast(tf.convert_to_tensor(target_size), tf.int32)
  height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
  index = tf.constant(0, tf.int32)
  for i, r in enumerate(JPEG_RATIOS[1:], start=1):
    fits = (height >= r * target[0]) & (width >= r * target[1])
    index = tf.where(fits, i, index)
  return tf.where(tf.reduce_all(target > 0), index, 0)


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
  size = tf.cast(tf.stack([height, width]), tf.int32)
  return tf.where(tf.cast(orientation, tf.int32) >= 5, size[::-1], size)


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

  if target_size is None:
    scale = tf.constant(0, tf.int32)
  else:
    swap = tf.cast(orientation, tf.int32) >= 5
    scale = _jpeg_scale_index(tf.where(swap, width, height),
                              tf.where(swap, height, width), target_size)

  def jpeg():
    # `ratio` is an attribute of the op, so one decoder per scale.
    def at(ratio):
      return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio)
    pixels = tf.switch_case(scale, [at(r) for r in JPEG_RATIOS])
    return tf.cast(pixels, tf.float32) / 255.0

  def png():
    return _to_rgb_tf(tf.cast(tf.io.decode_png(data, channels=0,
                                               dtype=tf.uint16),
                              tf.float32) / 65535.0)

  def gif():
    # decode_image stops after the first frame (decode_gif would decode them
    # all: frames x pixels, unbounded by the header check).
    return tf.cast(tf.io.decode_image(data, channels=3,
                                      expand_animations=False),
                   tf.float32) / 255.0

  def bmp():
    return tf.cast(tf.io.decode_bmp(data, channels=3), tf.float32) / 255.0

  def webp():
    return _to_rgb_tf(tf.cast(tf.io.decode_webp(data, channels=0)[0],
                              tf.float32) / 255.0)

  image = tf.switch_case(tf.clip_by_value(tf.cast(fmt, tf.int32) - 1, 0, 4),
                         [jpeg, png, gif, bmp, webp])
  image = orient_tf(image, orientation)
  image.set_shape([None, None, 3])
  return image
