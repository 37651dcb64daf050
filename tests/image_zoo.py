"""A zoo of real-world image files, built on the fly from a bundled photo.

Every case is a file plus what the reading contract says it reads as: the
upright RGB pixels (with a tolerance: exact for lossless formats, loose for
JPEG re-encodes) or a skip whose reason contains `reason`. Expected pixels
come from PIL and numpy, not from the code under test.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from typing import Dict, Optional

import numpy as np
from PIL import Image
from PIL import ImageOps

HEIGHT, WIDTH = 24, 36  # not square: a wrong rotation changes the shape


@dataclasses.dataclass
class Case:
  path: str
  expected: Optional[np.ndarray]  # float RGB [0, 1]; None: must be skipped
  atol: float = 1e-6  # max abs difference allowed (lossless)
  mean_tol: Optional[float] = None  # mean abs difference (lossy JPEG)
  reason: str = ""  # substring of the skip reason
  graph: bool = True  # the graph decoder reads this format
  graph_strict: bool = True  # the graph decoder also refuses it


def upright_photo() -> np.ndarray:
  """uint8 RGB [HEIGHT, WIDTH, 3] crop of skimage's astronaut."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  photo = skimage.data.astronaut()[::8, ::8][10:10 + HEIGHT, 14:14 + WIDTH]
  return np.ascontiguousarray(photo)


# The inverse of each EXIF orientation: the stored pixels of an upright photo.
_STORE = {1: lambda x: x, 2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1],
          4: lambda x: x[::-1], 5: lambda x: np.swapaxes(x, 0, 1),
          6: lambda x: np.swapaxes(x[:, ::-1], 0, 1),
          7: lambda x: np.swapaxes(x[::-1, ::-1], 0, 1),
          8: lambda x: np.swapaxes(x[::-1], 0, 1)}


def _encode(array, fmt, **kwargs) -> bytes:
  buffer = io.BytesIO()
  image = array if isinstance(array, Image.Image) else Image.fromarray(array)
  image.save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def _png16(array: np.ndarray) -> bytes:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.encode_png(array if array.ndim == 3 else array[..., None]
                         ).numpy()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
  """A tiny PNG whose header declares width x height grey pixels."""
  def chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload +
            struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
          chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def _composite(rgb_uint, alpha_uint, peak) -> np.ndarray:
  rgb = rgb_uint.astype(np.float64) / peak
  alpha = alpha_uint.astype(np.float64)[..., None] / peak
  return rgb * alpha + (1.0 - alpha)


