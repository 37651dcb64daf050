"""Decoding straight to a size (`image_sized_decode`): the reduced decode
against full decode + antialiased resize, largest-side decodes, and planned
decodes against the in-graph parse."""

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import image_graph
from nima_enhance.data import image_headers
from nima_enhance.data import images
from jpeg_files import jpeg_bytes as _jpeg


@pytest.mark.parametrize("height,width,size,ratio", [
    (500, 670, (240, 320), 2), (1000, 1340, (240, 320), 4),
    (1600, 2100, (200, 256), 8), (600, 450, (240, 320), 1),
    (420, 560, (240, 320), 1)])
def test_reduced_decode_and_resize_close_to_full_decode_antialiased(
    astronaut_uint8, height, width, size, ratio):
  """The fast reader vs the reference: full decode + triangle filter.

  Measured on the astronaut (quality 90), mean |difference| / p99: 0.0049 /
  0.041 (ratio 2), 0.0056 / 0.038 (4), 0.0115 / 0.109 (8: libjpeg's 1/8 is
  the 8x8 block mean, a box where the reference is a triangle; plain
  bilinear of the full decode is 0.0125 there), 0 (full decode, 2.5x: the
  same triangle), 0.0071 / 0.066 (full decode, 1.75x: 2-tap means, then
  bilinear). Full decode + the resize rule (the triangle from 2x, a box
  first from 4x) at the sizes of ratios 2 / 4 / 8: 0 / 0.0009 / 0.0015.
  """
  data = _jpeg(astronaut_uint8, height, width, quality=90)
  assert int(image_graph.jpeg_ratio_tf(height, width, size)) == ratio
  fast = images.decode_resized_tf(tf.constant(data), size).numpy()
  assert fast.shape == size + (3,)
  reference = tf.image.resize(images.decode_image_bytes(data), size,
                              antialias=True).numpy()
  diff = np.abs(fast - reference)
  assert diff.mean() < (0.014 if ratio == 8 else 0.008), diff.mean()
  assert np.percentile(diff, 99) < (0.13 if ratio == 8 else 0.07)
  # The same pixels as the composition scoring uses (float decode, then
  # resize_tf), to float rounding: training and scoring see one rule.
  composed = images.resize(
      images.decode_image_bytes(data, target_size=size), size)
  np.testing.assert_allclose(fast, composed, atol=1e-5)
  # x255 straight from uint8 (NIMA's input range).
  np.testing.assert_allclose(
      images.decode_resized_tf(tf.constant(data), size, scale=255.0).numpy(),
      composed * 255.0, atol=3e-3)


def test_decode_max_side_graph_and_numpy_agree(astronaut_uint8):
  """decode_max_side_tf (pipelines) == images.decode_max_side (prep-targets):
  1/2 decode for a 2x larger photo, none when under 2x, EXIF-rotated."""
  for height, width, orientation, ratio in ((480, 650, None, 2),
                                            (350, 500, None, 1),
                                            (650, 480, 6, 2)):
    data = _jpeg(astronaut_uint8, height, width, orientation)
    graph = images.decode_max_side_tf(tf.constant(data), 320).numpy()
    numpy_side = images.decode_max_side(data, 320)
    upright = (width, height) if orientation else (height, width)
    want = images.max_side_size(*upright, 320)
    assert graph.shape[:2] == numpy_side.shape[:2] == want
    np.testing.assert_allclose(graph, numpy_side, atol=1e-5)
    reduced = images.decode_image_bytes(data, target_size=want)
    assert reduced.shape[0] == -(-upright[0] // ratio)
    # ... and close to resizing the full decode by the same rule.
    full = images.resize(images.decode_image_bytes(data), want)
    assert np.abs(numpy_side - full).mean() < 0.01
  # Never enlarged: a small photo comes back at its own size.
  small = _jpeg(astronaut_uint8, 200, 300)
  assert images.decode_max_side_tf(tf.constant(small), 320).shape == (
      200, 300, 3)
  assert images.decode_max_side(small, 320).shape == (200, 300, 3)


@pytest.mark.parametrize("height,width,orientation,size", [
    (200, 260, None, (48, 64)),  # ratio 4, landscape
    (130, 100, 6, (48, 64)),  # EXIF 6: upright 100x130, 1/2
    (90, 120, 3, (48, 64)),  # 1/1, 1.9x: 2-tap means, rotated 180
    (60, 80, 8, (100, 90))])  # enlarged, transposed
def test_planned_decode_equals_the_parsed_one(astronaut_uint8, height, width,
                                              orientation, size):
  """decode_planned_tf with the plan of the header check_images stores ==
  decode_resized_tf parsing the header in the graph; the plan of the
  mirrored orientation gives the mirror image."""
  data = _jpeg(astronaut_uint8, height, width, orientation)
  header = image_headers.header_fields(data)
  assert header == [1, height, width, orientation or 1]
  plan = images.decode_plan_tf(header, size)
  assert int(plan) >= 0
  parsed = images.decode_resized_tf(tf.constant(data), size).numpy()
  planned = images.decode_planned_tf(tf.constant(data), plan, size,
                                     all_planned=True).numpy()
  assert planned.shape == size + (3,)
  np.testing.assert_allclose(planned, parsed, atol=1e-5)
  np.testing.assert_allclose(  # the header form: the same plan in-graph
      images.decode_resized_tf(tf.constant(data), size, header=header),
      parsed, atol=1e-5)
  # The mirror image's EXIF orientation ((o - 1) xor 1) + 1: its plan
  # gives the mirrored pixels (the plan's orientation is what is used).
  mirror = header[:3] + [((header[3] - 1) ^ 1) + 1]
  mirrored = images.decode_planned_tf(
      tf.constant(data), images.decode_plan_tf(mirror, size), size).numpy()
  np.testing.assert_allclose(mirrored, parsed[:, ::-1], atol=1e-5)
  assert np.abs(mirrored - parsed).max() > 0.1
  # A header that lies (orientation dropped, or a wrong size that picks
  # another decode scale) gives other pixels: nothing is re-parsed.
  for wrong in ([1, height, width, 1 if orientation else 6],
                [1, 8 * height, 8 * width, orientation or 1]):
    lie = images.decode_planned_tf(
        tf.constant(data), images.decode_plan_tf(wrong, size), size).numpy()
    assert lie.shape != parsed.shape or np.abs(lie - parsed).max() > 0.05


def test_plans_of_unusable_headers_take_the_checked_path(astronaut_uint8):
  """Unknown, non-JPEG, over-limit or zero-size headers plan PARSE_PLAN,
  which parses and checks in the graph (all_planned refuses it)."""
  headers = [[0, 0, 0, 0], [2, 40, 50, 1], [1, 10 ** 5, 10 ** 5, 1],
             [1, 0, 50, 1], [1, 40, 50, 9]]
  plans = images.decode_plan_tf(headers, (32, 32)).numpy()
  assert list(plans) == [images.PARSE_PLAN] * 5
  data = tf.constant(_jpeg(astronaut_uint8, 60, 80))
  np.testing.assert_allclose(
      images.decode_planned_tf(data, images.PARSE_PLAN, (32, 32)),
      images.decode_resized_tf(data, (32, 32)), atol=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError, match="no decode plan"):
    images.decode_planned_tf(data, images.PARSE_PLAN, (32, 32),
                             all_planned=True)
  with pytest.raises(tf.errors.InvalidArgumentError, match="pixel limit"):
    images.decode_planned_tf(data, images.decode_plan_tf(
        [1, 60, 80, 1], (32, 32), max_pixels=100), (32, 32), max_pixels=100)
