"""TFLite conversion's measurements: calibration pixels, scorer agreement.

The conversion itself (`tflite_convert.convert`, int8 with and without float
ops) is tested in tests/test_tflite.py on that module's trained checkpoint.
"""

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance import scoring
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.serving import tflite_convert

import serving_helpers as helpers


def test_calibration_pixels_are_the_scoring_pixels(tmp_path):
  """int8 calibration reads files as nima-score does (reduced decode)."""
  path = str(tmp_path / "astronaut.jpg")  # 512x512: decoded at 1/4 below
  with open(path, "wb") as f:
    f.write(helpers.scorer_requests()["astronaut.jpg"])
  seen = []

  class Recorder:  # what scoring.score_files feeds the network
    preprocessing = {"mode": "paper", "image_size": [48, 64],
                     "resize_size": 256, "random_flip": False}

    def predict(self, batch):
      seen.append(np.array(batch))
      return tf.fill([len(batch), 10], 0.1)

  list(scoring.score_files(Recorder(), [path], batch_size=1))
  got = list(tflite_convert.eval_pixels_of_files(
      [path, str(tmp_path / "no.jpg")], Recorder.preprocessing))
  assert len(got) == 1 and got[0].shape == (1, 48, 64, 3)
  np.testing.assert_allclose(got[0], seen[0], atol=1e-4)
  # A full decode gives other pixels: the check above sees the difference.
  full = scoring.eval_pixels(images.read_image(path), Recorder.preprocessing)
  assert np.abs(full - got[0][0]).max() > 1.0


def test_scorer_agreement_figures_against_numpy(tmp_path):
  """max |mean diff|, SRCC and max distribution diff of two known scorers."""
  values = (51, 102, 153, 204)  # constant photos: pixel fraction v = x / 255
  paths = []
  for x in values:
    path = str(tmp_path / f"c{x}.png")
    image_write.write_image(path, np.full((30, 40, 3), x / 255.0, np.float32))
    paths.append(path)

  class Scorer:  # mass v at bucket 10 and 1 - v at bucket 1: mean 1 + 9 v
    preprocessing = {"mode": "paper", "image_size": [12, 16],
                     "resize_size": 256, "random_flip": False}

    def __init__(self, power):
      self.power = power

    def predict(self, batch):
      v = np.asarray(batch, np.float64).mean(axis=(1, 2, 3)) / 255.0
      dist = np.zeros((len(v), 10), np.float32)
      dist[:, 9] = v ** self.power
      dist[:, 0] = 1.0 - v ** self.power
      return tf.constant(dist)

  got = tflite_convert.scorer_agreement(Scorer(1.0), Scorer(1.5), paths,
                                        batch_size=3)
  v = np.array(values) / 255.0
  diff = v - v ** 1.5
  assert got["images"] == 4
  np.testing.assert_allclose(got["max_abs_mean_diff"], 9 * diff.max(),
                             rtol=1e-4)
  np.testing.assert_allclose(got["max_abs_distribution_diff"], diff.max(),
                             rtol=1e-4)
  assert got["srcc_means"] == pytest.approx(1.0)  # v^1.5 keeps the order
