"""Non-local single-image dehazing (Berman, Treibitz & Avidan, CVPR 2016).

Scattering model: I = J t + A (1 - t). The colours of a haze-free image form a
few hundred tight clusters; under haze every cluster spreads along a line
through the air-light A (a haze-line), and a pixel's distance from A along its
line is proportional to its transmission t. Steps:

1. radiometric linearisation I <- I^gamma (and A likewise);
2. I_A = I - A in spherical coordinates (radius r, direction);
3. haze-lines: the nearest of ~1000 fixed directions (`sphere.fibonacci_sphere`)
   to each pixel's direction, found with a k-d tree;
4. initial transmission r / r_max(line), raised to the lower bound
   1 - min_c(I_c / A_c) that keeps the recovered radiance non-negative;
5. regularisation: weighted least squares with per-pixel reliability weights
   and edge-aware smoothness weights 1 / (|I(x) - I(y)|^2 + eps), solved by
   conjugate gradients with a multigrid preconditioner (linear time);
6. recovery J = (I - A) / max(t, t_min) + A, and back through 1 / gamma.
"""

from __future__ import annotations

from typing import Optional, Tuple

import gin
import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg
from scipy.spatial import cKDTree

from data_prep import airlight as airlight_lib
from data_prep import sphere

NUM_HAZE_LINES = 1000
# Lines with fewer pixels rarely contain a haze-free pixel, so their r_max (and
# the transmission derived from it) is less trustworthy.
_MIN_LINE_PIXELS = 50
# A line whose initial transmissions vary a lot mixes haze-free colours of
# different brightness (the prior's failure case); its pixels get less weight
# (Berman et al. divide the data term by the line's variance the same way).
_MIN_LINE_SPREAD = 0.1
_MIN_WEIGHT = 1e-3     # Keeps every pixel in the data term (well-posed system).
_EDGE_EPS = 1e-3       # Smoothness weight 1 / (|dI|^2 + eps): at most 1000.
_COARSEST = 4096       # Multigrid levels stop at this many unknowns.


def haze_lines(directions: np.ndarray, n: int = NUM_HAZE_LINES) -> np.ndarray:
  """Index of the nearest tessellation direction for each unit vector [N, 3]."""
  tree = cKDTree(sphere.fibonacci_sphere(n))
  _, index = tree.query(directions, k=1, workers=-1)
  return index


def _reliability(t_init: np.ndarray, lines: np.ndarray, n: int) -> np.ndarray:
  """Per-pixel data weight in (0, 1] from its haze-line's size and spread."""
  count = np.bincount(lines, minlength=n).astype(np.float64)
  total = np.bincount(lines, t_init, minlength=n)
  square = np.bincount(lines, t_init * t_init, minlength=n)
  mean = total / np.maximum(count, 1.0)
  spread = np.sqrt(np.maximum(square / np.maximum(count, 1.0) - mean * mean,
                              0.0))
  spread_factor = (_MIN_LINE_SPREAD / np.maximum(spread, _MIN_LINE_SPREAD)) ** 2
  weight = np.minimum(1.0, count / _MIN_LINE_PIXELS) * spread_factor
  return np.maximum(weight[lines], _MIN_WEIGHT)


def _smoothness_matrix(image: np.ndarray, lam: float) -> sparse.csr_matrix:
  """lam * graph Laplacian of the 4-neighbour grid, edge-aware weights."""
  height, width = image.shape[:2]
  index = np.arange(height * width).reshape(height, width)
  rows, cols, vals = [], [], []
  for a, b, da in ((index[:, :-1], index[:, 1:], image[:, :-1] - image[:, 1:]),
                   (index[:-1, :], index[1:, :], image[:-1, :] - image[1:, :])):
    weight = lam / (np.sum(da.astype(np.float64) ** 2, axis=-1) + _EDGE_EPS)
    rows += [a.ravel(), b.ravel()]
    cols += [b.ravel(), a.ravel()]
    vals += [-weight.ravel(), -weight.ravel()]
  rows, cols, vals = (np.concatenate(x) for x in (rows, cols, vals))
  off = sparse.csr_matrix((vals, (rows, cols)), shape=(index.size, index.size))
  degree = -np.asarray(off.sum(axis=1)).ravel()
  return (off + sparse.diags(degree)).tocsr()


