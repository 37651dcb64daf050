"""Edge-aware weighted least squares on a 2-D grid (the dehazing's regulariser).

argmin_t sum_x w_x (t_x - t0_x)^2 + sum_edges s_xy (t_x - t_y)^2 on the 4-connected
pixel grid, with s_xy = lam / (|I(x) - I(y)|^2 + eps). The normal equations are a
5-point stencil (`Grid`: diagonal plus the horizontal and vertical edge weights),
solved by conjugate gradients with an aggregation-multigrid preconditioner.

Memory is a fixed number of float32 values per pixel, whatever the image: the
stencil keeps only its diagonal and the two edge-weight maps (the data term is
folded into the diagonal and dropped once the coarse levels are built), and the
solver works in four full-size vectors (x, residual, search direction, and one
that holds the product, then the preconditioned residual) reused in place;
every product and every V-cycle residual runs in blocks of rows so its
temporaries stay small. About 33 bytes per pixel in all with the coarse
levels, against ~150 for a sparse-matrix solve.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

EDGE_EPS = 1e-3       # Smoothness weight lam / (|dI|^2 + eps): at most 1000 lam.
_COARSEST = 4096      # Multigrid levels stop at this many unknowns.
_BLOCK_ELEMENTS = 1 << 15  # Row block of the stencil products (in cache).
_OMEGA = 0.7          # Damping of the Jacobi smoother.
# Rows of the per-pixel passes (edge weights): about this many pixels a strip.
STRIP_PIXELS = 1 << 18


def strips(height: int, width: int, pixels: int = STRIP_PIXELS):
  """(r0, r1) row ranges of about `pixels` pixels covering [0, height)."""
  rows = max(1, pixels // max(width, 1))
  for r0 in range(0, height, rows):
    yield r0, min(height, r0 + rows)


def edge_weights(source: Callable[[int, int], np.ndarray], shape: tuple,
                 lam: float, dtype=np.float32) -> Tuple[np.ndarray, np.ndarray]:
  """Horizontal [h, w-1] and vertical [h-1, w] weights lam / (|dI|^2 + eps).

  `source(r0, r1)` returns rows [r0, r1) of the guide image [.., w, c]; it is
  read strip by strip (one extra row for the vertical edges), so a caller can
  linearise or convert the image on the fly without a full-size copy.
  """
  height, width = shape
  wx = np.empty((height, max(width - 1, 0)), dtype)
  wy = np.empty((max(height - 1, 0), width), dtype)
  lam, eps = dtype(lam), dtype(EDGE_EPS)
  for r0, r1 in strips(height, width):
    rows = np.asarray(source(r0, min(height, r1 + 1)), dtype)
    dx = rows[:r1 - r0, :-1] - rows[:r1 - r0, 1:]
    wx[r0:r1] = lam / (np.einsum("ijk,ijk->ij", dx, dx) + eps)
    if rows.shape[0] > 1:
      dy = rows[:-1] - rows[1:]
      wy[r0:r0 + dy.shape[0]] = lam / (np.einsum("ijk,ijk->ij", dy, dy) + eps)
  return wx, wy


class Grid:
  """The WLS matrix as a 5-point stencil: data + weighted grid Laplacian.

  `data` [h, w] is the diagonal data term, `wx` [h, w-1] and `wy` [h-1, w] the
  weights of the horizontal and vertical edges. Products run as array slices
  (no sparse index arrays).
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

  def rows(self) -> int:
    """Rows of a block of the products: ~2^15 samples, an even number."""
    return max(4, _BLOCK_ELEMENTS // max(self.shape[1], 1)) // 2 * 2

  def product_rows(self, x: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """(A x)[r0:r1], a new [r1 - r0, w] array, from rows r0 - 1 .. r1 of x."""
    height = self.shape[0]
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
    return y

  def apply(self, x: np.ndarray, rhs: Optional[np.ndarray] = None,
            out: Optional[np.ndarray] = None) -> np.ndarray:
    """A x, or rhs - A x, into `out` (new if None), in blocks of rows.

    Row blocks of ~2^15 samples keep the temporaries in cache: on large
    images the product is memory-bound, and one streaming pass over each
    array instead of one per term keeps its cost linear in the size.
    """
    height = self.shape[0]
    out = np.empty_like(x) if out is None else out
    step = self.rows()
    for r0 in range(0, height, step):
      r1 = min(height, r0 + step)
      y = self.product_rows(x, r0, r1)
      if rhs is None:
        out[r0:r1] = y
      else:
        np.subtract(rhs[r0:r1], y, out=out[r0:r1])
    return out

  def coarsen(self) -> "Grid":
    """Galerkin P^T A P for 2x2 aggregates: sums of data and crossing edges."""
    h, w = self.shape
    h2, w2 = h + h % 2, w + w % 2
    return Grid(_cell_sum(self.data, (h2, w2), ((0, 0), (1, 0), (0, 1), (1, 1))),
                _cell_sum(self.wx, (h2, w2 - 1), ((0, 1), (1, 1))),
                _cell_sum(self.wy, (h2 - 1, w2), ((1, 0), (1, 1))))

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


def _cell_sum(array: np.ndarray, padded: tuple, offsets) -> np.ndarray:
  """sum over (r, c) in offsets of Z[r::2, c::2], Z = `array` zero-padded to
  `padded`, without the padded copy (same sums, same order)."""
  r0, c0 = offsets[0]
  out = np.zeros((len(range(r0, padded[0], 2)), len(range(c0, padded[1], 2))),
                 array.dtype)
  for r, c in offsets:
    part = array[r::2, c::2]
    out[:part.shape[0], :part.shape[1]] += part
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


class Multigrid:
  """Aggregation multigrid V-cycle (2x2 cells, Galerkin coarse operators).

  Used as the CG preconditioner: the work per cycle is linear in the unknowns
  and the iteration count hardly depends on the image size, which keeps the
  whole solve linear (a plain Jacobi-preconditioned CG needs more iterations
  on larger images, a sparse LU has superlinear fill-in). Aggregating 2x2
  cells of a 5-point stencil gives a 5-point stencil again, so every level is
  a `Grid`; the coarsest is factorised once. The data terms are only needed to
  build the coarse levels and are dropped afterwards.
  """

  def __init__(self, grid: Grid):
    self.grids = [grid]
    while grid.data.size > _COARSEST and min(grid.shape) > 1:
      grid = grid.coarsen()
      self.grids.append(grid)
    self.coarse = sparse_linalg.splu(grid.to_sparse())
    for level in self.grids:
      level.data = None

  def _smooth(self, level: int, rhs: np.ndarray, out: np.ndarray) -> None:
    """out = omega D^-1 rhs (damped Jacobi), without a stored D^-1."""
    np.divide(rhs, self.grids[level].diag, out=out)
    out *= out.dtype.type(_OMEGA)

  def cycle(self, rhs: np.ndarray, level: int = 0,
            out: Optional[np.ndarray] = None) -> np.ndarray:
    """One V-cycle for A z = rhs, into `out` (new if None).

    The residuals are never stored whole: the first is restricted to the
    coarse level block by block, the second smoothed and added block by
    block (each block's correction is applied once the next block, which
    reads its last row, has been computed).
    """
    if level == len(self.grids) - 1:
      solution = self.coarse.solve(rhs.ravel().astype(np.float64)).reshape(
          rhs.shape).astype(rhs.dtype)
      if out is None:
        return solution
      out[...] = solution
      return out
    grid = self.grids[level]
    height, width = grid.shape
    step = grid.rows()
    x = np.empty_like(rhs) if out is None else out
    self._smooth(level, rhs, x)  # The same Jacobi sweep before and after.
    coarse = np.empty(((height + 1) // 2, (width + 1) // 2), rhs.dtype)
    for r0 in range(0, height, step):
      r1 = min(height, r0 + step)
      residual = np.subtract(rhs[r0:r1], grid.product_rows(x, r0, r1))
      coarse[r0 // 2:(r1 + 1) // 2] = _restrict(residual)
    _add_prolonged(x, self.cycle(coarse, level + 1))
    pending = None
    for r0 in range(0, height, step):
      r1 = min(height, r0 + step)
      residual = np.subtract(rhs[r0:r1], grid.product_rows(x, r0, r1))
      np.divide(residual, grid.diag[r0:r1], out=residual)
      residual *= residual.dtype.type(_OMEGA)
      if pending is not None:
        x[pending[0]:r0] += pending[1]
      pending = (r0, residual)
    if pending is not None:
      x[pending[0]:] += pending[1]
    return x


def solve(data: np.ndarray, wx: np.ndarray, wy: np.ndarray, x: np.ndarray,
          rtol: float = 1e-2, maxiter: int = 200) -> np.ndarray:
  """Solves (diag(data) + L_w) t = data * x for t, in place in `x`.

  Multigrid-preconditioned conjugate gradients from the initial guess `x`
  (the data term's own target), to a relative residual `rtol`. The solver
  takes `data` over: it is dropped once the coarse levels are built, so a
  caller that passes it without keeping a reference frees its memory.

  Returns:
    `x`, overwritten with the solution.
  """
  grid = Grid(data, wx, wy)
  # residual = rhs - A x0 with rhs = data * x0, by blocks (rhs is not kept).
  residual = np.empty_like(x)
  rhs_norm2 = 0.0
  step = grid.rows()
  for r0 in range(0, grid.shape[0], step):
    r1 = min(grid.shape[0], r0 + step)
    rhs = data[r0:r1] * x[r0:r1]
    rhs_norm2 += float(np.vdot(rhs, rhs))
    np.subtract(rhs, grid.product_rows(x, r0, r1), out=residual[r0:r1])
  limit = rtol * np.sqrt(rhs_norm2)
  del data, rhs
  precond = Multigrid(grid)
  # Four full-size vectors, reused: x, residual, direction and `work`,
  # which holds A d, then the step, then z = M residual.
  work = precond.cycle(residual)
  direction = work.copy()
  rz = float(np.vdot(residual, work))
  for _ in range(maxiter):
    if float(np.sqrt(np.vdot(residual, residual))) <= limit or rz == 0.0:
      break
    grid.apply(direction, out=work)
    step = x.dtype.type(rz / float(np.vdot(direction, work)))
    work *= step
    residual -= work
    np.multiply(direction, step, out=work)
    x += work
    precond.cycle(residual, out=work)
    rz_new = float(np.vdot(residual, work))
    direction *= direction.dtype.type(rz_new / rz)
    direction += work
    rz = rz_new
  return x
