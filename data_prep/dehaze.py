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
   5-point stencil (`wls`: float32 array slices, linear time, relative
   residual 1e-2: the smooth transmission changes by ~3e-4 on average against
   a tight solve);
6. recovery J = (I - A) / max(t, t_min) + A, and back through 1 / gamma.

Memory: steps 1-4 and 6 run on strips of rows and keep only the per-pixel
maps the next step needs (haze-line index as int16, one float32 map that holds
the radius, then t), so the peak is the regulariser's fixed ~33 bytes per
pixel plus the input and the outputs, whatever the image size.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import gin
import numpy as np
from scipy.spatial import cKDTree

from data_prep import airlight as airlight_lib
from data_prep import sphere
from data_prep import wls

NUM_HAZE_LINES = 1000
# Lines with fewer pixels rarely contain a haze-free pixel, so their r_max (and
# the transmission derived from it) is less trustworthy.
_MIN_LINE_PIXELS = 50
# A line whose initial transmissions vary a lot mixes haze-free colours of
# different brightness (the prior's failure case); its pixels get less weight
# (Berman et al. divide the data term by the line's variance the same way).
_MIN_LINE_SPREAD = 0.1
_MIN_WEIGHT = 1e-3     # Keeps every pixel in the data term (well-posed system).


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


def _line_weights(count: np.ndarray, total: np.ndarray,
                  square: np.ndarray) -> np.ndarray:
  """Data weight in (0, 1] of each haze-line from its size and spread.

  `count`, `total`, `square`: per line, the number of pixels and the sums of
  their initial transmissions and of its square.
  """
  mean = total / np.maximum(count, 1.0)
  spread = np.sqrt(np.maximum(square / np.maximum(count, 1.0) - mean * mean,
                              0.0))
  spread_factor = (_MIN_LINE_SPREAD / np.maximum(spread, _MIN_LINE_SPREAD)) ** 2
  weight = np.minimum(1.0, count / _MIN_LINE_PIXELS) * spread_factor
  return np.maximum(weight, _MIN_WEIGHT)


