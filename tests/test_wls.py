"""Weighted least squares on the pixel grid: against an independent sparse solve."""

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from data_prep import wls


def _reference(data, wx, wy, target):
  """(diag(data) + sum_edges w (e_x - e_y)(e_x - e_y)^T) t = data * target."""
  h, w = data.shape
  index = np.arange(h * w).reshape(h, w)
  pairs = [(index[:, :-1].ravel(), index[:, 1:].ravel(), wx.ravel()),
           (index[:-1].ravel(), index[1:].ravel(), wy.ravel())]
  matrix = sparse.diags(data.ravel().astype(np.float64)).tolil()
  for a, b, weight in pairs:
    for i, j, v in zip(a, b, weight.astype(np.float64)):
      matrix[i, i] += v
      matrix[j, j] += v
      matrix[i, j] -= v
      matrix[j, i] -= v
  return sparse_linalg.spsolve(matrix.tocsc(), (data * target).ravel()
                               ).reshape(h, w)


@pytest.mark.parametrize("shape", [(9, 13), (70, 81)])  # 81 x 70 > coarsest
def test_solve_matches_sparse_reference(shape):
  rng = np.random.default_rng(0)
  data = rng.uniform(0.01, 1.0, shape)
  wx = rng.uniform(0.0, 5.0, (shape[0], shape[1] - 1))
  wy = rng.uniform(0.0, 5.0, (shape[0] - 1, shape[1]))
  target = rng.random(shape)
  expected = _reference(data, wx, wy, target)
  got = wls.solve(data.copy(), wx, wy, target.copy(), rtol=1e-10, maxiter=500)
  np.testing.assert_allclose(got, expected, atol=1e-7)
  # float32 at the default tolerance: the residual-limited answer.
  got32 = wls.solve(data.astype(np.float32), wx.astype(np.float32),
                    wy.astype(np.float32), target.astype(np.float32))
  assert got32.dtype == np.float32
  assert np.abs(got32 - expected).mean() < 2e-2 * np.abs(expected).mean()


def test_edge_weights_by_strips_match_direct_formula():
  rng = np.random.default_rng(1)
  image = rng.random((37, 23, 3)).astype(np.float32)
  wx, wy = wls.edge_weights(lambda r0, r1: image[r0:r1], (37, 23), lam=0.1)
  dx = np.sum((image[:, :-1] - image[:, 1:]) ** 2, axis=-1)
  dy = np.sum((image[:-1] - image[1:]) ** 2, axis=-1)
  np.testing.assert_allclose(wx, 0.1 / (dx + wls.EDGE_EPS), rtol=1e-5)
  np.testing.assert_allclose(wy, 0.1 / (dy + wls.EDGE_EPS), rtol=1e-5)


def test_strips_cover_rows_once():
  covered = np.concatenate([np.arange(a, b) for a, b in wls.strips(101, 7, 50)])
  np.testing.assert_array_equal(covered, np.arange(101))
