"""Tests of nima_enhance.models.can_streaming: exact bounded-memory inference.

The reference is always the Keras CAN run on the whole image (with its
SymmetricPad2D and inference-mode adaptive normalization), never the band
schedule itself.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.enhance import inference
from nima_enhance.models import can
from nima_enhance.models import can_streaming
from nima_enhance.serving import export

import serving_helpers


def _nontrivial_can(depth=10, width=8, seed=3):
  """A CAN far from the identity, with non-trivial normalization weights."""
  model = can.build_can(width=width, depth=depth, init_noise=0.03, seed=seed)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, can.AdaptiveNormalization):
      bn = layer.batch_norm
      c = int(bn.moving_mean.shape[0])
      bn.moving_mean.assign(rng.normal(0.0, 0.1, c).astype(np.float32))
      bn.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))
      bn.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
      bn.beta.assign(rng.normal(0.0, 0.1, c).astype(np.float32))
      layer.lam.assign(0.9)
      layer.mu.assign(0.4)
  return model


@pytest.fixture(scope="module")
def model():
  return _nontrivial_can()


def _photo(height, width, name="astronaut"):
  from skimage import data  # pylint: disable=g-import-not-at-top
  pixels = np.asarray(getattr(data, name)(), np.float32) / 255.0
  return tf.image.resize(pixels, (height, width)).numpy().clip(0.0, 1.0)


def _keras(model, image):
  return np.clip(model(image[None], training=False)[0].numpy(), 0.0, 1.0)


def test_fold_equals_keras_normalization(model):
  image = _photo(33, 47)
  reference = _keras(model, image)
  folded = can_streaming.fold_can(model)
  weights = can_streaming.weight_list(folded)
  whole = 33 + sum(folded.dilations)
  ours = can_streaming.enhance_bands(tf.constant(image), weights,
                                     folded.dilations, folded.slope,
                                     whole).numpy()
  assert np.abs(ours - reference).max() < 1e-4
  # The network is far from the identity, so equality is not trivial.
  assert np.abs(reference - image).max() > 0.2
  # uint8 in, uint8 out (the SavedModel bytes path): round(255 * output).
  as_uint8 = can_streaming.enhance_bands(
      tf.constant(np.round(image * 255).astype(np.uint8)), weights,
      folded.dilations, folded.slope, 7, output_uint8=True).numpy()
  expected = np.round(255 * _keras(model, np.round(image * 255) / 255))
  assert np.abs(as_uint8.astype(float) - expected).max() <= 1


@pytest.fixture(scope="module")
def bands(model):
  """enhance_image with the band size as an input: one trace for all tests."""
  folded = can_streaming.fold_can(model)
  weights = can_streaming.weight_list(folded)
  return tf.function(
      lambda image, band: can_streaming.enhance_image(
          image, weights, folded.dilations, folded.slope, band),
      input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                       tf.TensorSpec([], tf.int32)])


@pytest.mark.parametrize("size,tiles", [
    ((300, 41), (9, 64, 257, 0)),   # taller than most dilations; 0 = one piece
    ((40, 60), (1, 16, 39, 40)),    # pads exceed the image; wide: transposed
    ((37, 23), (5, 36)),            # odd sizes
    ((1, 1), (1,)),
])
def test_bands_equal_one_piece(model, bands, size, tiles):
  image = _photo(*size)
  reference = _keras(model, image)
  for tile in tiles:
    streamed = bands(tf.constant(image), tf.constant(tile)).numpy()
    assert streamed.shape == image.shape
    assert np.abs(streamed - reference).max() < 1e-4, tile


def _fetch_after_appends(height, pad, bands, start, stop):
  """Appends rows 0..height-1 (value = row index) in `bands`, then fetches."""
  full = np.arange(height, dtype=np.float32)[:, None, None] * np.ones(
      (1, 2, 1), np.float32)
  buf, lo = tf.zeros([0, 2, 1]), tf.constant(0)
  for first, last in bands:
    buf, lo = can_streaming._append_rows(  # pylint: disable=protected-access
        buf, lo, tf.constant(full[first:last]), first, last, height, pad)
  rows = can_streaming._buffer_rows(  # pylint: disable=protected-access
      buf, lo, start, stop, pad, height)
  expected = np.pad(full, ((pad, pad), (0, 0), (0, 0)), mode="symmetric")[
      start:stop + 2 * pad]
  return rows.numpy(), expected, int(lo)


def test_buffers_store_the_mirrored_border_rows():
  # Against numpy's symmetric pad: the first band (>= pad rows) stores rows
  # -pad..-1 mirrored (lo = -pad), the last band rows height..height+pad-1.
  rows, expected, lo = _fetch_after_appends(10, 3, [(0, 6)], 0, 3)
  assert lo == -3
  np.testing.assert_array_equal(rows, expected)
  rows, expected, _ = _fetch_after_appends(10, 3, [(0, 6), (6, 10)], 0, 10)
  np.testing.assert_array_equal(rows, expected)
  # One band holding the whole image: both mirrors.
  rows, expected, _ = _fetch_after_appends(7, 4, [(0, 7)], 0, 7)
  np.testing.assert_array_equal(rows, expected)
  # Bands shorter than the pad cannot mirror: the rows are gathered.
  rows, expected, lo = _fetch_after_appends(
      10, 3, [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)], 0, 10)
  assert lo == 0
  np.testing.assert_array_equal(rows, expected)
  # A pad larger than the image reflects more than once: gathered.
  rows, expected, _ = _fetch_after_appends(3, 5, [(0, 3)], 0, 3)
  np.testing.assert_array_equal(rows, expected)


def test_streaming_enhancer_transposes_wide_outputs_as_views(model):
  image = _photo(20, 45)
  out = can_streaming.StreamingEnhancer(model, tile_size=6)(image)
  assert out.shape == image.shape
  assert np.abs(out - _keras(model, image)).max() < 1e-4


def test_default_band_from_budget_and_width(model):
  # band = (budget / (width * row bytes) - held rows) / factor, clipped.
  c = can_streaming
  for width in (1500, 4000, 6000):
    per_row = (width + c.WIDTH_PAD) * c.ROW_BYTES
    expected = (3e9 / per_row - c.HELD_ROWS) / c.BAND_FACTOR
    expected = int(min(max(expected, c.MIN_BAND_ROWS), c.MAX_BAND_ROWS))
    assert int(c.band_rows_for(width, 3.0)) == expected
  assert int(c.band_rows_for(20000, 3.0)) == c.MIN_BAND_ROWS
  assert int(c.band_rows_for(1, 3.0)) == c.MAX_BAND_ROWS
  # The default path (band chosen in graph) still equals the whole image.
  image = _photo(90, 70)
  ours = can_streaming.StreamingEnhancer(model, memory_budget_gb=0.01)(image)
  assert np.abs(ours - _keras(model, image)).max() < 1e-4


def test_default_band_from_the_short_side(model, monkeypatch):
  # The band's working set grows with the row length, and the schedule
  # streams along the long side (wide photos are transposed), so the band
  # comes from the short side for either orientation.
  seen = []
  real = can_streaming.band_rows_for

  def spy(width, budget):
    seen.append(int(width))
    return real(width, budget)

  monkeypatch.setattr(can_streaming, "band_rows_for", spy)
  folded = can_streaming.fold_can(model)
  weights = can_streaming.weight_list(folded)
  for shape in ((30, 50), (50, 30)):
    can_streaming.enhance_image(tf.constant(_photo(*shape)), weights,
                                folded.dilations, folded.slope)
  assert seen == [30, 30]


def test_bfloat16_close_to_float32_but_not_equal(model):
  image = _photo(64, 80, "coffee")
  f32 = can_streaming.StreamingEnhancer(model, tile_size=16)(image)
  bf16 = can_streaming.StreamingEnhancer(model, tile_size=16,
                                         precision="bfloat16")(image)
  diff = np.abs(bf16 - f32)
  assert diff.max() > 0  # really computed in bfloat16
  assert diff.mean() < 0.02


def test_bad_options(model):
  with pytest.raises(ValueError, match="precision"):
    can_streaming.StreamingEnhancer(model, precision="float16")
  with pytest.raises(ValueError, match="tile_size"):
    can_streaming.StreamingEnhancer(model, tile_size=-1)


def test_load_enhancer_and_export_use_the_bands(tmp_path):
  can_dir = serving_helpers.make_can_dir(str(tmp_path / "can"))
  image = _photo(70, 50, "chelsea")
  one_piece = inference.load_enhancer(can_dir, tile_size=0,
                                        jit_compile=False)
  reference = _keras(one_piece.model, image)
  assert np.abs(one_piece(image) - reference).max() < 1e-5
  for tile in (None, 9):
    bundle = inference.load_enhancer(can_dir, tile_size=tile)
    assert np.abs(bundle(image) - reference).max() < 1e-4
  module = export.make_enhancer_module(one_piece.model, tile_size=9)
  batch = np.stack([image, image[::-1]])
  served = module.enhance(tf.constant(batch))["images"].numpy()
  assert np.abs(served[0] - reference).max() < 1e-4
  assert np.abs(served[1] - _keras(one_piece.model, image[::-1])).max() < 1e-4


def test_enhance_flags_reject_bad_values():
  result = subprocess.run(
      [sys.executable, "-m", "nima_enhance.bin.enhance", "--model_dir", "m",
       "--output_dir", "o", "--tile_size", "-3", "x.png"],
      capture_output=True, text=True, timeout=120,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 2
  assert "tile_size" in result.stderr and "Traceback" not in result.stderr


def test_enhance_files_8bit_path_equals_float_path(tmp_path, model):
  """enhance's memory-saving path (uint8 in, uint8 out) writes the pixels
  the float path would, and a photo that fails is skipped, not fatal."""
  from nima_enhance.data import image_write  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  bundle = inference.EnhancerBundle(model, {}, "", tile_size=11)
  photo = image_write.quantize(
      _photo(40, 30, "coffee")).astype(np.float32) / 255
  compact = inference._compact_pixels(photo)  # pylint: disable=protected-access
  assert compact.dtype == tf.uint8
  assert inference._compact_pixels(photo * 0.999).dtype == tf.float32  # pylint: disable=protected-access
  expected = image_write.quantize(bundle(photo))
  # uint8 in scales by 1/255 in graph: at most a float-rounding tie apart.
  assert np.abs(bundle(compact, output_uint8=True).astype(int)
                - expected).max() <= 1
  good = str(tmp_path / "good.png")
  image_write.write_image(good, photo)
  bad = str(tmp_path / "bad.png")
  image_write.write_image(bad, photo)

  class FailsOnce:
    """Raises for bad.png's pixels (as an out-of-memory error would)."""

    def __init__(self):
      self.calls = 0

    def __call__(self, pixels, output_uint8=False):
      self.calls += 1
      if self.calls == 1:
        raise tf.errors.ResourceExhaustedError(None, None, "OOM at 48 MP")
      return bundle(pixels, output_uint8=output_uint8)

  result = inference.enhance_files(FailsOnce(), [bad, good],
                                     str(tmp_path / "out"))
  assert list(result["skipped"]) == [bad] and "OOM" in result["skipped"][bad]
  written = images.read_image(result["written"][0])
  assert np.array_equal(image_write.quantize(written), expected)
  # The bundle itself takes the uint8 path end to end.
  direct = inference.enhance_files(bundle, [good], str(tmp_path / "u8"))
  written = image_write.quantize(images.read_image(direct["written"][0]))
  assert np.abs(written.astype(int) - expected).max() <= 1


