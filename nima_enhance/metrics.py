"""NIMA metrics: EMD (eq. 2), mean/std score, and the Table 1 metrics.

Per-example functions are TensorFlow ops (usable in graphs and losses); the
Table 1 metrics over a whole split are computed by `RatingMetrics`, a streaming
accumulator that takes batches and computes LCC, SRCC, two-class accuracy and
EMD(r=1) at the end (rank correlation needs all scores, so it keeps the mean
scores: two floats per image, 2 MB for all of AVA).
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf

from nima_enhance.data.ava import NUM_BUCKETS

# numpy, not a tf constant: creating tensors at import would initialize the
# TF runtime before a binary can configure devices.
SCORES = np.arange(1, NUM_BUCKETS + 1, dtype=np.float32)
# AVA's two-class protocol: an image is "high quality" when its mean score is
# above 5 (Murray et al.; the paper's Table 1 accuracy column).
TWO_CLASS_THRESHOLD = 5.0


def emd(p, q, r: float = 2.0) -> tf.Tensor:
  """Normalized earth mover's distance of eq. 2, per example.

  EMD(p, q) = ((1/N) sum_k |CDF_p(k) - CDF_q(k)|^r)^(1/r).

  Args:
    p: [..., N] probability mass functions (ground truth).
    q: [..., N] probability mass functions (predicted), same total mass.
    r: the norm; 2 for training (paper), 1 for Table 1.

  Returns:
    [...] tensor of distances.
  """
  p = tf.convert_to_tensor(p, tf.float32)
  q = tf.cast(tf.convert_to_tensor(q), p.dtype)
  cdf_diff = tf.abs(tf.cumsum(p, axis=-1) - tf.cumsum(q, axis=-1))
  num = tf.cast(tf.shape(p)[-1], p.dtype)
  if r == 1:
    return tf.reduce_sum(cdf_diff, axis=-1) / num
  mean_power = tf.reduce_sum(tf.pow(cdf_diff, r), axis=-1) / num
  if r == 2:
    # sqrt has an infinite derivative at 0; the epsilon keeps gradients finite
    # when prediction equals target exactly.
    return tf.sqrt(mean_power + 1e-12)
  return tf.pow(mean_power + 1e-12, 1.0 / r)


def mean_score(probs) -> tf.Tensor:
  """Mean score sum_i s_i p_i with s_i = 1..10, per example: [..., 10] -> [...]."""
  probs = tf.convert_to_tensor(probs)
  return tf.reduce_sum(probs * tf.constant(SCORES, probs.dtype), axis=-1)


def std_score(probs) -> tf.Tensor:
  """Standard deviation of the score distribution, per example."""
  probs = tf.convert_to_tensor(probs)
  scores = tf.constant(SCORES, probs.dtype)
  mean = mean_score(probs)[..., None]
  variance = tf.reduce_sum(probs * tf.square(scores - mean), axis=-1)
  return tf.sqrt(tf.maximum(variance, 0.0))


def lcc(x, y) -> float:
  """Pearson linear correlation coefficient of two 1-D arrays."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  xc, yc = x - x.mean(), y - y.mean()
  denom = np.sqrt((xc * xc).sum() * (yc * yc).sum())
  return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
  """Ranks 1..n with ties given their average rank (as Spearman requires)."""
  order = np.argsort(x, kind="mergesort")
  sorted_x = x[order]
  ranks = np.empty(len(x), np.float64)
  # Boundaries of runs of equal values.
  starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
  ends = np.r_[starts[1:], len(x)]
  for start, end in zip(starts, ends):
    ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
  return ranks


def srcc(x, y) -> float:
  """Spearman rank correlation coefficient (ties get average ranks)."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  return lcc(_average_ranks(x), _average_ranks(y))


def two_class_accuracy(true_mean, pred_mean,
                       threshold: float = TWO_CLASS_THRESHOLD) -> float:
  """Fraction of images put on the same side of `threshold` (low/high)."""
  true_mean = np.asarray(true_mean)
  pred_mean = np.asarray(pred_mean)
  return float(np.mean((true_mean > threshold) == (pred_mean > threshold)))


class RatingMetrics:
  """Streaming Table 1 metrics over a dataset.

  Call `update(true_probs, pred_probs)` per batch, then `result()`.
  """

  def __init__(self):
    self._true_means: list[np.ndarray] = []
    self._pred_means: list[np.ndarray] = []
    self._emd1_sum = 0.0
    self._emd2_sum = 0.0
    self._count = 0

  def update(self, true_probs, pred_probs) -> None:
    true_probs = tf.convert_to_tensor(true_probs, tf.float32)
    pred_probs = tf.convert_to_tensor(pred_probs, tf.float32)
    self._true_means.append(mean_score(true_probs).numpy())
    self._pred_means.append(mean_score(pred_probs).numpy())
    self._emd1_sum += float(tf.reduce_sum(emd(true_probs, pred_probs, r=1)))
    self._emd2_sum += float(tf.reduce_sum(emd(true_probs, pred_probs, r=2)))
    self._count += int(true_probs.shape[0])

  @property
  def count(self) -> int:
    return self._count

  def result(self) -> Dict[str, float]:
    """Accuracy, LCC, SRCC, EMD (r=1), plus EMD (r=2) and the count."""
    if self._count == 0:
      raise ValueError("no examples were evaluated")
    true_mean = np.concatenate(self._true_means)
    pred_mean = np.concatenate(self._pred_means)
    return {
        "accuracy": two_class_accuracy(true_mean, pred_mean),
        "lcc": lcc(true_mean, pred_mean),
        "srcc": srcc(true_mean, pred_mean),
        "emd": self._emd1_sum / self._count,
        "emd_r2": self._emd2_sum / self._count,
        "num_images": self._count,
        "mean_predicted_score": float(pred_mean.mean()),
        "mean_true_score": float(true_mean.mean()),
    }
