"""Air-light estimation by haze-line Hough voting."""

import numpy as np
import pytest

import data_prep
from data_prep import airlight
from nima_enhance.data import images


def _hazy(air, beta=2.5):
  from skimage import data  # pylint: disable=g-import-not-at-top
  _, _, disparity = data.stereo_motorcycle()
  disparity = disparity[::4, ::4].copy()
  finite = np.isfinite(disparity)
  disparity[~finite] = disparity[finite].max()
  depth = 1.0 / np.maximum(disparity, 1.0)
  depth = (depth - depth.min()) / (depth.max() - depth.min())
  t = np.exp(-beta * depth)[..., None]
  clear = images.resize(data.coffee().astype(np.float32) / 255.0,
                        disparity.shape)
  return (clear * t + np.asarray(air) * (1.0 - t)).astype(np.float32)


def test_palette_counts_every_pixel():
  rng = np.random.default_rng(0)
  image = rng.random((40, 40, 3)).astype(np.float32)
  colours, counts = airlight.palette(image, size=10 ** 6)
  assert counts.sum() == 1600
  assert colours.min() >= 0.0 and colours.max() <= 1.0


def test_estimate_close_to_truth():
  truth = np.array([0.8, 0.82, 0.85])
  estimate = data_prep.estimate_airlight(_hazy(truth))
  assert estimate.shape == (3,)
  assert np.abs(estimate - truth).max() < 0.1


def test_rejects_gray_images():
  with pytest.raises(ValueError):
    data_prep.estimate_airlight(np.zeros((10, 10)))
