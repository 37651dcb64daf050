"""The one image decode / resize / encode path of the project.

Every module that reads or writes pixels goes through here, so that training,
evaluation, scoring, serving and data preparation see identical pixels.

Conventions (DESIGN.md section 7): images are float32 RGB in [0, 1] unless a name
says otherwise (`*_uint8`, `*_bytes`). Functions whose name ends in `_tf` are
TensorFlow graph ops usable inside `tf.data` and `tf.function`; the others work
on numpy arrays and files.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff")
_TIFF_EXTENSIONS = (".tif", ".tiff")


class ImageReadError(ValueError):
  """Raised when a file is missing, truncated or not a decodable image."""


def sniff_format(data: bytes) -> Optional[str]:
  """Returns "jpeg", "png", "gif", "bmp", "tiff" from magic bytes, or None."""
  if data[:3] == b"\xff\xd8\xff":
    return "jpeg"
  if data[:8] == b"\x89PNG\r\n\x1a\n":
    return "png"
  if data[:6] in (b"GIF87a", b"GIF89a"):
    return "gif"
  if data[:2] == b"BM":
    return "bmp"
  if data[:4] in (b"II*\x00", b"MM\x00*"):
    return "tiff"
  return None


# Formats tf.io.decode_image reads inside a graph (tf.data, SavedModels); TIFF
# is decoded on the numpy side only.
GRAPH_FORMATS = ("jpeg", "png", "gif", "bmp")


# Bytes read from the end of a file for the JPEG trailer check (some writers
# pad after the end-of-image marker).
_TAIL_BYTES = 64


def _jpeg_truncated(data_end: bytes) -> bool:
  """True when a JPEG's last bytes lack the end-of-image marker.

  TF silently accepts some truncated JPEGs; this catches the half-downloaded
  files that AVA is known to contain.
  """
  return not data_end.rstrip(b"\x00").endswith(b"\xff\xd9")


def bytes_problem(data: bytes, graph_only: bool = False) -> Optional[str]:
  """Why encoded bytes are not a usable image (cheap checks), or None.

  Checks the magic bytes and a JPEG's end-of-image marker, not the full
  decode. `graph_only` also refuses TIFF, which in-graph decoders cannot read.
  """
  if not data:
    return "empty file"
  kind = sniff_format(data[:16])
  formats = GRAPH_FORMATS if graph_only else GRAPH_FORMATS + ("tiff",)
  if kind not in formats:
    return f"not a {'/'.join(f.upper() for f in formats)} image"
  if kind == "jpeg" and _jpeg_truncated(data[-_TAIL_BYTES:]):
    return "truncated JPEG (no end-of-image marker)"
  return None


def file_problem(path: str, graph_only: bool = False) -> Optional[str]:
  """`bytes_problem` of a file, reading only its first and last bytes."""
  try:
    with open(path, "rb") as f:
      head = f.read(16)
      f.seek(0, os.SEEK_END)
      size = f.tell()
      f.seek(max(16, size - _TAIL_BYTES))
      tail = f.read()
  except OSError as err:
    return f"cannot read ({err.strerror})"
  return bytes_problem(head + tail, graph_only)


def list_images(paths: Sequence[str]) -> list[str]:
  """Expands files and folders (non-recursive, sorted) into image file paths."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      for name in sorted(os.listdir(path)):
        if name.lower().endswith(IMAGE_EXTENSIONS):
          found.append(os.path.join(path, name))
    else:
      found.append(path)
  return found


# ---------------------------------------------------------------------------
# numpy / file side


def decode_image_bytes(data: bytes, source: str = "<bytes>") -> np.ndarray:
  """Decodes JPEG/PNG/GIF/BMP/TIFF bytes (8 or 16 bit) to float32 RGB in [0, 1].

  Args:
    data: encoded image.
    source: name used in error messages (usually the file path).

  Returns:
    float32 array of shape [height, width, 3].

  Raises:
    ImageReadError: if the bytes are not a complete, decodable image.
  """
  kind = sniff_format(data)
  if kind is None:
    raise ImageReadError(f"{source}: not a JPEG/PNG/GIF/BMP/TIFF image")
  try:
    if kind == "tiff":
      import tifffile  # pylint: disable=g-import-not-at-top
      import io
      array = tifffile.imread(io.BytesIO(data))
    elif kind == "png":
      array = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    elif kind == "jpeg":
      if _jpeg_truncated(data[-_TAIL_BYTES:]):
        raise ImageReadError(f"{source}: truncated JPEG (no end-of-image marker)")
      array = tf.io.decode_jpeg(data, channels=3).numpy()
    else:
      array = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
  except ImageReadError:
    raise
  except Exception as err:  # pylint: disable=broad-except
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    raise ImageReadError(f"{source}: cannot decode {kind} image ({message})") from None
  return to_float_rgb(array, source)


def to_float_rgb(array: np.ndarray, source: str = "<array>") -> np.ndarray:
  """Converts uint8/uint16/float arrays (gray, RGB, RGBA) to float32 RGB [0, 1]."""
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3:
    raise ImageReadError(f"{source}: expected an image, got shape {array.shape}")
  if array.dtype == np.uint8:
    image = array.astype(np.float32) / 255.0
  elif array.dtype == np.uint16:
    image = array.astype(np.float32) / 65535.0
  elif np.issubdtype(array.dtype, np.floating):
    image = np.clip(array.astype(np.float32), 0.0, 1.0)
  else:
    raise ImageReadError(f"{source}: unsupported pixel type {array.dtype}")
  channels = image.shape[-1]
  if channels == 1:
    image = np.repeat(image, 3, axis=-1)
  elif channels == 2:  # gray + alpha
    image = np.repeat(image[..., :1], 3, axis=-1)
  elif channels >= 4:
    image = image[..., :3]
  return np.ascontiguousarray(image)


