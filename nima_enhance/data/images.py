"""The one image decode / resize / encode path of the project.

Every module that reads or writes pixels goes through here, so that training,
evaluation, scoring, serving and data preparation see identical pixels.

Conventions (docs/architecture.md): images are float32 RGB in [0, 1] unless a name
says otherwise (`*_uint8`, `*_bytes`). Functions whose name ends in `_tf` are
TensorFlow graph ops usable inside `tf.data` and `tf.function`; the others work
on numpy arrays and files.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image
import tensorflow as tf
import tifffile

from nima_enhance.data import image_graph
from nima_enhance.data import image_headers
from nima_enhance.data.image_graph import decode_image_tf  # pylint: disable=unused-import
from nima_enhance.data.image_graph import orient  # pylint: disable=unused-import
from nima_enhance.data.image_graph import orient_tf  # pylint: disable=unused-import
from nima_enhance.data.image_graph import upright_size_tf
from nima_enhance.data.image_headers import GRAPH_FORMATS  # pylint: disable=unused-import
from nima_enhance.data.image_headers import sniff_format  # pylint: disable=unused-import

# Folder-scan extensions and the pixel limit live in image_files (no
# TensorFlow import, so binaries check their arguments in a second).
from nima_enhance.data import image_files
from nima_enhance.data.image_files import DEFAULT_MAX_PIXELS  # pylint: disable=g-bad-import-order,unused-import
from nima_enhance.data.image_files import get_max_pixels
from nima_enhance.data.image_files import IMAGE_EXTENSIONS  # pylint: disable=unused-import
from nima_enhance.data.image_files import set_max_pixels


class ImageReadError(ValueError):
  """A file is missing, unsupported, too large, truncated or corrupt.

  The message is one line, "<file>: <reason>".
  """


@contextlib.contextmanager
def pixel_limit(max_pixels: Optional[int]):
  """Temporarily sets the process-wide pixel limit (None: unchanged).

  Graph functions read the limit when traced: nima-export traces its
  signatures inside this block to bake the export's limit into them.
  """
  previous = get_max_pixels()
  if max_pixels is not None:
    set_max_pixels(max_pixels)
  try:
    yield
  finally:
    set_max_pixels(previous)


def _header_or_error(data: bytes, source: str, max_pixels: Optional[int],
                     graph_only: bool = False) -> image_headers.Header:
  """Parses the header and applies the pixel limit (ImageReadError)."""
  try:
    header = image_headers.read_header(data)
  except image_headers.HeaderError as err:
    raise ImageReadError(f"{source}: {err}") from None
  limit = max_pixels or get_max_pixels()
  if header.animated:
    raise ImageReadError(f"{source}: animated WebP (not supported; save its "
                         "first frame as an image)")
  if header.height < 1 or header.width < 1:
    raise ImageReadError(f"{source}: damaged {header.format.upper()} header "
                         f"(size {header.width}x{header.height})")
  if header.height * header.width > limit:
    raise ImageReadError(
        f"{source}: {header.width}x{header.height} = "
        f"{header.height * header.width} pixels, above the limit of {limit} "
        "(--max_pixels)")
  if graph_only and header.format not in GRAPH_FORMATS:
    raise ImageReadError(f"{source}: {header.format.upper()} cannot be "
                         "decoded in a TensorFlow graph")
  return header


def bytes_problem(data: bytes, graph_only: bool = False,
                  max_pixels: Optional[int] = None) -> Optional[str]:
  """Why encoded bytes are not a usable image, from the header only, or None.

  Cheap: format, header and pixel limit, no decode (`decode_image_bytes`
  is the full, strict check). `graph_only` also refuses TIFF.
  """
  try:
    _header_or_error(data, "", max_pixels, graph_only)
  except ImageReadError as err:
    return str(err)[2:]
  return None


def file_problem(path: str, graph_only: bool = False,
                 max_pixels: Optional[int] = None) -> Optional[str]:
  """`bytes_problem` of a file (None when its header is fine)."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as err:
    return f"cannot read ({err.strerror})"
  return bytes_problem(data, graph_only, max_pixels)


