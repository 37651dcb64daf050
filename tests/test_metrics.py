"""Metrics and losses against independent references (scipy, closed forms)."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from nima_enhance import losses
from nima_enhance import metrics


def _random_pmfs(rng, n):
  x = rng.gamma(1.0, size=(n, 10))
  return (x / x.sum(axis=1, keepdims=True)).astype(np.float32)


def test_emd_hand_computed():
  p = np.zeros(10, np.float32)
  q = np.zeros(10, np.float32)
  p[0] = 1.0  # all mass on score 1
  q[2] = 1.0  # all mass on score 3
  # CDFs differ by 1 at k = 1, 2 and agree from k = 3 on.
  assert float(metrics.emd(p, q, r=1)) == pytest.approx(2 / 10, abs=1e-6)
  assert float(metrics.emd(p, q, r=2)) == pytest.approx(np.sqrt(2 / 10),
                                                       abs=1e-6)
  assert float(metrics.emd(p, q, r=3)) == pytest.approx((2 / 10)**(1 / 3),
                                                       abs=1e-5)
  assert float(metrics.emd(p, p, r=2)) == pytest.approx(0.0, abs=1e-5)


def test_emd_r1_matches_scipy_wasserstein():
  rng = np.random.RandomState(0)
  p, q = _random_pmfs(rng, 20), _random_pmfs(rng, 20)
  ours = metrics.emd(p, q, r=1).numpy()
  scores = np.arange(1, 11)
  for i in range(20):
    # Buckets are 1 apart, so Wasserstein-1 = sum |CDF diff| = N * EMD_r1.
    reference = stats.wasserstein_distance(scores, scores, p[i], q[i]) / 10
    assert ours[i] == pytest.approx(reference, rel=1e-5, abs=1e-7)


def test_emd_r2_matches_numpy_definition():
  rng = np.random.RandomState(1)
  p, q = _random_pmfs(rng, 8), _random_pmfs(rng, 8)
  cdf = np.cumsum(p, 1) - np.cumsum(q, 1)
  reference = np.sqrt(np.mean(cdf**2, axis=1))
  np.testing.assert_allclose(metrics.emd(p, q, r=2).numpy(), reference,
                             rtol=1e-5, atol=1e-6)


def test_emd_loss_is_the_paper_r2_emd():
  """The training loss is EMD with r = 2 (numpy definition), not r = 1."""
  rng = np.random.RandomState(7)
  p, q = _random_pmfs(rng, 8), _random_pmfs(rng, 8)
  cdf = np.cumsum(p, axis=1) - np.cumsum(q, axis=1)
  expected = np.sqrt(np.mean(cdf.astype(np.float64) ** 2, axis=1))
  np.testing.assert_allclose(losses.emd_loss(p, q).numpy(), expected,
                             rtol=1e-5)


def test_emd_loss_gradient_is_finite_at_the_target():
  p = tf.constant(_random_pmfs(np.random.RandomState(2), 4))
  logits = tf.Variable(tf.math.log(p))
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(losses.emd_loss(p, tf.nn.softmax(logits)))
  grad = tape.gradient(loss, logits)
  assert np.all(np.isfinite(grad.numpy()))
  assert float(loss) < 1e-4


def test_mean_and_std_score_closed_form():
  probs = np.zeros((2, 10), np.float32)
  probs[0, [0, 9]] = 0.5  # scores 1 and 10: mean 5.5, std 4.5
  probs[1, 4] = 1.0  # all 5: mean 5, std 0
  np.testing.assert_allclose(metrics.mean_score(probs).numpy(), [5.5, 5.0],
                             atol=1e-6)
  np.testing.assert_allclose(metrics.std_score(probs).numpy(), [4.5, 0.0],
                             atol=1e-3)


def test_lcc_and_srcc_match_scipy():
  rng = np.random.RandomState(3)
  x = rng.normal(size=200)
  y = 0.5 * x + rng.normal(size=200)
  y_tied = np.round(y)  # ties exercise average ranks
  assert metrics.lcc(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-10)
  assert metrics.srcc(x, y_tied) == pytest.approx(
      stats.spearmanr(x, y_tied)[0], abs=1e-10)


def test_two_class_accuracy_hand_computed():
  true_mean = [4.0, 6.0, 5.5, 3.0]
  pred_mean = [4.5, 5.1, 4.9, 6.0]
  # threshold 5: true high = F T T F, pred high = F T F T -> 2 of 4 agree.
  assert metrics.two_class_accuracy(true_mean, pred_mean) == 0.5


def test_streaming_metrics_equal_one_shot():
  rng = np.random.RandomState(4)
  p, q = _random_pmfs(rng, 50), _random_pmfs(rng, 50)
  streaming = metrics.RatingMetrics()
  for start in range(0, 50, 16):
    streaming.update(p[start:start + 16], q[start:start + 16])
  result = streaming.result()
  true_mean = (p * np.arange(1, 11)).sum(1)
  pred_mean = (q * np.arange(1, 11)).sum(1)
  assert result["num_images"] == 50
  assert result["lcc"] == pytest.approx(stats.pearsonr(true_mean,
                                                       pred_mean)[0], abs=1e-5)
  assert result["srcc"] == pytest.approx(stats.spearmanr(true_mean,
                                                         pred_mean)[0],
                                         abs=1e-5)
  # Independent references: EMD r = 1 is the mean |CDF difference| over the
  # 10 buckets, i.e. scipy's 1-D Wasserstein distance on scores 1..10 / 10;
  # accuracy is the share of images on the same side of 5 (AVA's split).
  scores = np.arange(1, 11)
  emd_ref = np.mean([stats.wasserstein_distance(scores, scores, a, b) / 10
                     for a, b in zip(p, q)])
  assert result["emd"] == pytest.approx(emd_ref, rel=1e-5)
  assert result["accuracy"] == pytest.approx(
      np.mean((true_mean > 5.0) == (pred_mean > 5.0)))
  assert 0.0 < result["accuracy"] < 1.0  # both sides of 5 occur: it can fail


def test_streaming_metrics_refuse_empty():
  with pytest.raises(ValueError):
    metrics.RatingMetrics().result()
