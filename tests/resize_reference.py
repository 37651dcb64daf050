"""numpy references for the resize rule's tests (test_image_resize, test_ava)."""

import numpy as np


def np_bilinear(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
  """numpy bilinear resampling along one axis (half-pixel centres, edges
  clamped): the reference for tf.image.resize(method="bilinear") and the
  rule's plain bilinear."""
  n_in = x.shape[axis]
  src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
  lo = np.floor(src).astype(int)
  hi = np.minimum(lo + 1, n_in - 1)
  w = (src - lo).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
  return np.take(x, lo, axis) * (1 - w) + np.take(x, hi, axis) * w
