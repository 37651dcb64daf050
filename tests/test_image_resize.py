"""The resize rule (`image_resize.resize_tf`, numpy `images.resize`)."""

import numpy as np
import tensorflow as tf

from nima_enhance.data import image_resize
from nima_enhance.data import images
from resize_reference import np_bilinear


def test_resize_max_side():
  image = np.zeros((300, 451, 3), np.float32)
  assert images.resize_max_side(image, 100).shape == (67, 100, 3)
  assert images.resize_max_side(image, 1000).shape == (300, 451, 3)
  assert tuple(image_resize.max_side_size_tf(300, 451, 100).numpy()) == (67, 100)


def test_box_pre_shrink_is_an_exact_block_average(real_photo):
  photo = real_photo[:240, :300]
  want = photo.reshape(80, 3, 100, 3, 3).mean(axis=(1, 3))  # numpy area
  got = image_resize._box_shrink_tf(tf.constant(photo), 3, 3).numpy()  # pylint: disable=protected-access
  np.testing.assert_allclose(got, want, atol=1e-6)
  # Remainder rows/columns (< the factor) are dropped evenly on both sides.
  odd = real_photo[:242, :301]
  want = odd[1:241, :300].reshape(80, 3, 100, 3, 3).mean(axis=(1, 3))
  got = image_resize._box_shrink_tf(tf.constant(odd), 3, 3).numpy()  # pylint: disable=protected-access
  np.testing.assert_allclose(got, want, atol=1e-6)
  # resize 240x300 -> 30x37 (8x, 8.1x): a 4x4 box, then the triangle filter
  # for the 2x step left.
  box = photo.reshape(60, 4, 75, 4, 3).mean(axis=(1, 3))
  want = tf.image.resize(box, (30, 37), antialias=True).numpy()
  np.testing.assert_allclose(images.resize(photo, (30, 37)), want,
                             atol=1e-5)


def _np_pairs(x, axis):
  """Means of each two neighbouring pixels along `axis` (n - 1 of them)."""
  n = x.shape[axis]
  return (np.take(x, range(n - 1), axis) + np.take(x, range(1, n), axis)) / 2


def test_resize_step_rule_per_factor(real_photo):
  """Factor < 1.5 (and enlargements): plain bilinear; 1.5 <= f < 2: 2-tap
  means along that axis, then bilinear; >= 2 on an axis: the triangle
  filter; the boundaries."""
  photo = real_photo[:300, :300]
  # 300 -> 201 (1.49x): plain bilinear on both axes.
  np.testing.assert_allclose(images.resize(photo, (201, 201)),
                             np_bilinear(np_bilinear(photo, 201, 0), 201, 1),
                             atol=5e-5)
  # 300 -> 200 rows (1.5x: pairs), 250 columns (1.2x: plain); 151 (1.99x,
  # pairs on both axes); 420 columns (an enlargement: plain).
  for size, rows, cols in (((200, 250), True, False),
                           ((151, 151), True, True),
                           ((151, 420), True, False)):
    want = _np_pairs(photo, 0) if rows else photo
    want = _np_pairs(want, 1) if cols else want
    np.testing.assert_allclose(
        images.resize(photo, size),
        np_bilinear(np_bilinear(want, size[0], 0), size[1], 1),
        atol=5e-5, err_msg=str(size))
  # 300 -> 150 rows (2x: the triangle filter, on both axes).
  np.testing.assert_allclose(
      images.resize(photo, (150, 250)),
      tf.image.resize(photo, (150, 250), antialias=True).numpy(), atol=1e-5)
  # uint8 input (the JPEG fast path) gives the same values, x255; so does
  # the graph path of unknown shapes (one switch over the filters).
  u8 = np.round(photo * 255).astype(np.uint8)
  dynamic = tf.function(image_resize.resize_values_tf, input_signature=[  # pylint: disable=protected-access
      tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([2], tf.int32)])
  for size in ((200, 250), (151, 151), (90, 90), (70, 40), (250, 160)):
    want = images.resize(u8.astype(np.float32) / 255.0, size)
    np.testing.assert_allclose(
        image_resize.resize_values_tf(tf.constant(u8), size).numpy() / 255.0,  # pylint: disable=protected-access
        want, atol=5e-5)
    np.testing.assert_allclose(dynamic(u8, size).numpy() / 255.0, want,
                               atol=5e-5)


def test_resize_does_not_alias_large_downscales():
  # A one-pixel checkerboard has area mean 0.5 at any scale; bilinear
  # sampling alone (no box pre-shrink) would give 0s and 1s.
  board = (np.indices((220, 330)).sum(0) % 2).astype(np.float32)
  board = np.repeat(board[..., None], 3, -1)
  out = images.resize(board, (40, 60))  # 5.5x: box 2, antialiased 2.75x
  np.testing.assert_allclose(out, 0.5, atol=0.1)