def list_images(paths: Sequence[str]) -> list[str]:
  """Files as given, folders expanded (sorted) to their image files.

  See `image_files.scan_inputs` for the version that also reports what a
  folder scan left out.
  """
  return image_files.scan_inputs(paths).files


# ---------------------------------------------------------------------------
# numpy / file side

# libjpeg reports damaged entropy-coded data as warnings and fills the rest of
# the image with grey; these prefixes (printed on stderr by TF's decoder) make
# the numpy path refuse the file instead.
_LIBJPEG_CORRUPT = ("Corrupt JPEG data", "Premature end of JPEG",
                    "Invalid SOS parameters", "Inconsistent progression",
                    "Bogus", "Huffman")
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _libjpeg_warnings(enabled: bool):
  """Collects libjpeg's warnings written to fd 2 while the block runs.

  libjpeg has no other channel for them. fd 2 is process-wide, so decodes that
  capture are serialised; anything else written meanwhile is passed through.
  """
  found: list[str] = []
  if not enabled:
    yield found
    return
  with _STDERR_LOCK:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
      os.dup2(capture.fileno(), 2)
      try:
        yield found
      finally:
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        other = []
        for line in capture.read().decode("utf-8", "replace").splitlines():
          (found if line.startswith(_LIBJPEG_CORRUPT) else other).append(line)
        if other:
          os.write(2, ("\n".join(other) + "\n").encode("utf-8"))


def _tf_error_text(err: Exception) -> str:
  """The useful line of a TensorFlow op error (no node names or traces)."""
  text = getattr(err, "message", None) or str(err)
  text = re.sub(r"\{\{[^}]*\}\}", "", text)
  text = re.sub(r"\s*\[\[.*?\]\]|\s*\[Op:[^\]]*\]", "", text, flags=re.S)
  lines = [l.strip() for l in text.splitlines()
           if l.strip() and not l.startswith((" ", "\t"))
           and not l.startswith(("Graph execution error", "Detected at node"))]
  return lines[-1] if lines else type(err).__name__


def decode_image_bytes(data: bytes, source: str = "<bytes>",
                       max_pixels: Optional[int] = None,
                       target_size: Optional[Tuple[int, int]] = None
                      ) -> np.ndarray:
  """The reading contract: encoded bytes -> float32 RGB [h, w, 3] in [0, 1].

  JPEG (EXIF orientation applied), PNG (8/16-bit, palette, grey, alpha), GIF
  (first frame), BMP, WebP (still) and TIFF (8/16-bit). Alpha is composited
  over white. JPEG/PNG/GIF/BMP/WebP go through the graph decoder
  (`decode_image_tf`), so this returns the pixels every tf.data pipeline and
  SavedModel computes; TIFF is decoded here only. Unlike the graph, this
  path is strict: a JPEG whose data libjpeg reports as corrupt is refused.

  Args:
    data: encoded image.
    source: name used in error messages (usually the file path).
    max_pixels: pixel limit (default: `get_max_pixels()`).
    target_size: (height, width) the image will be resized to: JPEGs at
      least twice as large are decoded at 1/2, 1/4 or 1/8 scale
      (`image_graph.jpeg_ratio_tf`); None decodes in full.

  Raises:
    ImageReadError: "<source>: <reason>" for anything but a complete image.
  """
  header = _header_or_error(data, source, max_pixels)
  limit = max_pixels or get_max_pixels()
  if header.format == "tiff":
    return _decode_tiff(data, source)
  with _libjpeg_warnings(header.format == "jpeg") as warnings:
    try:
      pixels = _decode_pixels_eager(
          tf.constant(data), tf.constant(limit, tf.int64),
          tf.constant(target_size or (0, 0), tf.int32), header.format)
      pixels = pixels.numpy()
    except (tf.errors.OpError, ValueError) as err:
      raise ImageReadError(f"{source}: cannot decode {header.format.upper()} "
                           f"({_tf_error_text(err)})") from None
  if warnings:
    raise ImageReadError(f"{source}: corrupt JPEG data ({warnings[0]})")
  # The float conversion runs in numpy, the same formula as the graph's.
  return to_float_rgb(pixels, source)


