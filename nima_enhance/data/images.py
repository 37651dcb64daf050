"""The one image decode / resize path of the project.

Every module that reads pixels goes through here, so that training,
evaluation, scoring, serving and data preparation see identical pixels.
Writing (quantization, PNG/JPEG encoding, atomic writes) is in
`data/image_write.py`.

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
# The graph resize rule (image_resize) and decode-to-size
# (image_sized_decode), read through here.
from nima_enhance.data.image_resize import max_side_size_tf  # pylint: disable=unused-import
from nima_enhance.data.image_resize import resize_max_side_tf  # pylint: disable=unused-import
from nima_enhance.data.image_resize import resize_tf
from nima_enhance.data.image_sized_decode import decode_max_side_tf  # pylint: disable=unused-import
from nima_enhance.data.image_sized_decode import decode_plan_tf  # pylint: disable=unused-import
from nima_enhance.data.image_sized_decode import decode_planned_tf  # pylint: disable=unused-import
from nima_enhance.data.image_sized_decode import decode_resized_tf  # pylint: disable=unused-import
from nima_enhance.data.image_sized_decode import PARSE_PLAN  # pylint: disable=unused-import
from nima_enhance.data.image_sized_decode import PNG_PLANS  # pylint: disable=unused-import

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


def decode_jpeg_with(data: bytes, reader, source: str = "<bytes>",
                     max_pixels: Optional[int] = None) -> Optional[np.ndarray]:
  """A JPEG through a traced graph reader, under the reading contract.

  For readers that decode and resize in one graph call (nima-score's: the
  training pipelines' planned decode, `ava_pipeline.load_pixels_tf`): the
  header is parsed and checked here with `decode_image_bytes`' messages and
  pixel limit, `reader(bytes, header)` runs while libjpeg's warnings are
  collected (a JPEG with corrupt data is refused, as `decode_image_bytes`
  refuses it), and its errors become ImageReadError. `header` is int64 [4]
  (format id, stored height and width, EXIF orientation), what
  `decode_plan_tf` takes.

  Returns:
    The reader's output as numpy, or None when `data` is not a JPEG (read
    it with `decode_image_bytes`).

  Raises:
    ImageReadError: "<source>: <reason>", as `decode_image_bytes`.
  """
  header = _header_or_error(data, source, max_pixels)
  if header.format != "jpeg":
    return None
  vector = tf.constant([image_headers.JPEG, header.height, header.width,
                        header.orientation], tf.int64)
  with _libjpeg_warnings(True) as warnings:
    try:
      pixels = reader(tf.constant(data), vector).numpy()
    except (tf.errors.OpError, ValueError) as err:
      raise ImageReadError(f"{source}: cannot decode JPEG "
                           f"({_tf_error_text(err)})") from None
  if warnings:
    raise ImageReadError(f"{source}: corrupt JPEG data ({warnings[0]})")
  return pixels


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
