"""Reduced-scale JPEG decoding (`image_graph.decode_image_tf(target_size=)`)."""

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import image_graph
from nima_enhance.data import images
from jpeg_files import jpeg_bytes as _jpeg


def _box(image, r):
  """numpy r x r block means over the whole blocks (independent reference)."""
  h, w = image.shape[0] // r * r, image.shape[1] // r * r
  return image[:h, :w].reshape(h // r, r, w // r, r, 3).mean(axis=(1, 3))


def _decode(data, target=None):
  # decode_image_bytes runs decode_image_tf traced once (eager is slow).
  return images.decode_image_bytes(data, target_size=target)


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_reduced_decode_is_a_box_downscale_of_the_full_decode(
    astronaut_uint8, ratio):
  # 8 | 760 and 8 | 1000 would hide the partial-block edge: 763 x 1001.
  data = _jpeg(astronaut_uint8, 763, 1001)
  full = _decode(data)
  reduced = _decode(data, (763 // ratio, 1001 // ratio))
  assert reduced.shape == (-(-763 // ratio), -(-1001 // ratio), 3)
  box = _box(full, ratio)
  diff = np.abs(reduced[:box.shape[0], :box.shape[1]] - box)
  # libjpeg's DCT-domain scaling is close to a box filter: measured on
  # astronaut / coffee / chelsea, mean 0.0026-0.0045, p99 0.011-0.024; the
  # 1/2 and 1/4 scalings (4x4 and 2x2 IDCTs) are sharper than a box at hard
  # edges, max 0.10 at 1/2 on isolated pixels.
  assert diff.mean() < 0.006, diff.mean()
  assert np.percentile(diff, 99) < 0.03, np.percentile(diff, 99)
  assert diff.max() < 0.12, diff.max()


@pytest.mark.parametrize("target,want", [
    ((48, 64), (48, 64)),    # exactly twice in both directions: 1/2
    ((49, 64), (96, 128)),   # one row short of twice in height: full
    ((48, 65), (96, 128)),   # one column short in width: full
    ((24, 32), (24, 32)),    # four times: 1/4
    ((25, 32), (48, 64)),    # just short of four times: 1/2
    ((12, 16), (12, 16)),    # eight times: 1/8
    ((3, 4), (12, 16)),      # 32 times: capped at libjpeg's 1/8
    (None, (96, 128)),       # no target: full
    ((0, 0), (96, 128)),     # unknown target: full
])
def test_ratio_choice_at_boundary_sizes(astronaut_uint8, target, want):
  data = _jpeg(astronaut_uint8, 96, 128)
  assert _decode(data, target).shape[:2] == want


def test_ratio_rule():
  ratio = image_graph.jpeg_ratio_tf
  assert int(ratio(4000, 3000, (480, 640))) == 4  # 3000 < 8 x 640
  assert int(ratio(3000, 4000, (480, 640))) == 4
  assert int(ratio(959, 4000, (480, 640))) == 1
  assert int(ratio(960, 1280, (480, 640))) == 2
  assert int(ratio(6000, 8000, (480, 640))) == 8
  assert int(ratio(10 ** 5, 10 ** 5, (480, 640))) == 8


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_after_a_reduced_decode(astronaut_uint8, orientation):
  # Stored 96x128 (h x w); orientations 5-8 display it as 128x96.
  plain = _jpeg(astronaut_uint8, 96, 128)
  rotated = _jpeg(astronaut_uint8, 96, 128, orientation)
  swaps = orientation >= 5
  upright = (64, 48) if swaps else (48, 64)
  got = _decode(rotated, upright)
  assert got.shape[:2] == upright  # the ratio came from the oriented size
  want = image_graph.orient(_decode(plain, (48, 64)), orientation)
  np.testing.assert_allclose(got, want, atol=1e-6)
  if swaps:
    # Against the stored size, (48, 64) would be "twice"; upright it is not.
    assert _decode(rotated, (48, 64)).shape[:2] == (128, 96)


def test_numpy_and_graph_paths_give_the_same_pixels(astronaut_uint8, tmp_path):
  data = _jpeg(astronaut_uint8, 200, 260, orientation=6)
  path = tmp_path / "photo.jpg"
  path.write_bytes(data)
  numpy_side = images.read_image(str(path), target_size=(48, 64))
  dataset = tf.data.Dataset.from_tensor_slices([str(path)]).map(
      lambda p: images.decode_image_tf(tf.io.read_file(p),
                                       target_size=(48, 64)))
  graph_side = next(iter(dataset)).numpy()
  assert numpy_side.shape == (130, 100, 3)  # upright 260x200, 1/2
  np.testing.assert_allclose(numpy_side, graph_side, atol=1e-6)
