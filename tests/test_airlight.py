"""Air-light estimation by haze-line Hough voting."""

import numpy as np
import pytest

import data_prep
from data_prep import airlight
from nima_enhance.data import images

GREY_WHITE = (0.8, 0.82, 0.85)  # Below the white cup: ~20% of pixels exceed it.
BLUISH = (0.75, 0.85, 0.95)      # Below the cup in red and green (~34%).
ABOVE_ALL = (0.97, 0.97, 0.97)   # Brighter than every scene pixel.
YELLOW = (0.9, 0.78, 0.55)       # Coloured air-lights (dust, sunset).
REDDISH = (0.85, 0.6, 0.5)


def _hazy(air, stride=4, exposure=1.0, beta=2.5, scene="coffee"):
  """I = J t + A (1 - t): J a bundled photo, depth from the motorcycle."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  _, _, disparity = data.stereo_motorcycle()
  disparity = disparity[::stride, ::stride].copy()
  finite = np.isfinite(disparity)
  disparity[~finite] = disparity[finite].max()
  depth = 1.0 / np.maximum(disparity, 1.0)
  depth = (depth - depth.min()) / (depth.max() - depth.min())
  t = np.exp(-beta * depth)[..., None]
  clear = exposure * images.resize(
      getattr(data, scene)().astype(np.float32) / 255.0, disparity.shape)
  return (clear * t + np.asarray(air) * (1.0 - t)).astype(np.float32)


def test_palette_counts_every_pixel():
  rng = np.random.default_rng(0)
  image = rng.random((40, 40, 3)).astype(np.float32)
  colours, counts = airlight.palette(image, size=10 ** 6)
  assert counts.sum() == 1600
  assert colours.min() >= 0.0 and colours.max() <= 1.0


# Every kind at full exposure: A darker than the brightest scene pixels in
# some channel (grey-white, bluish, reddish), brighter than all of them, and
# strongly coloured. Synthetic haze with a known depth (the motorcycle's).
@pytest.mark.parametrize("air,stride", [
    (GREY_WHITE, 4), (GREY_WHITE, 2), (BLUISH, 4), (BLUISH, 2),
    (ABOVE_ALL, 4), (YELLOW, 4), (REDDISH, 4)])
def test_estimate_close_to_truth(air, stride):  # 125 x 186 or 250 x 372
  truth = np.asarray(air)
  hazy = _hazy(truth, stride)
  if air in (GREY_WHITE, BLUISH, REDDISH):  # The case the test is about.
    assert (hazy.reshape(-1, 3) > truth).any(axis=1).mean() > 0.1
  estimate = data_prep.estimate_airlight(hazy)
  assert estimate.shape == (3,) and estimate.dtype == np.float32
  assert np.abs(estimate - truth).max() <= 0.05


# The open part of issue 17, kept in the suite so that a fix shows up (strict:
# an unexpected pass fails, and the case then moves to the test above). The
# vote finds A's colour but stops far below its magnitude where the scene has
# a bright sky and dark foliage (rocket: ~0.7 of |A|), and follows the white
# suit's colour instead of a reddish A (astronaut). tools/benchmarks/dehaze.py
# measures every scene and kind.
@pytest.mark.xfail(strict=True, reason="issue 17: air-light magnitude/colour "
                   "still wrong on these scenes")
@pytest.mark.parametrize("scene,air", [("rocket", GREY_WHITE),
                                       ("astronaut", REDDISH)])
def test_estimate_close_to_truth_open_cases(scene, air):
  truth = np.asarray(air)
  estimate = data_prep.estimate_airlight(_hazy(truth, scene=scene))
  assert np.abs(estimate - truth).max() <= 0.05


def test_single_haze_line_family_is_exact():
  """Ideal haze-lines: 30 colours darker than A at random transmissions."""
  rng = np.random.default_rng(0)
  truth = np.array([0.8, 0.82, 0.85])
  clear = rng.random((30, 3)) * 0.7
  t = rng.uniform(0.1, 1.0, (200, 200, 1))
  image = clear[rng.integers(0, 30, (200, 200))] * t + truth * (1.0 - t)
  estimate = data_prep.estimate_airlight(image.astype(np.float32))
  # Measured 0.0125 (one step of the vote's grid); ~2x (was 0.05).
  assert np.abs(estimate - truth).max() <= 0.025


def test_rejects_gray_images():
  with pytest.raises(ValueError):
    data_prep.estimate_airlight(np.zeros((10, 10)))