def test_resize_rule_close_to_antialiased_and_same_in_graph(real_photo):
  # Against the triangle filter (tf.image.resize(antialias=True)) on the
  # 512x512 photo, measured mean |difference|: 0.0032 at 1.25x (plain
  # bilinear), 0.0071 / 0.0070 / 0.0073 at 1.55x / 1.7x / 1.9x (2-tap means
  # then bilinear: mostly their n - 1 span's stretch of <= half a pixel at
  # the borders; plain bilinear 0.0052 / 0.0058 / 0.0074, for NIMA scores
  # further from the triangle's), 0 at 2-4x (the same filter), 0.0012 /
  # 0.0064 at 5.1x / 8.4x (box, then triangle); plain bilinear there is
  # 0.028 / 0.039.
  for size in ((400, 410), (300, 330), (150, 170), (100, 100), (61, 73),
               (700, 800)):
    got = images.resize(real_photo, size)
    reference = tf.image.resize(real_photo, size, antialias=True).numpy()
    assert np.abs(got - reference).mean() < 0.016, size
    if size[0] <= 100:
      plain = tf.image.resize(real_photo, size).numpy()
      assert (np.abs(got - reference).mean()
              < 0.6 * np.abs(plain - reference).mean()), size
    # Unknown shapes in a graph (tf.cond path) give the same pixels.
    graph = tf.function(image_resize.resize_tf, input_signature=[
        tf.TensorSpec([None, None, 3], tf.float32),
        tf.TensorSpec([2], tf.int32)])(real_photo, size)
    np.testing.assert_allclose(graph.numpy(), got, atol=1e-6)


def test_triangle_is_tf_antialiased_resize_pixel_for_pixel(real_photo):
  """`_triangle_tf` (both passes as ScaleAndTranslate's row pass, columns
  after a transpose) == tf.image.resize(antialias=True) within 1e-5 on
  [0, 255] (measured: bit for bit): factors 2-4 and odd sizes on either
  axis, an enlarged other axis, uint8 and float, one image and a batch of
  [2, 3] images, static and unknown shapes; and the rule's box-then-triangle
  case against the box then tf.image.resize."""
  u8 = np.round(real_photo * 255).astype(np.uint8)
  rng = np.random.default_rng(3)
  dynamic = tf.function(image_resize._triangle_tf, input_signature=[  # pylint: disable=protected-access
      tf.TensorSpec(None, tf.uint8), tf.TensorSpec([2], tf.int32)])
  for (h, w), size in (((500, 375), (250, 120)),   # 2x, 3.1x
                       ((375, 500), (128, 128)),   # 2.9x, 3.9x
                       ((333, 417), (111, 300)),   # 3x, 1.39x
                       ((97, 211), (120, 70)),     # enlarged rows, 3.01x
                       ((23, 9), (7, 4))):         # tiny, odd
    image = u8[:h, :w]
    want = tf.image.resize(image.astype(np.float32), size,
                           antialias=True).numpy()
    for got in (image_resize._triangle_tf(image, size),  # pylint: disable=protected-access
                image_resize._triangle_tf(image.astype(np.float32), size),  # pylint: disable=protected-access
                dynamic(image, size)):
      assert got.shape == want.shape and got.dtype == tf.float32
      np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5,
                                 err_msg=str(size))
    batch = rng.integers(0, 256, (2, 3, h, w, 3)).astype(np.uint8)
    want = tf.image.resize(batch.reshape(6, h, w, 3).astype(np.float32),
                           size, antialias=True).numpy()
    np.testing.assert_allclose(
        dynamic(batch, size).numpy().reshape(want.shape), want, rtol=0,
        atol=1e-5, err_msg=str(size))
  # The rule's filters 4 (triangle) and 5 (box pre-shrink, then triangle).
  image = u8[:450, :500]
  np.testing.assert_allclose(
      image_resize.resize_by_case_tf(tf.constant(image), (200, 170), 4),  # pylint: disable=protected-access
      tf.image.resize(image.astype(np.float32), (200, 170),
                      antialias=True).numpy(), rtol=0, atol=1e-5)
  box = image.astype(np.float32).reshape(225, 2, 250, 2, 3).mean(
      axis=(1, 3))  # 4.5x, 4.5x: 2x2 blocks, then 2.25x, 2.27x
  np.testing.assert_allclose(
      image_resize.resize_by_case_tf(tf.constant(image), (100, 110), 5),  # pylint: disable=protected-access
      tf.image.resize(box, (100, 110), antialias=True).numpy(), rtol=0,
      atol=1e-4)  # margin for the box means' float order (measured: 0)


def test_uint8_row_means_equal_the_float_2_tap_filter(real_photo):
  """A decoder's uint8 pixels take one ScaleAndTranslate pass for the rows'
  2-tap means: bit for bit the float path (cast, slices, sum halved), and
  the numpy 2-tap + bilinear reference, alone or with columns, batched."""
  pixels = (real_photo[:77, :51] * 255).astype(np.uint8)
  for image, size in ((pixels, (45, 30)), (np.stack([pixels, pixels[::-1]]),
                                           (45, 30)), (pixels, (46, 60))):
    for rows, cols in ((True, False), (True, True)):
      got = image_resize._pair_bilinear_tf(tf.constant(image), size, rows,  # pylint: disable=protected-access
                                           cols).numpy()
      want = image_resize._pair_bilinear_tf(  # pylint: disable=protected-access
          tf.constant(image.astype(np.float32)), size, rows, cols).numpy()
      np.testing.assert_array_equal(got, want)
      ref = image.astype(np.float64)
      ref = (ref[..., :-1, :, :] + ref[..., 1:, :, :]) / 2
      if cols:
        ref = (ref[..., :, :-1, :] + ref[..., :, 1:, :]) / 2
      axis = ref.ndim - 3
      ref = np_bilinear(np_bilinear(ref, size[0], axis), size[1], axis + 1)
      np.testing.assert_allclose(got, ref, atol=2e-3)