def _decode_tiff(data: bytes, source: str) -> np.ndarray:
  """8/16-bit grey/RGB(A) TIFF at its precision; other kinds through PIL."""
  try:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
      page = tif.pages.first
      direct = (page.photometric in (tifffile.PHOTOMETRIC.MINISBLACK,
                                     tifffile.PHOTOMETRIC.RGB)
                and page.dtype in (np.uint8, np.uint16))
      if direct:
        array = page.asarray()
        if array.ndim == 3 and page.planarconfig == 2 and page.samplesperpixel > 1:
          array = np.moveaxis(array, 0, -1)  # planar -> interleaved
    if not direct:
      with Image.open(io.BytesIO(data)) as pil:
        array = np.asarray(pil.convert("RGBA"))
  except Exception as err:  # pylint: disable=broad-except
    message = str(err).strip().splitlines()[0] if str(err).strip() else (
        type(err).__name__)
    raise ImageReadError(f"{source}: cannot decode TIFF ({message})") from None
  return to_float_rgb(array, source)


def to_float_rgb(array: np.ndarray, source: str = "<array>") -> np.ndarray:
  """uint8/uint16/float arrays (grey, grey+alpha, RGB, RGBA) -> float32 RGB.

  Alpha is composited over white (`rgb * a + (1 - a)`), as in the graph.
  """
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
    raise ImageReadError(f"{source}: expected an image, got shape {array.shape}")
  # In place: one float copy of a large photo, not two.
  if array.dtype == np.uint8:
    image = array.astype(np.float32)
    image /= np.float32(255.0)
  elif array.dtype == np.uint16:
    image = array.astype(np.float32)
    image /= np.float32(65535.0)
  elif np.issubdtype(array.dtype, np.floating):
    image = np.clip(array.astype(np.float32), 0.0, 1.0)
  else:
    raise ImageReadError(f"{source}: unsupported pixel type {array.dtype}")
  channels = image.shape[-1]
  rgb = image[..., :3] if channels >= 3 else np.repeat(image[..., :1], 3, -1)
  if channels in (2, 4):
    alpha = image[..., -1:]
    rgb = rgb * alpha + (np.float32(1.0) - alpha)
  return np.ascontiguousarray(rgb, dtype=np.float32)


def decode_max_side(data: bytes, max_side: Optional[int],
                    source: str = "<bytes>",
                    max_pixels: Optional[int] = None) -> np.ndarray:
  """`resize_max_side(decode_image_bytes(data), max_side)`, reduced decode.

  The output size is `max_side_size` of the header's upright size (never
  enlarged); a JPEG at least twice that size in both directions is decoded
  at 1/2, 1/4 or 1/8 first, as `decode_max_side_tf` does in graphs.
  None or 0: the full decode.
  """
  target = None
  if max_side:
    try:
      header = image_headers.read_header(data)
    except image_headers.HeaderError:
      header = None  # decode_image_bytes names the problem
    if header is not None and header.height > 0 and header.width > 0:
      h, w = header.height, header.width
      if header.orientation >= 5:
        h, w = w, h
      if max(h, w) > max_side:
        target = max_side_size(h, w, max_side)
  image = decode_image_bytes(data, source=source, max_pixels=max_pixels,
                             target_size=target)
  return resize(image, target) if target else image


