"""enhance/evaluate.py: enhance-eval's NIMA statistics are the scorer's scores.

enhance-eval scores in-memory images (input, reference, output) through
`scoring.score_array`, the path of `nima_enhance.Scorer` on arrays; checked
here against the restored model called directly with the evaluation
preprocessing, and the mean computed in numpy.
"""

import numpy as np
import pytest
import tensorflow as tf

import nima_enhance
from nima_enhance import scoring
from nima_enhance.data import ava_pipeline
from nima_enhance.data import images
from nima_enhance.enhance import evaluate

import serving_helpers


@pytest.fixture(scope="module")
def nima_dir(tmp_path_factory):
  return serving_helpers.make_nima_dir(str(tmp_path_factory.mktemp("nima")))


def _reference_mean(nima_dir, image):
  bundle = scoring.load_nima(nima_dir)
  pixels = ava_pipeline.preprocess_tf(tf.constant(image), bundle.preprocessing,
                                      training=False)
  distribution = bundle.model(pixels[None], training=False).numpy()[0]
  return float(np.sum(distribution * np.arange(1, 11)))


def test_nima_mean_scorer_equals_the_model_and_the_scorer(nima_dir,
                                                          real_photos):
  score = evaluate.nima_mean_scorer(nima_dir)
  scorer = nima_enhance.Scorer.load(nima_dir)
  means = []
  for name in ("coffee", "rocket"):
    image = images.resize(real_photos[name], (60, 80))
    mean = score(image)
    assert mean == pytest.approx(_reference_mean(nima_dir, image), abs=1e-4)
    assert mean == pytest.approx(scorer.score([image])[0].mean, abs=1e-6)
    means.append(mean)
  assert 1.0 <= min(means) and max(means) <= 10.0
  assert means[0] != means[1]  # the image reaches the score


def test_score_array_is_a_distribution(nima_dir, real_photo):
  bundle = scoring.load_nima(nima_dir)
  distribution = scoring.score_array(bundle,
                                     images.resize(real_photo, (50, 70)))
  assert distribution.shape == (10,)
  assert float(distribution.sum()) == pytest.approx(1.0, abs=1e-5)
  assert (distribution >= 0).all()
