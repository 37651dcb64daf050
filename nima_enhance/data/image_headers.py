"""Image file headers: format, pixel size and EXIF orientation, before decoding.

The reading contract (README "Input images") checks the pixel count of a file
from its header before any decoder allocates memory, and applies the EXIF
Orientation of JPEGs. Both have to give the same answer on the numpy side
(`read_header`) and inside a TensorFlow graph (`header_tf`, used by tf.data and
the SavedModel signatures, built from stock string ops only), so the two parsers
follow the same rules and tests compare them on the same files:

- JPEG: markers are walked from SOI to the first frame header (SOF0..SOF15 but
  DHT/JPG/DAC); the first APP1 "Exif" segment before it gives the Orientation:
  TIFF byte order ("II"/"MM"), IFD0 offset, the first IFD0 entry with tag
  0x0112 among its first 64 entries. A missing, damaged or out-of-range
  Orientation counts as 1 (upright), never as an error.
- PNG: IHDR; GIF: the logical screen; BMP: the DIB header (top-down BMPs have
  a negative height); WebP: the VP8, VP8L or VP8X chunk; TIFF (numpy only):
  the first page, through tifffile.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from typing import List, Optional

import tensorflow as tf
import tifffile

# Format ids (index into FORMATS, 0 = unknown) shared by both parsers.
FORMATS = ("unknown", "jpeg", "png", "gif", "bmp", "webp", "tiff")
JPEG, PNG, GIF, BMP, WEBP, TIFF = range(1, 7)
# Formats decoded inside a graph (TF's own decoders); TIFF is numpy-only.
GRAPH_FORMATS = ("jpeg", "png", "gif", "bmp", "webp")
ORIENTATION_TAG = 0x0112
MAX_IFD_ENTRIES = 64
# JPEG SOFn markers (C4 = DHT, C8 = JPG extension, CC = DAC are not frames).
_SOF_MARKERS = tuple(m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC))
_MAX_SEGMENTS = 4096  # bounds the graph's marker walk on hostile input


class HeaderError(ValueError):
  """The bytes are not a supported image, or its header is damaged."""


@dataclasses.dataclass
class Header:
  format: str
  height: int
  width: int
  orientation: int = 1  # EXIF Orientation 1..8 (JPEG only)
  animated: bool = False  # animated WebP (refused: TF's decoder cannot)


def sniff_format(data: bytes) -> Optional[str]:
  """"jpeg", "png", "gif", "bmp", "webp" or "tiff" from magic bytes, or None."""
  if data[:3] == b"\xff\xd8\xff":
    return "jpeg"
  if data[:8] == b"\x89PNG\r\n\x1a\n":
    return "png"
  if data[:6] in (b"GIF87a", b"GIF89a"):
    return "gif"
  if data[:2] == b"BM":
    return "bmp"
  if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    return "webp"
  if data[:4] in (b"II*\x00", b"MM\x00*"):
    return "tiff"
  return None


# ---------------------------------------------------------------------------
# numpy side


def exif_orientation(segment: bytes) -> int:
  """Orientation (1..8) from an APP1 payload ("Exif\\0\\0" + TIFF), else 1."""
  if segment[:6] != b"Exif\x00\x00" or len(segment) < 14:
    return 1
  tiff = segment[6:]
  order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
  if order is None:
    return 1
  ifd = struct.unpack(order + "I", tiff[4:8])[0]
  if ifd + 2 > len(tiff):
    return 1
  count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
  for i in range(min(count, MAX_IFD_ENTRIES)):
    entry = ifd + 2 + 12 * i
    if entry + 12 > len(tiff):
      break
    if struct.unpack(order + "H", tiff[entry:entry + 2])[0] == ORIENTATION_TAG:
      value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
      return value if 1 <= value <= 8 else 1
  return 1


def _jpeg_header(data: bytes) -> Header:
  pos, orientation, seen_exif = 2, 1, False
  for _ in range(_MAX_SEGMENTS):
    if pos + 4 > len(data):
      break
    if data[pos] != 0xFF:
      raise HeaderError("damaged JPEG header (no marker where one belongs)")
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
      pos += 2
      continue
    length = (data[pos + 2] << 8) | data[pos + 3]
    if marker in _SOF_MARKERS:
      if pos + 9 > len(data):
        break
      return Header("jpeg", (data[pos + 5] << 8) | data[pos + 6],
                    (data[pos + 7] << 8) | data[pos + 8], orientation)
    if marker in (0xDA, 0xD9):
      raise HeaderError("damaged JPEG header (no frame header before the scan)")
    if marker == 0xE1 and not seen_exif:
      segment = data[pos + 4:pos + 2 + length]
      if segment[:6] == b"Exif\x00\x00":
        seen_exif = True
        orientation = exif_orientation(segment)
    pos += 2 + length
  raise HeaderError("truncated JPEG (ends inside its header)")


def _webp_header(data: bytes) -> Header:
  chunk = data[12:16]
  if chunk == b"VP8 " and len(data) >= 30:
    width, height = struct.unpack("<HH", data[26:30])
    return Header("webp", height & 0x3FFF, width & 0x3FFF)
  if chunk == b"VP8L" and len(data) >= 25:
    b = data[21:25]
    width = 1 + (b[0] | ((b[1] & 0x3F) << 8))
    height = 1 + ((b[1] >> 6) | (b[2] << 2) | ((b[3] & 0x0F) << 10))
    return Header("webp", height, width)
  if chunk == b"VP8X" and len(data) >= 30:
    width = 1 + int.from_bytes(data[24:27], "little")
    height = 1 + int.from_bytes(data[27:30], "little")
    return Header("webp", height, width, animated=bool(data[20] & 0x02))
  raise HeaderError("damaged WebP header")


def read_header(data: bytes) -> Header:
  """Format, size and orientation of encoded image bytes (header only).

  Raises:
    HeaderError: empty, unknown format, or a header too short or damaged.
  """
  if not data:
    raise HeaderError("empty file")
  kind = sniff_format(data[:16])
  if kind is None:
    raise HeaderError("not an image (JPEG, PNG, GIF, BMP, WebP or TIFF)")
  if kind == "jpeg":
    return _jpeg_header(data)
  if kind == "png":
    if len(data) < 24 or data[12:16] != b"IHDR":
      raise HeaderError("damaged PNG header")
    width, height = struct.unpack(">II", data[16:24])
    return Header("png", height, width)
  if kind == "gif":
    if len(data) < 10:
      raise HeaderError("damaged GIF header")
    width, height = struct.unpack("<HH", data[6:10])
    return Header("gif", height, width)
  if kind == "bmp":
    if len(data) < 26:
      raise HeaderError("damaged BMP header")
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
      width, height = struct.unpack("<HH", data[18:22])
    else:
      width, height = struct.unpack("<ii", data[18:26])
    return Header("bmp", abs(height), abs(width))
  if kind == "webp":
    return _webp_header(data)
  try:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
      page = tif.pages.first
      height, width = int(page.imagelength), int(page.imagewidth)
  except Exception as err:  # pylint: disable=broad-except
    raise HeaderError(f"damaged TIFF header ({err})") from None
  return Header("tiff", height, width)


# Bytes read for a file's header: past a JPEG's EXIF segment (at most 64 KiB)
# in most photos; a header beyond them is read from the whole file.
_HEADER_PREFIX = 1 << 16


def header_fields(data: bytes) -> List[int]:
  """[format id (index in FORMATS), stored height, width, EXIF orientation].

  The int64 row a decode plan (`images.decode_plan_tf`) is made from.

  Raises:
    HeaderError: as `read_header`.
  """
  header = read_header(data)
  return [FORMATS.index(header.format), header.height, header.width,
          header.orientation]


def read_header_fields(path: str) -> Optional[List[int]]:
  """`header_fields` of a file; None if it cannot be read or is damaged.

  Reads the first 64 KiB, and the rest only when the header lies beyond.
  """
  try:
    with open(path, "rb") as f:
      data = f.read(_HEADER_PREFIX)
      try:
        return header_fields(data)
      except HeaderError:
        return header_fields(data + f.read())
  except (OSError, HeaderError):
    return None


# ---------------------------------------------------------------------------
# graph side: the same rules with string ops (int64 arithmetic throughout)

_PAD = 64


def _bytes_tf(padded, length, pos, n):
  """n bytes at pos as int64 [n] (zeros past the end, never an error)."""
  pos = tf.clip_by_value(pos, 0, length)
  raw = tf.io.decode_raw(tf.strings.substr(padded, pos, n), tf.uint8)
  raw = tf.reshape(tf.pad(raw, [[0, n - tf.shape(raw)[0]]]), [n])
  return tf.cast(raw, tf.int64)


def _exif_orientation_tf(padded, length, start, end):
  """Graph `exif_orientation` of the APP1 payload data[start:end]."""
  tiff = start + 6
  order = tf.strings.substr(padded, tf.clip_by_value(tiff, 0, length), 2)
  little = tf.equal(order, b"II")

  def num(pos, n):
    b = _bytes_tf(padded, length, pos, n)
    weights = tf.constant([256 ** i for i in range(n)], tf.int64)
    return tf.where(little, tf.reduce_sum(b * weights),
                    tf.reduce_sum(b * tf.reverse(weights, [0])))

  ifd = tiff + num(tiff + 4, 4)
  count = tf.minimum(num(ifd, 2), MAX_IFD_ENTRIES)
  entries = _bytes_tf(padded, length, ifd + 2, 12 * MAX_IFD_ENTRIES)
  entries = tf.reshape(entries, [MAX_IFD_ENTRIES, 12])
  index = tf.range(MAX_IFD_ENTRIES, dtype=tf.int64)
  tags = tf.where(little, entries[:, 0] + 256 * entries[:, 1],
                  256 * entries[:, 0] + entries[:, 1])
  values = tf.where(little, entries[:, 8] + 256 * entries[:, 9],
                    256 * entries[:, 8] + entries[:, 9])
  # Entries past the count or the segment end do not exist; entries are read
  # only up to the first one that does not fit (as the numpy loop breaks).
  fits = ifd + 2 + 12 * (index + 1) <= end
  fits = tf.cast(tf.math.cumprod(tf.cast(fits, tf.int64)), tf.bool)
  valid = (index < count) & fits & tf.equal(tags, ORIENTATION_TAG)
  value = tf.cond(tf.reduce_any(valid),
                  lambda: tf.gather(values, tf.argmax(tf.cast(valid, tf.int64))),
                  lambda: tf.constant(1, tf.int64))
  ok = ((tf.strings.substr(padded, tf.clip_by_value(start, 0, length), 6)
         == b"Exif\x00\x00") & (end - start >= 14)
        & (little | tf.equal(order, b"MM")) & (ifd + 2 <= end))
  return tf.where(ok & (value >= 1) & (value <= 8), value,
                  tf.constant(1, tf.int64))


def _jpeg_header_tf(padded, length):
  """(height, width, orientation, status): status 0 ok, 1 damaged, 2 cut."""
  def cond(i, pos, h, w, orient, seen, status):
    del pos, h, w, orient, seen
    return (status < 0) & (i < _MAX_SEGMENTS)

  def body(i, pos, h, w, orient, seen, status):
    b = _bytes_tf(padded, length, pos, 10)
    marker = b[1]
    seglen = 256 * b[2] + b[3]
    standalone = ((marker == 0x01) | (marker == 0xD8) |
                  ((marker >= 0xD0) & (marker <= 0xD7)))
    is_sof = tf.reduce_any(tf.equal(marker, tf.constant(_SOF_MARKERS,
                                                         tf.int64)))
    is_exif = ((marker == 0xE1) & ~seen &
               tf.equal(tf.strings.substr(padded, tf.clip_by_value(
                   pos + 4, 0, length), 6), b"Exif\x00\x00"))
    new_orient = tf.cond(
        is_exif & (pos + 4 <= length),
        lambda: _exif_orientation_tf(padded, length, pos + 4, tf.minimum(
            pos + 2 + seglen, length)),
        lambda: orient)
    new_status = tf.case([
        (pos + 4 > length, lambda: tf.constant(2, tf.int64)),
        (b[0] != 0xFF, lambda: tf.constant(1, tf.int64)),
        (is_sof & (pos + 9 > length), lambda: tf.constant(2, tf.int64)),
        (is_sof, lambda: tf.constant(0, tf.int64)),
        ((marker == 0xDA) | (marker == 0xD9), lambda: tf.constant(1, tf.int64)),
    ], default=lambda: tf.constant(-1, tf.int64))
    step = tf.where(marker == 0xFF, tf.constant(1, tf.int64),
                    tf.where(standalone, tf.constant(2, tf.int64), 2 + seglen))
    return (i + 1, pos + step, 256 * b[5] + b[6], 256 * b[7] + b[8],
            new_orient, seen | is_exif, new_status)

  zero = tf.constant(0, tf.int64)
  _, _, h, w, orient, _, status = tf.while_loop(
      cond, body, [tf.constant(0), tf.constant(2, tf.int64), zero, zero,
                   tf.constant(1, tf.int64), tf.constant(False),
                   tf.constant(-1, tf.int64)])
  status = tf.where(status < 0, tf.constant(2, tf.int64), status)
  return h, w, orient, status


def header_tf(image_bytes: tf.Tensor):
  """Graph `read_header` of a scalar string.

  Returns:
    int64 scalars (format id, height, width, orientation, status): format id
    indexes FORMATS (0 unknown); status 0 ok, 1 damaged header, 2 header cut
    short, 3 animated WebP.
  """
  length = tf.cast(tf.strings.length(image_bytes), tf.int64)
  padded = tf.strings.join([image_bytes, "\x00" * _PAD])
  head = _bytes_tf(padded, length, tf.constant(0, tf.int64), 30)
  first4 = tf.strings.substr(padded, 0, 4)
  fmt = tf.case([
      (tf.reduce_all(tf.equal(head[:3], [0xFF, 0xD8, 0xFF])),
       lambda: tf.constant(JPEG, tf.int64)),
      (tf.equal(tf.strings.substr(padded, 0, 8), b"\x89PNG\r\n\x1a\n"),
       lambda: tf.constant(PNG, tf.int64)),
      (tf.equal(tf.strings.substr(padded, 0, 6), b"GIF87a") |
       tf.equal(tf.strings.substr(padded, 0, 6), b"GIF89a"),
       lambda: tf.constant(GIF, tf.int64)),
      (tf.equal(tf.strings.substr(padded, 0, 2), b"BM"),
       lambda: tf.constant(BMP, tf.int64)),
      (tf.equal(first4, b"RIFF") &
       tf.equal(tf.strings.substr(padded, 8, 4), b"WEBP"),
       lambda: tf.constant(WEBP, tf.int64)),
      (tf.equal(first4, b"II*\x00") | tf.equal(first4, b"MM\x00*"),
       lambda: tf.constant(TIFF, tf.int64)),
  ], default=lambda: tf.constant(0, tf.int64))

  def le(b):
    return tf.reduce_sum(b * tf.constant([256 ** i for i in range(
        b.shape[0])], tf.int64))

  def be(b):
    return le(tf.reverse(b, [0]))

  one, zero = tf.constant(1, tf.int64), tf.constant(0, tf.int64)

  def png():
    ok = tf.equal(tf.strings.substr(padded, 12, 4), b"IHDR") & (length >= 24)
    return be(head[20:24]), be(head[16:20]), one, tf.where(ok, zero, 2)

  def gif():
    return le(head[8:10]), le(head[6:8]), one, tf.where(length >= 10, zero, 2)

  def bmp():
    core = le(head[14:18]) == 12
    def signed(v):
      return tf.where(v >= 2 ** 31, v - 2 ** 32, v)
    h = tf.where(core, le(head[20:22]), tf.abs(signed(le(head[22:26]))))
    w = tf.where(core, le(head[18:20]), tf.abs(signed(le(head[18:22]))))
    return h, w, one, tf.where(length >= 26, zero, 2)

  def webp():
    chunk = tf.strings.substr(padded, 12, 4)
    vp8 = (le(head[28:30]) % 16384, le(head[26:28]) % 16384)
    vp8l = (1 + (head[22] // 64 + head[23] * 4 + (head[24] % 16) * 1024),
            1 + (head[21] + (head[22] % 64) * 256))
    vp8x = (1 + le(head[27:30]), 1 + le(head[24:27]))
    is_l, is_x = tf.equal(chunk, b"VP8L"), tf.equal(chunk, b"VP8X")
    h = tf.where(is_x, vp8x[0], tf.where(is_l, vp8l[0], vp8[0]))
    w = tf.where(is_x, vp8x[1], tf.where(is_l, vp8l[1], vp8[1]))
    known = is_x | is_l | tf.equal(chunk, b"VP8 ")
    need = tf.where(is_l, tf.constant(25, tf.int64), 30)
    status = tf.where(~known, tf.constant(1, tf.int64),
                      tf.where(length < need, tf.constant(2, tf.int64),
                               tf.where(is_x & (head[20] // 2 % 2 == 1),
                                        tf.constant(3, tf.int64), zero)))
    return h, w, one, status

  def none():
    return zero, zero, one, zero

  h, w, orient, status = tf.switch_case(
      tf.cast(fmt, tf.int32),
      [none, lambda: _jpeg_header_tf(padded, length), png, gif, bmp, webp,
       none])
  return fmt, h, w, orient, status
