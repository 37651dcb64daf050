"""The shared image decode / resize path (data/images.py)."""

import os

import numpy as np
import pytest

from nima_enhance.data import image_write
from nima_enhance.data import images


def test_tiff16(tmp_path, real_photo):
  import tifffile  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "x.tif")
  tifffile.imwrite(path, image_write.quantize(real_photo, 16))
  np.testing.assert_allclose(images.read_image(path), real_photo,
                             atol=1 / 65535)


def test_bad_files_raise_naming_the_file(tmp_path, real_photo):
  good = str(tmp_path / "good.jpg")
  image_write.write_image(good, real_photo)
  data = open(good, "rb").read()
  cases = {"truncated.jpg": data[:len(data) // 3], "text.jpg": b"hello",
           "empty.jpg": b""}
  for name, content in cases.items():
    path = str(tmp_path / name)
    with open(path, "wb") as f:
      f.write(content)
    with pytest.raises(images.ImageReadError, match=name):
      images.read_image(path)
  with pytest.raises(images.ImageReadError, match="missing.jpg"):
    images.read_image(str(tmp_path / "missing.jpg"))


def test_gray_and_rgba_become_rgb():
  gray = np.full((4, 5), 128, np.uint8)
  rgba = np.zeros((4, 5, 4), np.uint16)
  assert images.to_float_rgb(gray).shape == (4, 5, 3)
  assert images.to_float_rgb(rgba).shape == (4, 5, 3)


def test_list_images_expands_folders(tmp_path):
  for name in ("b.jpg", "a.PNG", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  found = images.list_images([str(tmp_path)])
  assert [os.path.basename(p) for p in found] == ["a.PNG", "b.jpg"]


def test_file_problem_checks_the_header_only(tmp_path, real_photo):
  good = str(tmp_path / "good.jpg")
  image_write.write_image(good, real_photo)
  data = open(good, "rb").read()
  tif = str(tmp_path / "x.tif")
  import tifffile  # pylint: disable=g-import-not-at-top
  tifffile.imwrite(tif, image_write.quantize(real_photo[:8, :8]))
  cases = {"truncated.jpg": data[:len(data) // 2], "text.jpg": b"<html>",
           "empty.png": b"", "padded.jpg": data + b"\x00" * 20,
           "header_only.jpg": data[:30]}
  for name, content in cases.items():
    (tmp_path / name).write_bytes(content)
  assert images.file_problem(good) is None
  assert images.file_problem(str(tmp_path / "padded.jpg")) is None
  # Cut after the frame header: the header is fine, the full decode is not.
  assert images.file_problem(str(tmp_path / "truncated.jpg")) is None
  assert "truncated JPEG" in images.file_problem(
      str(tmp_path / "header_only.jpg"))
  assert images.file_problem(str(tmp_path / "text.jpg")).startswith("not an")
  assert images.file_problem(str(tmp_path / "empty.png")) == "empty file"
  assert "cannot read" in images.file_problem(str(tmp_path / "missing.jpg"))
  # TIFF: fine for numpy-side readers, refused where graphs decode.
  assert images.file_problem(tif) is None
  assert "cannot be decoded in a TensorFlow graph" in images.file_problem(
      tif, graph_only=True)
  # The full decoder refuses every broken case.
  for name in ("truncated.jpg", "text.jpg", "empty.png", "header_only.jpg"):
    with pytest.raises(images.ImageReadError):
      images.read_image(str(tmp_path / name))
