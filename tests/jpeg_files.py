"""JPEG bytes of a photo at a given size and EXIF orientation (tests)."""

import io

from PIL import Image


def jpeg_bytes(photo_uint8, height, width, orientation=None, quality=95):
  """`photo_uint8` resized (bicubic) to height x width, as JPEG bytes.

  `orientation` is written as the EXIF orientation tag (the stored pixels
  are the resized photo as is).
  """
  pil = Image.fromarray(photo_uint8).resize((width, height), Image.BICUBIC)
  buf = io.BytesIO()
  kwargs = {}
  if orientation:
    exif = Image.Exif()
    exif[0x0112] = orientation
    kwargs["exif"] = exif.tobytes()
  pil.save(buf, "JPEG", quality=quality, **kwargs)
  return buf.getvalue()