class _Multigrid:
  """Aggregation multigrid V-cycle (2x2 cells, Galerkin coarse matrices).

  Used as the CG preconditioner: the work per cycle is linear in the unknowns
  and the iteration count hardly depends on the image size, which keeps the
  whole solve linear (a plain Jacobi-preconditioned CG needs more iterations
  on larger images, a sparse LU has superlinear fill-in).
  """

  def __init__(self, matrix: sparse.csr_matrix, height: int, width: int):
    self.matrices, self.prolongations, self.inv_diags = [matrix], [], []
    while matrix.shape[0] > _COARSEST and min(height, width) > 1:
      ch, cw = (height + 1) // 2, (width + 1) // 2
      cells = ((np.arange(height)[:, None] // 2) * cw
               + np.arange(width)[None, :] // 2).ravel()
      prolong = sparse.csr_matrix(
          (np.ones(cells.size), (np.arange(cells.size), cells)),
          shape=(cells.size, ch * cw))
      self.inv_diags.append(1.0 / matrix.diagonal())
      self.prolongations.append(prolong)
      matrix = (prolong.T @ matrix @ prolong).tocsr()
      self.matrices.append(matrix)
      height, width = ch, cw
    self.coarse = sparse_linalg.splu(matrix.tocsc())

  def cycle(self, rhs: np.ndarray, level: int = 0) -> np.ndarray:
    if level == len(self.prolongations):
      return self.coarse.solve(rhs)
    matrix, inv_diag = self.matrices[level], self.inv_diags[level]
    omega = 0.7  # Damped Jacobi; the same sweeps before and after keep M SPD.
    x = omega * inv_diag * rhs
    prolong = self.prolongations[level]
    x += prolong @ self.cycle(prolong.T @ (rhs - matrix @ x), level + 1)
    x += omega * inv_diag * (rhs - matrix @ x)
    return x


def regularize_transmission(t_init: np.ndarray, weights: np.ndarray,
                            image: np.ndarray, lam: float = 0.1,
                            rtol: float = 1e-3,
                            maxiter: int = 200) -> np.ndarray:
  """argmin_t sum w (t - t_init)^2 + lam sum_edges s_xy (t_x - t_y)^2."""
  height, width = t_init.shape
  data = weights.ravel().astype(np.float64)
  system = (_smoothness_matrix(image, lam) + sparse.diags(data)).tocsr()
  rhs = data * t_init.ravel()
  mg = _Multigrid(system, height, width)
  precond = sparse_linalg.LinearOperator(system.shape, matvec=mg.cycle,
                                         dtype=np.float64)
  solution, _ = sparse_linalg.cg(system, rhs, x0=t_init.ravel().astype(
      np.float64), rtol=rtol, maxiter=maxiter, M=precond)
  return solution.reshape(height, width)


@gin.configurable
def dehaze_params(gamma: float = 1.0, airlight: Optional[list] = None,
                  lam: float = 0.1, t_min: float = 0.1,
                  num_haze_lines: int = NUM_HAZE_LINES) -> dict:
  """Settings of `nonlocal_dehaze` for prep-targets, bindable with gin.

  E.g. `dehaze_params.gamma = 1.5`. Returns plain JSON-serialisable values.
  """
  return dict(gamma=gamma, airlight=None if airlight is None else
              [float(a) for a in airlight], lam=lam, t_min=t_min,
              num_haze_lines=num_haze_lines)


def nonlocal_dehaze(image: np.ndarray, airlight: Optional[np.ndarray] = None,
                    gamma: float = 1.0, lam: float = 0.1,
                    t_min: float = 0.1,
                    num_haze_lines: int = NUM_HAZE_LINES
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Non-local dehazing of a float RGB image in [0, 1].

  Args:
    image: float array [height, width, 3] in [0, 1].
    airlight: RGB air-light in the image's (non-linear) values; estimated with
      `estimate_airlight` on the linearised image when None.
    gamma: radiometric exponent; the model is applied to image ** gamma.
    lam: weight of the smoothness term (the paper's lambda, 0.1).
    t_min: transmission floor used for the recovery.
    num_haze_lines: directions tessellating the sphere.

  Returns:
    (dehazed float32 [h, w, 3] in [0, 1], transmission float32 [h, w] in
    (0, 1], airlight float32 [3] in the image's values).
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [h, w, 3], got {image.shape}")
  height, width = image.shape[:2]
  linear = np.power(np.clip(image, 0.0, 1.0), gamma, dtype=np.float32)
  if airlight is None:
    air = airlight_lib.estimate_airlight(linear).astype(np.float64)
  else:
    air = np.power(np.asarray(airlight, dtype=np.float64).reshape(3), gamma)
  air = np.maximum(air, 1e-3)

  pixels = linear.reshape(-1, 3).astype(np.float64)
  offset = pixels - air
  radius = np.sqrt(np.sum(offset * offset, axis=1))
  directions = offset / np.maximum(radius, 1e-9)[:, None]
  lines = haze_lines(directions, num_haze_lines)
  max_radius = ndimage.maximum(radius, labels=lines,
                               index=np.arange(num_haze_lines))
  t_init = radius / np.maximum(max_radius[lines], 1e-9)
  # Lower bound: J >= 0 in every channel needs t >= 1 - I_c / A_c.
  lower = 1.0 - np.min(pixels / air, axis=1)
  t_init = np.clip(np.maximum(t_init, lower), 0.0, 1.0)

  weights = _reliability(t_init, lines, num_haze_lines)
  t = regularize_transmission(t_init.reshape(height, width),
                              weights.reshape(height, width), linear, lam)
  t = np.clip(t, np.maximum(lower.reshape(height, width), t_min), 1.0)

  dehazed = (linear - air) / t[..., None] + air
  dehazed = np.power(np.clip(dehazed, 0.0, 1.0), 1.0 / gamma)
  return (dehazed.astype(np.float32), t.astype(np.float32),
          np.power(air, 1.0 / gamma).astype(np.float32))
