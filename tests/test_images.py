"""The shared image decode / resize / encode path."""

import os

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import images


def test_png16_round_trip_keeps_precision(tmp_path, real_photo):
  path = str(tmp_path / "x.png")
  images.write_image(path, real_photo[:40, :50], bit_depth=16)
  back = images.read_image(path)
  np.testing.assert_allclose(back, real_photo[:40, :50], atol=1 / 65535)
  # The graph decoder gives the same 16-bit pixels.
  graph = images.decode_image_tf(tf.io.read_file(path)).numpy()
  np.testing.assert_allclose(graph, back, atol=1e-6)


def test_jpeg_and_png8(tmp_path, real_photo):
  for name, tol in (("x.jpg", 0.08), ("x.png", 0.5 / 255 + 1e-6)):
    path = str(tmp_path / name)
    images.write_image(path, real_photo, bit_depth=8)
    back = images.read_image(path)
    assert back.shape == real_photo.shape and back.dtype == np.float32
    assert np.abs(back - real_photo).mean() < tol


def test_tiff16(tmp_path, real_photo):
  import tifffile  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "x.tif")
  tifffile.imwrite(path, images.quantize(real_photo, 16))
  np.testing.assert_allclose(images.read_image(path), real_photo,
                             atol=1 / 65535)


def test_bad_files_raise_naming_the_file(tmp_path, real_photo):
  good = str(tmp_path / "good.jpg")
  images.write_image(good, real_photo)
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


def test_atomic_write_leaves_no_temporary_files(tmp_path):
  path = str(tmp_path / "out" / "a.bin")
  images.atomic_write_bytes(path, b"abc")
  images.atomic_write_bytes(path, b"defg")
  assert open(path, "rb").read() == b"defg"
  assert os.listdir(tmp_path / "out") == ["a.bin"]


def test_list_images_expands_folders(tmp_path):
  for name in ("b.jpg", "a.PNG", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  found = images.list_images([str(tmp_path)])
  assert [os.path.basename(p) for p in found] == ["a.PNG", "b.jpg"]


def test_atomic_write_uses_umask_mode(tmp_path):
  path = str(tmp_path / "m.bin")
  umask = os.umask(0o022)
  try:
    images.atomic_write_bytes(path, b"x")
  finally:
    os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o644


def test_file_problem_checks_the_header_only(tmp_path, real_photo):
  good = str(tmp_path / "good.jpg")
  images.write_image(good, real_photo)
  data = open(good, "rb").read()
  tif = str(tmp_path / "x.tif")
  import tifffile  # pylint: disable=g-import-not-at-top
  tifffile.imwrite(tif, images.quantize(real_photo[:8, :8]))
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
