"""Writing images: quantization, PNG/JPEG encoding, atomic file writes.

The one write path of the project: every output image (enhance, enhance-eval,
prep-targets' 16-bit PNG targets, the demo) and every small state file
(manifests, operative_config.gin, reports) is written through here, to a
temporary name beside the destination and renamed, so a killed process never
leaves a half-written file under the final name.

Images are float32 RGB in [0, 1] (docs/architecture.md, Conventions), or uint8
already quantized. It is apart from `data/images.py` (reading: the decode and
resize path) because writing needs none of the reading contract, and it
imports no other module of the project.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf


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
