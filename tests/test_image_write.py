"""The image write path (data/image_write.py): encoding and atomic writes.

Written images are read back through the reading contract (`images`).
"""

import os

import numpy as np
import tensorflow as tf

from nima_enhance.data import image_write
from nima_enhance.data import images


def test_png16_round_trip_keeps_precision(tmp_path, real_photo):
  path = str(tmp_path / "x.png")
  image_write.write_image(path, real_photo[:40, :50], bit_depth=16)
  back = images.read_image(path)
  np.testing.assert_allclose(back, real_photo[:40, :50], atol=1 / 65535)
  # The graph decoder gives the same 16-bit pixels.
  graph = images.decode_image_tf(tf.io.read_file(path)).numpy()
  np.testing.assert_allclose(graph, back, atol=1e-6)


def test_jpeg_and_png8(tmp_path, real_photo):
  for name, tol in (("x.jpg", 0.08), ("x.png", 0.5 / 255 + 1e-6)):
    path = str(tmp_path / name)
    image_write.write_image(path, real_photo, bit_depth=8)
    back = images.read_image(path)
    assert back.shape == real_photo.shape and back.dtype == np.float32
    assert np.abs(back - real_photo).mean() < tol


def test_atomic_write_leaves_no_temporary_files(tmp_path):
  path = str(tmp_path / "out" / "a.bin")
  image_write.atomic_write_bytes(path, b"abc")
  image_write.atomic_write_bytes(path, b"defg")
  assert open(path, "rb").read() == b"defg"
  assert os.listdir(tmp_path / "out") == ["a.bin"]


def test_atomic_write_uses_umask_mode(tmp_path):
  path = str(tmp_path / "m.bin")
  umask = os.umask(0o022)
  try:
    image_write.atomic_write_bytes(path, b"x")
  finally:
    os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o644