def read_image(path: str, max_pixels: Optional[int] = None,
               target_size: Optional[Tuple[int, int]] = None,
               max_side: Optional[int] = None) -> np.ndarray:
  """Reads an image file through the contract (`decode_image_bytes`).

  `target_size`: the size the caller resizes to (reduced JPEG decode).
  `max_side`: shrink so the largest side is at most this (`decode_max_side`:
  a reduced JPEG decode where the output is at least 2x smaller).

  Raises:
    ImageReadError: "<path>: <reason>" (missing, folder, empty, unsupported,
      above the pixel limit, truncated, corrupt).
  """
  if os.path.isdir(path):
    raise ImageReadError(f"{path}: is a folder")
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as err:
    raise ImageReadError(f"{path}: cannot read ({err.strerror})") from None
  if max_side:
    return decode_max_side(data, max_side, source=path, max_pixels=max_pixels)
  return decode_image_bytes(data, source=path, max_pixels=max_pixels,
                            target_size=target_size)


def resize(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """Resizes a float image to (height, width) by the project's rule (`resize_tf`)."""
  return resize_tf(tf.convert_to_tensor(image), size).numpy()


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
  image = np.asarray(image)
  if image.ndim == 0:
    return np.round(np.clip(image, 0.0, 1.0) * peak).astype(dtype)
  # A block of rows at a time: the float temporaries stay ~1M values rather
  # than two full-size float copies (1.2 GB at 48 MP); same values.
  out = np.empty(image.shape, dtype)
  rows = max(1, (1 << 20) // max(1, image[:1].size))
  for r0 in range(0, image.shape[0], rows):
    block = np.clip(image[r0:r0 + rows], 0.0, 1.0,
                    dtype=np.result_type(image.dtype, np.float32))
    block *= peak
    out[r0:r0 + rows] = np.round(block, out=block)
  return out


def encode_image(image: np.ndarray, fmt: str = "png", bit_depth: int = 8,
                 jpeg_quality: int = 95) -> bytes:
  """Encodes a float [0, 1] RGB image as PNG (8/16-bit) or JPEG (8-bit) bytes.

  A uint8 image (numpy array or tf.Tensor, e.g. the enhancer's 8-bit output
  made band by band) is taken as already quantized and encoded as it is: no
  float or second uint8 copy of a large photo (bit_depth must be 8).
  """
  fmt = fmt.lower()
  dtype = getattr(image, "dtype", None)
  dtype = getattr(dtype, "as_numpy_dtype", dtype)  # a tf.DType's numpy type
  if dtype is not None and np.dtype(dtype) == np.uint8:
    if bit_depth != 8:
      raise ValueError("a uint8 image is encoded at bit_depth 8 only")
    pixels = image
  else:
    pixels = None
  if fmt in ("jpg", "jpeg"):
    if bit_depth != 8:
      raise ValueError("JPEG output is 8-bit only")
    if pixels is None:
      pixels = quantize(image, 8)
    return tf.io.encode_jpeg(pixels, quality=jpeg_quality).numpy()
  if fmt == "png":
    if pixels is None:
      pixels = quantize(image, bit_depth)
    return tf.io.encode_png(pixels).numpy()
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
    image: float array [height, width, 3], or uint8 (array or tensor,
      written as it is; `encode_image`).
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


def _decode_pixels(image_bytes: tf.Tensor, max_pixels: tf.Tensor,
                   target_size: tf.Tensor, fmt_name: str) -> tf.Tensor:
  """The graph's checks and decoder of one format, to integer pixels."""
  data, _, height, width, orientation = image_graph.checked_header_tf(
      image_bytes, max_pixels)
  return image_graph.decode_pixels_checked_tf(fmt_name, data, height, width,
                                              orientation, target_size)


# The numpy path runs the graph decoders traced (eager while_loops are slow),
# once per format.
_decode_pixels_eager = tf.function(_decode_pixels, reduce_retracing=True)


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
    return decode_image_tf(image_bytes)
  def size_of(upright):
    return (max_side_size_tf(upright[0], upright[1], max_side),
            tf.reduce_max(upright) > max_side)
  return _decode_resized_tf(image_bytes, size_of, None, 1.0)


def resize_max_side_tf(image: tf.Tensor, max_side: int) -> tf.Tensor:
  """Resizes (down or up) so the largest side is `max_side` (graph version)."""
  shape = tf.shape(image)
  return resize_tf(image, max_side_size_tf(shape[-3], shape[-2], max_side))