def regularize_transmission(t_init: np.ndarray, weights: np.ndarray,
                            image: np.ndarray, lam: float = 0.1,
                            rtol: float = 1e-2,
                            maxiter: int = 200) -> np.ndarray:
  """argmin_t sum w (t - t_init)^2 + lam sum_edges s_xy (t_x - t_y)^2.

  s_xy = 1 / (|I(x) - I(y)|^2 + eps). Solved by multigrid-preconditioned CG from
  t_init (`wls.solve`); the default relative residual 1e-2 changes the
  (smooth) transmission by ~3e-4 on average against a 1e-6 solve. Float32
  unless rtol < 1e-4.
  """
  dtype = np.float32 if rtol >= 1e-4 else np.float64
  t_init = np.asarray(t_init)
  wx, wy = wls.edge_weights(lambda r0, r1: image[r0:r1], t_init.shape, lam,
                            dtype)
  return wls.solve(np.array(weights, dtype=dtype), wx, wy,
                   np.array(t_init, dtype=dtype), rtol, maxiter)


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
                    num_haze_lines: int = NUM_HAZE_LINES,
                    strip_pixels: int = wls.STRIP_PIXELS
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Non-local dehazing of a float RGB image in [0, 1].

  The per-pixel stages run on strips of rows, so besides the input and the
  two outputs the memory is the regulariser's (`wls.solve`, ~33 bytes per
  pixel); the strips' temporaries are
  bounded by `strip_pixels`, not by the image.

  Args:
    image: float array [height, width, 3] in [0, 1].
    airlight: RGB air-light in the image's (non-linear) values; estimated with
      `estimate_airlight` on the linearised image when None.
    gamma: radiometric exponent; the model is applied to image ** gamma.
    lam: weight of the smoothness term (the paper's lambda, 0.1).
    t_min: transmission floor used for the recovery.
    num_haze_lines: directions tessellating the sphere.
    strip_pixels: pixels per strip of the per-pixel stages (memory only: the
      result does not depend on it).

  Returns:
    (dehazed float32 [h, w, 3] in [0, 1], transmission float32 [h, w] in
    (0, 1], airlight float32 [3] in the image's values).
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [h, w, 3], got {image.shape}")
  height, width = image.shape[:2]
  gamma32 = np.float32(gamma)

  def linear(r0: int, r1: int) -> np.ndarray:
    """Rows [r0, r1) of the linearised image, I ** gamma."""
    return np.power(np.clip(image[r0:r1], 0.0, 1.0), gamma32,
                    dtype=np.float32)

  if airlight is None:
    # The estimator samples at most `MAX_PIXELS` pixels: linearise only those
    # (the same pixels it would take from the whole linearised image).
    flat = image.reshape(-1, 3)
    sample = flat[::max(1, flat.shape[0] // airlight_lib.MAX_PIXELS)]
    sample = np.power(np.clip(sample, 0.0, 1.0), gamma32, dtype=np.float32)
    air = airlight_lib.estimate_airlight(sample[:, None, :]).astype(np.float64)
  else:
    air = np.power(np.asarray(airlight, dtype=np.float64).reshape(3), gamma)
  air = np.maximum(air, 1e-3)
  air32 = air.astype(np.float32)
  bands = list(wls.strips(height, width, strip_pixels))

  def lower_bound(pixels: np.ndarray) -> np.ndarray:
    """J >= 0 in every channel needs t >= 1 - min_c I_c / A_c."""
    ratio = pixels / air32
    # Two pairwise minima: much faster than a reduction over a 3-long axis.
    return 1.0 - np.minimum(np.minimum(ratio[..., 0], ratio[..., 1]),
                            ratio[..., 2])

  # Pass 1: haze-line of every pixel and its distance from A.
  lines = np.empty((height, width), np.int16 if num_haze_lines < 2 ** 15
                   else np.int32)
  t = np.empty((height, width), np.float32)  # The radius, then t.
  max_radius = np.zeros(num_haze_lines, dtype=np.float32)
  for r0, r1 in bands:
    offset = (linear(r0, r1) - air32).reshape(-1, 3)
    radius = np.sqrt(np.einsum("ij,ij->i", offset, offset))
    offset /= np.maximum(radius, np.float32(1e-9))[:, None]
    strip_lines = haze_lines(offset, num_haze_lines)
    np.maximum.at(max_radius, strip_lines, radius)
    lines[r0:r1] = strip_lines.reshape(r1 - r0, width)
    t[r0:r1] = radius.reshape(r1 - r0, width)
  # Pass 2: initial transmission r / r_max(line), raised to the lower bound,
  # and the per-line statistics of the reliability weights.
  max_radius = np.maximum(max_radius, np.float32(1e-9))
  count = np.zeros(num_haze_lines)
  total, square = np.zeros(num_haze_lines), np.zeros(num_haze_lines)
  for r0, r1 in bands:
    strip = t[r0:r1]
    strip /= max_radius[lines[r0:r1]]
    np.maximum(strip, lower_bound(linear(r0, r1)), out=strip)
    np.clip(strip, 0.0, 1.0, out=strip)
    line_index = lines[r0:r1].ravel()
    count += np.bincount(line_index, minlength=num_haze_lines)
    total += np.bincount(line_index, strip.ravel(), minlength=num_haze_lines)
    square += np.bincount(line_index, np.square(strip.ravel()),
                          minlength=num_haze_lines)
  weight = _line_weights(count, total, square).astype(np.float32)
  data = weight.take(lines)
  del lines, line_index, strip  # (the views would keep the maps alive)
  wx, wy = wls.edge_weights(linear, (height, width), lam)
  # The data term goes to the solver without a reference kept here, so it is
  # freed once the multigrid levels are built.
  data = [data]
  wls.solve(data.pop(), wx, wy, t)
  del wx, wy

  # Recovery J = (I - A) / max(t, t_min, lower) + A, strip by strip.
  dehazed = np.empty_like(image)
  for r0, r1 in bands:
    pixels = linear(r0, r1)
    strip = t[r0:r1]
    np.clip(strip, np.maximum(lower_bound(pixels), np.float32(t_min)), 1.0,
            out=strip)
    pixels -= air32
    pixels /= strip[..., None]
    pixels += air32
    np.clip(pixels, 0.0, 1.0, out=pixels)
    if gamma != 1.0:
      np.power(pixels, np.float32(1.0 / gamma), out=pixels)
    dehazed[r0:r1] = pixels
  return dehazed, t, np.power(air, 1.0 / gamma).astype(np.float32)

