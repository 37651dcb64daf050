"""The two-reference band of the fast local Laplacian (`data_prep.llf_bands`)."""

import numpy as np
import pytest

from data_prep import llf_bands
from data_prep import pyramid


@pytest.mark.parametrize("k", [6, 30])  # Row-gather and 2-D gather forms.
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 6), (16, 9), (31, 32)])
def test_interpolated_band_matches_dense_interpolation(shape, k):
  """The two-reference band equals sum_j hat(pos - j) (G^j - up(G_{+1}^j))."""
  rng = np.random.default_rng(1)
  stack = rng.random((k,) + shape).astype(np.float32)
  reduced = pyramid.downsample(stack)
  position = rng.uniform(0, k - 1, shape).astype(np.float32)
  position.flat[0] = k - 1  # The top reference exactly.
  dense = stack - pyramid.upsample(reduced, shape)
  weight = np.maximum(0.0, 1.0 - np.abs(position[None] - np.arange(k)[:, None,
                                                                     None]))
  expected = (dense * weight).sum(axis=0)
  j0, frac = llf_bands._bracket(position, k)
  flat = stack.reshape(k, -1)
  pixels = np.arange(flat.shape[1])
  lower = flat[j0.reshape(-1), pixels].reshape(shape)
  upper = flat[j0.reshape(-1) + 1, pixels].reshape(shape)
  band = llf_bands._interpolated_band(lower, upper, reduced, j0, frac)
  np.testing.assert_allclose(band, expected, atol=1e-6)