def build_zoo(folder: str) -> Dict[str, Case]:
  """Writes the zoo into `folder` and returns name -> Case."""
  os.makedirs(folder, exist_ok=True)
  photo = upright_photo()
  f = photo.astype(np.float64) / 255.0
  rng = np.random.RandomState(0)
  cases: Dict[str, Case] = {}

  def add(name, data, expected=None, **kwargs):
    path = os.path.join(folder, name)
    with open(path, "wb") as out:
      out.write(data)
    cases[name] = Case(path, expected, **kwargs)

  clean_jpeg = _encode(photo, "JPEG", quality=95)
  for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    stored = np.ascontiguousarray(_STORE[o](photo))
    # PIL writes big-endian EXIF; odd orientations get a little-endian copy.
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    if o % 2 == 1:
      big = data
      data = data.replace(b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01"
                          b"\x01\x12\x00\x03\x00\x00\x00\x01\x00" + bytes([o]),
                          b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00"
                          b"\x12\x01\x03\x00\x01\x00\x00\x00" + bytes([o, 0]))
      assert data != big, "PIL's EXIF layout changed"
    add(f"orientation_{o}.jpg", data, f, atol=0.35, mean_tol=0.03)
  rgba_noise = np.dstack([rng.randint(0, 256, photo.shape, np.uint8),
                          np.zeros(photo.shape[:2], np.uint8)])
  alpha = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))
  rgba = np.dstack([photo, alpha])
  rgba[:, :4] = rgba_noise[:, :4]  # noise under fully transparent pixels
  add("rgba.png", _encode(rgba, "PNG"), _composite(rgba[..., :3],
                                                   rgba[..., 3], 255.0))
  grey = np.asarray(Image.fromarray(photo).convert("L"))
  add("grey_alpha.png", _encode(np.dstack([grey, alpha]), "PNG"),
      _composite(np.repeat(grey[..., None], 3, -1), alpha, 255.0))
  palette = Image.fromarray(photo).convert("P", palette=Image.ADAPTIVE)
  add("palette.png", _encode(palette, "PNG"),
      np.asarray(palette.convert("RGB"), np.float64) / 255.0)
  trns = np.asarray(palette.convert("RGBA"))
  index0 = np.asarray(palette) == 0
  trns_expected = trns[..., :3].astype(np.float64) / 255.0
  trns_expected[index0] = 1.0
  add("palette_trns.png", _encode(palette, "PNG", transparency=0),
      trns_expected)
  add("cmyk.jpg", _encode(Image.fromarray(photo).convert("CMYK"), "JPEG",
                          quality=95), f, atol=0.4, mean_tol=0.03)
  grey16 = (grey.astype(np.uint16) * 257 + rng.randint(0, 257, grey.shape)
            ).astype(np.uint16)
  rgb16 = (photo.astype(np.uint16) * 257 + rng.randint(0, 257, photo.shape)
           ).astype(np.uint16)
  add("grey16.png", _png16(grey16),
      np.repeat(grey16[..., None], 3, -1) / 65535.0)
  add("rgb16.png", _png16(rgb16), rgb16 / 65535.0)
  import tifffile  # pylint: disable=g-import-not-at-top
  for name, array in (("rgb16.tif", rgb16), ("grey16.tiff", grey16),
                      ("rgb8.tif", photo)):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    peak = 65535.0 if array.dtype == np.uint16 else 255.0
    expected = array / peak
    if expected.ndim == 2:
      expected = np.repeat(expected[..., None], 3, -1)
    add(name, buffer.getvalue(), expected, graph=False)
  add("lossless.webp", _encode(photo, "WEBP", lossless=True), f)
  add("alpha.webp", _encode(rgba, "WEBP", lossless=True, exact=True),
      _composite(rgba[..., :3], rgba[..., 3], 255.0))
  frames = [Image.fromarray(photo).convert("P", palette=Image.ADAPTIVE),
            Image.fromarray(255 - photo).convert("P", palette=Image.ADAPTIVE)]
  gif = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
  add("animated.gif", gif, np.asarray(frames[0].convert("RGB")) / 255.0)
  add("photo.bmp", _encode(photo, "BMP"), f)
  add("clean.jpg", clean_jpeg, _decoded_jpeg(clean_jpeg), atol=0.1,
      mean_tol=0.015)
  add("trailer.jpg", clean_jpeg + b"motion-photo-video" * 50,
      _decoded_jpeg(clean_jpeg), atol=0.1, mean_tol=0.015)
  scan = clean_jpeg.index(b"\xff\xda")
  middle = scan + (len(clean_jpeg) - scan) // 2
  add("damaged_middle.jpg", clean_jpeg[:middle] + clean_jpeg[-2:],
      reason="corrupt JPEG data", graph_strict=False)
  add("truncated.jpg", clean_jpeg[:middle], reason="cannot decode JPEG")
  add("empty.jpg", b"", reason="empty file")
  add("text.jpg", b"<html>not a photo</html>\n", reason="not an image")
  png = _encode(photo, "PNG")
  add("png_named.jpg", png, f)
  add("phöto über 1.png", png, f)
  add("bomb.png", png_bomb(), reason="above the limit")
  add("animated.webp", _encode(Image.fromarray(photo), "WEBP", lossless=True,
                               save_all=True,
                               append_images=[Image.fromarray(255 - photo)]),
      reason="animated WebP")
  os.makedirs(os.path.join(folder, "x.jpg"), exist_ok=True)
  return cases


def _decoded_jpeg(data: bytes) -> np.ndarray:
  """PIL's decode of a JPEG (an independent decoder, float RGB)."""
  return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) / 255.0


def pil_upright(path: str) -> np.ndarray:
  """PIL's exif_transpose of a JPEG: the independent orientation reference."""
  with Image.open(path) as image:
    return np.asarray(ImageOps.exif_transpose(image).convert("RGB")) / 255.0

