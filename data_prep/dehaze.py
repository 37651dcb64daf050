"""Non-local single-image dehazing (Berman, Treibitz & Avidan, CVPR 2016).

Scattering model: I = J t + A (1 - t). The colours of a haze-free image form a
few hundred tight clusters; under haze every cluster spreads along a line
through the air-light A (a haze-line), and a pixel's distance from A along its
line is proportional to its transmission t. Steps:

1. radiometric linearisation I <- I^gamma (and A likewise);
2. I_A = I - A in spherical coordinates (radius r, direction);
3. haze-lines: the nearest of ~1000 fixed directions (`sphere.fibonacci_sphere`)
   to each pixel's direction: exact, through a (polar, azimuth) lookup grid
   that lists the few candidate directions of each cell;
4. initial transmission r / r_max(line), raised to the lower bound
   1 - min_c(I_c / A_c) that keeps the recovered radiance non-negative;
5. regularisation: weighted least squares with per-pixel reliability weights
   and edge-aware smoothness weights 1 / (|I(x) - I(y)|^2 + eps), solved by
   conjugate gradients with an aggregation-multigrid preconditioner on the
   5-point stencil (float32 array slices, linear time, relative residual
   1e-2: the smooth transmission changes by ~3e-4 on average against a tight
   solve);
6. recovery J = (I - A) / max(t, t_min) + A, and back through 1 / gamma.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import gin
import numpy as np
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
_BLOCK_ELEMENTS = 1 << 15  # Row block of the stencil products.


@functools.lru_cache(maxsize=4)
def _lookup_table(n: int):
  """Candidate nearest directions per cell of a (polar, azimuth) grid.

  A cell of great-circle radius R around its centre c holds a direction x
  only if |x - c| <= R, so x's nearest point p* satisfies
  |c - p*| <= |x - p*| + R <= |x - q| + R <= |c - q| + 2 R with q the nearest
  point to c: every point within d_min(c) + 2 R of the centre is a candidate,
  and the candidate sets are exact (most cells have a single one).
  """
  points = sphere.fibonacci_sphere(n)
  step = np.sqrt(4.0 * np.pi / n) / 8.0
  n_polar = int(np.ceil(np.pi / step))
  n_azimuth = 2 * n_polar
  d_polar, d_azimuth = np.pi / n_polar, 2.0 * np.pi / n_azimuth
  polar = (np.arange(n_polar) + 0.5) * d_polar
  azimuth = -np.pi + (np.arange(n_azimuth) + 0.5) * d_azimuth
  # Largest sin(polar) inside each row of cells bounds its azimuthal extent.
  lo, hi = polar - d_polar / 2, polar + d_polar / 2
  sin_max = np.where((lo < np.pi / 2) & (hi > np.pi / 2), 1.0,
                     np.maximum(np.sin(lo), np.sin(hi)))
  radius = np.repeat(d_polar / 2 + sin_max * d_azimuth / 2, n_azimuth)
  p, a = np.meshgrid(polar, azimuth, indexing="ij")
  centres = np.stack([np.sin(p) * np.cos(a), np.sin(p) * np.sin(a), np.cos(p)],
                     axis=-1).reshape(-1, 3)
  k = 16
  dist, index = cKDTree(points).query(centres, k=k)
  bound = dist[:, :1] + 2.0 * radius[:, None] + 1e-9
  assert np.all(dist[:, -1] > bound[:, 0]), "lookup table needs more neighbours"
  candidates = dist <= bound
  width = int(candidates.sum(axis=1).max())
  table = np.where(candidates[:, :width], index[:, :width], index[:, :1])
  return (points, table.astype(np.int32),
          candidates.sum(axis=1) == 1, n_polar, n_azimuth)


def haze_lines(directions: np.ndarray, n: int = NUM_HAZE_LINES) -> np.ndarray:
  """Index of the nearest tessellation direction for each unit vector [N, 3].

  Exact nearest neighbour (largest dot product) through `_lookup_table`: the
  cell of each direction gives one candidate for most pixels and a handful
  near Voronoi borders.
  """
  points, table, single, n_polar, n_azimuth = _lookup_table(n)
  directions = np.asarray(directions, dtype=np.float32)
  polar = np.arccos(np.clip(directions[:, 2], -1.0, 1.0))
  azimuth = np.arctan2(directions[:, 1], directions[:, 0])
  row = np.minimum((polar * (n_polar / np.pi)).astype(np.int32), n_polar - 1)
  col = ((azimuth + np.pi) * (n_azimuth / (2 * np.pi))).astype(np.int32)
  cell = row * n_azimuth + np.clip(col, 0, n_azimuth - 1)
  index = table[cell, 0]
  ambiguous = np.nonzero(~single[cell])[0]
  if ambiguous.size:
    options = table[cell[ambiguous]]                      # [M, C]
    dots = np.einsum("mcj,mj->mc", points[options],
                     directions[ambiguous].astype(np.float64))
    index[ambiguous] = options[np.arange(ambiguous.size), np.argmax(dots, 1)]
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


class _Grid:
  """The WLS matrix as a 5-point stencil: data + lam * weighted grid Laplacian.

  `data` [h, w] is the diagonal data term, `wx` [h, w-1] and `wy` [h-1, w] the
  weights of the horizontal and vertical edges. Products run as array slices
  (no sparse index arrays, float32 when the tolerance allows).
  """

  def __init__(self, data: np.ndarray, wx: np.ndarray, wy: np.ndarray):
    self.data, self.wx, self.wy = data, wx, wy
    diag = data.copy()
    diag[:, :-1] += wx
    diag[:, 1:] += wx
    diag[:-1] += wy
    diag[1:] += wy
    self.diag = diag
    self.shape = data.shape

  def apply(self, x: np.ndarray, rhs: Optional[np.ndarray] = None
            ) -> np.ndarray:
    """A x, or rhs - A x, computed in blocks of rows.

    Row blocks of ~2^15 samples keep the temporaries in cache: on large
    images the product is memory-bound, and one streaming pass over each
    array instead of one per term keeps its cost linear in the size.
    """
    height, width = self.shape
    out = np.empty_like(x)
    rows = max(4, _BLOCK_ELEMENTS // max(width, 1))
    for r0 in range(0, height, rows):
      r1 = min(height, r0 + rows)
      xb = x[r0:r1]
      y = self.diag[r0:r1] * xb
      t = self.wx[r0:r1] * xb[:, 1:]
      y[:, :-1] -= t
      np.multiply(self.wx[r0:r1], xb[:, :-1], out=t)
      y[:, 1:] -= t
      below = min(r1, height - 1)  # Rows r < height - 1 couple to r + 1.
      if below > r0:
        y[:below - r0] -= self.wy[r0:below] * x[r0 + 1:below + 1]
      above = max(r0, 1)           # Rows r >= 1 couple to r - 1.
      if r1 > above:
        y[above - r0:] -= self.wy[above - 1:r1 - 1] * x[above - 1:r1 - 1]
      if rhs is None:
        out[r0:r1] = y
      else:
        np.subtract(rhs[r0:r1], y, out=out[r0:r1])
    return out

  def matvec(self, x: np.ndarray) -> np.ndarray:
    return self.apply(x)

  def coarsen(self) -> "_Grid":
    """Galerkin P^T A P for 2x2 aggregates: sums of data and crossing edges."""
    h, w = self.shape
    h2, w2 = h + h % 2, w + w % 2
    data = _pad(self.data, h2, w2)
    wx, wy = _pad(self.wx, h2, w2 - 1), _pad(self.wy, h2 - 1, w2)
    return _Grid(data[0::2, 0::2] + data[1::2, 0::2] + data[0::2, 1::2]
                 + data[1::2, 1::2],
                 wx[0::2, 1::2] + wx[1::2, 1::2],
                 wy[1::2, 0::2] + wy[1::2, 1::2])

  def to_sparse(self) -> sparse.csc_matrix:
    h, w = self.shape
    index = np.arange(h * w).reshape(h, w)
    rows = np.concatenate([index[:, :-1].ravel(), index[:-1].ravel()])
    cols = np.concatenate([index[:, 1:].ravel(), index[1:].ravel()])
    vals = -np.concatenate([self.wx.ravel(), self.wy.ravel()]).astype(
        np.float64)
    off = sparse.coo_matrix((vals, (rows, cols)), shape=(h * w, h * w))
    return (off + off.T + sparse.diags(self.diag.ravel().astype(np.float64))
            ).tocsc()


def _pad(array: np.ndarray, height: int, width: int) -> np.ndarray:
  if array.shape == (height, width):
    return array
  out = np.zeros((height, width), array.dtype)
  out[:array.shape[0], :array.shape[1]] = array
  return out


def _restrict(r: np.ndarray) -> np.ndarray:
  h, w = r.shape
  r = _pad(r, h + h % 2, w + w % 2)
  return r[0::2, 0::2] + r[1::2, 0::2] + r[0::2, 1::2] + r[1::2, 1::2]


def _add_prolonged(x: np.ndarray, coarse: np.ndarray) -> None:
  """x += P coarse: each coarse value added to its 2x2 cell (in place)."""
  h, w = x.shape
  he, we = h - h % 2, w - w % 2
  cells = x[:he, :we].reshape(he // 2, 2, we // 2, 2)
  cells += coarse[:he // 2, :we // 2, None, None].transpose(0, 2, 1, 3)
  if w % 2:
    x[:he, -1] += np.repeat(coarse[:he // 2, -1], 2)
  if h % 2:
    x[-1, :we] += np.repeat(coarse[-1, :we // 2], 2)
  if h % 2 and w % 2:
    x[-1, -1] += coarse[-1, -1]


class _Multigrid:
  """Aggregation multigrid V-cycle (2x2 cells, Galerkin coarse operators).

  Used as the CG preconditioner: the work per cycle is linear in the unknowns
  and the iteration count hardly depends on the image size, which keeps the
  whole solve linear (a plain Jacobi-preconditioned CG needs more iterations
  on larger images, a sparse LU has superlinear fill-in). Aggregating 2x2
  cells of a 5-point stencil gives a 5-point stencil again, so every level is
  a `_Grid`; the coarsest is factorised once.
  """

  def __init__(self, grid: _Grid):
    self.grids = [grid]
    while grid.data.size > _COARSEST and min(grid.shape) > 1:
      grid = grid.coarsen()
      self.grids.append(grid)
    # omega D^-1 of damped Jacobi (omega = 0.7).
    self.steps = [g.diag.dtype.type(0.7) / g.diag for g in self.grids]
    self.coarse = sparse_linalg.splu(grid.to_sparse())

  def cycle(self, rhs: np.ndarray, level: int = 0) -> np.ndarray:
    if level == len(self.grids) - 1:
      return self.coarse.solve(rhs.ravel().astype(np.float64)).reshape(
          rhs.shape).astype(rhs.dtype)
    grid, step = self.grids[level], self.steps[level]
    x = step * rhs  # Damped Jacobi, the same sweep before and after.
    residual = grid.apply(x, rhs)
    _add_prolonged(x, self.cycle(_restrict(residual), level + 1))
    residual = grid.apply(x, rhs)
    residual *= step
    x += residual
    return x


def _pcg(grid: _Grid, rhs: np.ndarray, x: np.ndarray, precond, rtol: float,
         maxiter: int) -> np.ndarray:
  """Preconditioned conjugate gradients on 2-D arrays (no copies to 1-D)."""
  residual = grid.apply(x, rhs)
  limit = rtol * float(np.sqrt(np.vdot(rhs, rhs)))
  z = precond(residual)
  direction = z.copy()
  rz = float(np.vdot(residual, z))
  for _ in range(maxiter):
    if float(np.sqrt(np.vdot(residual, residual))) <= limit or rz == 0.0:
      break
    product = grid.matvec(direction)
    step = rz / float(np.vdot(direction, product))
    x += x.dtype.type(step) * direction
    residual -= residual.dtype.type(step) * product
    z = precond(residual)
    rz_new = float(np.vdot(residual, z))
    direction *= direction.dtype.type(rz_new / rz)
    direction += z
    rz = rz_new
  return x


def regularize_transmission(t_init: np.ndarray, weights: np.ndarray,
                            image: np.ndarray, lam: float = 0.1,
                            rtol: float = 1e-2,
                            maxiter: int = 200) -> np.ndarray:
  """argmin_t sum w (t - t_init)^2 + lam sum_edges s_xy (t_x - t_y)^2.

  s_xy = 1 / (|I(x) - I(y)|^2 + eps). Solved by multigrid-preconditioned CG from
  t_init; the default relative residual 1e-2 changes the (smooth) transmission
  by ~3e-4 on average against a 1e-6 solve. Float32 unless rtol < 1e-4.
  """
  dtype = np.float32 if rtol >= 1e-4 else np.float64
  image = np.asarray(image, dtype=dtype)
  dx = image[:, :-1] - image[:, 1:]
  dy = image[:-1] - image[1:]
  wx = dtype(lam) / (np.einsum("ijk,ijk->ij", dx, dx) + dtype(_EDGE_EPS))
  wy = dtype(lam) / (np.einsum("ijk,ijk->ij", dy, dy) + dtype(_EDGE_EPS))
  data = np.asarray(weights, dtype=dtype)
  grid = _Grid(data, wx, wy)
  t_init = np.asarray(t_init, dtype=dtype)
  solution = _pcg(grid, data * t_init, t_init.copy(), _Multigrid(grid).cycle,
                  rtol, maxiter)
  return solution


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

  pixels = linear.reshape(-1, 3)
  air32 = air.astype(np.float32)
  offset = pixels - air32
  radius = np.sqrt(np.einsum("ij,ij->i", offset, offset))
  directions = offset / np.maximum(radius, np.float32(1e-9))[:, None]
  lines = haze_lines(directions, num_haze_lines)
  max_radius = np.zeros(num_haze_lines, dtype=np.float32)
  np.maximum.at(max_radius, lines, radius)
  t_init = radius / np.maximum(max_radius, np.float32(1e-9))[lines]
  # Lower bound: J >= 0 in every channel needs t >= 1 - I_c / A_c.
  lower = 1.0 - np.min(pixels / air32, axis=1)
  t_init = np.clip(np.maximum(t_init, lower), 0.0, 1.0)

  weights = _reliability(t_init, lines, num_haze_lines)
  t = regularize_transmission(t_init.reshape(height, width),
                              weights.reshape(height, width), linear, lam)
  t = np.clip(t, np.maximum(lower.reshape(height, width), t_min), 1.0)

  t = t.astype(np.float32)
  dehazed = (linear - air32) / t[..., None] + air32
  np.clip(dehazed, 0.0, 1.0, out=dehazed)
  if gamma != 1.0:
    dehazed = np.power(dehazed, np.float32(1.0 / gamma))
  return (dehazed.astype(np.float32), t,
          np.power(air, 1.0 / gamma).astype(np.float32))