def read_image(path: str) -> np.ndarray:
  """Reads an image file to float32 RGB in [0, 1]; raises ImageReadError."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as err:
    raise ImageReadError(f"{path}: cannot read ({err.strerror})") from None
  if not data:
    raise ImageReadError(f"{path}: empty file")
  return decode_image_bytes(data, source=path)


def resize(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """Resizes a float image to (height, width) with antialiased bilinear filtering."""
  resized = tf.image.resize(image, size, method="bilinear", antialias=True)
  return np.clip(resized.numpy(), 0.0, 1.0).astype(np.float32)


def max_side_size(height: int, width: int, max_side: int) -> Tuple[int, int]:
  """(height, width) scaled so the largest side is `max_side`, aspect kept."""
  scale = max_side / float(max(height, width))
  return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize_max_side(image: np.ndarray, max_side: int,
                    upscale: bool = False) -> np.ndarray:
  """Resizes so the largest side is `max_side` (never upscales unless asked)."""
  height, width = image.shape[:2]
  if max(height, width) <= max_side and not upscale:
    return image
  return resize(image, max_side_size(height, width, max_side))


def quantize(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
  """Float [0, 1] -> uint8 or uint16 with rounding."""
  if bit_depth not in (8, 16):
    raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
  peak = 255.0 if bit_depth == 8 else 65535.0
  dtype = np.uint8 if bit_depth == 8 else np.uint16
  return np.round(np.clip(image, 0.0, 1.0) * peak).astype(dtype)


def encode_image(image: np.ndarray, fmt: str = "png", bit_depth: int = 8,
                 jpeg_quality: int = 95) -> bytes:
  """Encodes a float [0, 1] RGB image as PNG (8/16-bit) or JPEG (8-bit) bytes."""
  fmt = fmt.lower()
  if fmt in ("jpg", "jpeg"):
    if bit_depth != 8:
      raise ValueError("JPEG output is 8-bit only")
    return tf.io.encode_jpeg(quantize(image, 8), quality=jpeg_quality).numpy()
  if fmt == "png":
    return tf.io.encode_png(quantize(image, bit_depth)).numpy()
  raise ValueError(f"unsupported output format {fmt!r} (png or jpeg)")


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it into place.

  A killed process leaves either the old file or the complete new one, never a
  half-written file under the final name.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                                  suffix=os.path.splitext(path)[1])
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    # mkstemp creates 0600 files; give the usual umask-derived mode instead.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.unlink(tmp_path)
    raise


def write_image(path: str, image: np.ndarray, bit_depth: Optional[int] = None,
                jpeg_quality: int = 95) -> None:
  """Atomically writes a float [0, 1] RGB image; format from the extension.

  Args:
    path: destination, `.png`, `.jpg` or `.jpeg`.
    image: float array [height, width, 3].
    bit_depth: 8 or 16 for PNG (default 8); JPEG is always 8.
    jpeg_quality: JPEG quality.
  """
  ext = os.path.splitext(path)[1].lower().lstrip(".")
  if ext not in ("png", "jpg", "jpeg"):
    raise ValueError(f"{path}: output must be .png, .jpg or .jpeg")
  depth = bit_depth or 8
  data = encode_image(image, "png" if ext == "png" else "jpeg", depth,
                      jpeg_quality)
  atomic_write_bytes(path, data)


# ---------------------------------------------------------------------------
# TensorFlow graph side (tf.data, tf.function, SavedModel signatures)


def decode_image_tf(image_bytes: tf.Tensor) -> tf.Tensor:
  """Decodes JPEG/PNG/GIF/BMP bytes inside a graph to float32 RGB [0, 1].

  16-bit PNGs keep their precision. Raises InvalidArgumentError on bytes that are
  not an image, which a SavedModel returns for that request only.
  """
  is_png = tf.strings.substr(image_bytes, 0, 8) == b"\x89PNG\r\n\x1a\n"

  def _png():
    return tf.image.convert_image_dtype(
        tf.io.decode_png(image_bytes, channels=3, dtype=tf.uint16), tf.float32)

  def _other():
    return tf.image.convert_image_dtype(
        tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
        tf.float32)

  image = tf.cond(is_png, _png, _other)
  image.set_shape([None, None, 3])
  return image


def max_side_size_tf(height: tf.Tensor, width: tf.Tensor,
                     max_side: int) -> tf.Tensor:
  """Graph version of `max_side_size`: int32 [2] (height, width)."""
  height_f = tf.cast(height, tf.float32)
  width_f = tf.cast(width, tf.float32)
  scale = float(max_side) / tf.maximum(height_f, width_f)
  new_h = tf.maximum(1, tf.cast(tf.round(height_f * scale), tf.int32))
  new_w = tf.maximum(1, tf.cast(tf.round(width_f * scale), tf.int32))
  return tf.stack([new_h, new_w])


def resize_tf(image: tf.Tensor, size) -> tf.Tensor:
  """Graph version of `resize`: the same antialiased bilinear filter."""
  return tf.clip_by_value(
      tf.image.resize(image, size, method="bilinear", antialias=True), 0.0, 1.0)


def resize_max_side_tf(image: tf.Tensor, max_side: int) -> tf.Tensor:
  """Resizes (down or up) so the largest side is `max_side` (graph version)."""
  shape = tf.shape(image)
  return resize_tf(image, max_side_size_tf(shape[-3], shape[-2], max_side))