def test_enhance_files_skips_a_photo_whose_decode_runs_out_of_memory(
    tmp_path, model, monkeypatch):
  """Out of memory while decoding (before the CAN) is also named and skipped;
  the next photo is still enhanced."""
  from nima_enhance.data import image_write  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  photo = _photo(24, 20, "coffee")
  paths = [str(tmp_path / "huge.png"), str(tmp_path / "fine.png")]
  for path in paths:
    image_write.write_image(path, photo)
  read = images.read_image

  def read_or_fail(path, *args, **kwargs):
    if path.endswith("huge.png"):
      raise MemoryError("std::bad_alloc")
    return read(path, *args, **kwargs)

  monkeypatch.setattr(images, "read_image", read_or_fail)
  bundle = inference.EnhancerBundle(model, {}, "", tile_size=7)
  result = inference.enhance_files(bundle, paths, str(tmp_path / "out"))
  assert list(result["skipped"]) == [paths[0]]
  assert "MemoryError" in result["skipped"][paths[0]]
  assert [os.path.basename(p) for p in result["written"]] == ["fine.png"]


@pytest.mark.parametrize("tile_size, budget, precision, fragment", [
    (-1, 1.5, "float32", "tile_size"),
    (None, 0.0, "float32", "memory_budget_gb"),
    (64, 1.5, "float16", "precision"),
])
def test_bad_inference_options_are_named(tile_size, budget, precision,
                                         fragment):
  with pytest.raises(ValueError, match=fragment):
    can_streaming.check_options(tile_size, budget, precision)
  # The same check guards the streaming enhancer itself.
  with pytest.raises(ValueError, match=fragment):
    can_streaming.StreamingEnhancer(None, tile_size, budget, precision)


def test_good_inference_options_pass():
  for tile_size in (None, 0, 1, 512):
    can_streaming.check_options(tile_size, 0.1, "bfloat16")
