"""Air-light estimation with haze-lines (Berman, Treibitz & Avidan, ICCP 2017).

Pixels of a hazy image lie on lines in RGB space that all meet at the air-light
A (I = t J + (1 - t) A). The estimate is a Hough transform:

1. the colours are clustered into a palette of ~1000 colours with pixel counts
   (weights: the fraction of the image each colour covers);
2. in each 2-D projection (RG, GB, RB) and for each candidate (a_x, a_y) on a
   grid, each palette colour votes for the lines through the candidate, at
   orientations theta_k over a half turn, that pass within a tolerance of it
   (the tolerance grows slowly with the distance from the candidate, as the
   lines fan out). Only colours darker than the candidate in both coordinates
   vote: A is brighter than the points of its haze-lines;
3. a line is a haze-line only with enough voters: at least two colours and
   at least `_LINE_SUPPORT` times the average number per orientation, so
   lines that merely cross the colour cloud do not count;
4. a candidate's score saturates per colour: the weight of each colour that
   lies on at least one of its haze-lines counts once, with a bonus
   1 + 5 exp(-distance) for colours near the candidate (where haze-lines
   converge). The score is divided by (weight of the colours below the
   candidate)^0.8 so that candidates are not favoured just for sitting above
   more of the colour cloud; what counts is the share of it on haze-lines;
5. the 3-D score of (r, g, b) is the product of its three 2-D scores; the
   argmax over a 0.025 grid (per channel from the image's median up: a
   darker air-light would leave most colours out of the vote) is refined on
   a 0.00625 grid around it (+- 4 steps).

Palette: colours are quantised on a 32^3 grid and the most populated cells
(mean colour, pixel count) form the palette, a linear-time clustering on at
most 2^18 pixels, so the estimate costs the same on any image size. The voting
is vectorised: a colour at angle phi and distance rho from a candidate is
within the tolerance of exactly the lines whose orientation is within
arcsin(tol / rho) of phi, a contiguous run of orientation bins, added as a
(start, stop) pair of a difference array and summed with a cumulative sum.
"""

from __future__ import annotations

import numpy as np

_QUANT = 32             # Cells per channel of the colour clustering.
_PALETTE_SIZE = 1000    # Most populated cells kept as the palette.
MAX_PIXELS = 1 << 18    # The palette is built from at most this many pixels.
_NUM_ANGLES = 39        # Line orientations over a half turn.
_TOLERANCE = 0.01       # Distance to a line, at the candidate ...
# ... times (1 + growth * distance from it). 0.3 rather than 0.7: a looser
# far tolerance let lines through a bright scene colour (a white cup above a
# bluish A) collect unrelated colours; measured on synthetic haze of five
# air-light kinds on three photos and on two real hazy photos, 0.3 lowered the
# worst error on every set (`tools/benchmarks/dehaze.py --airlight`).
_TOLERANCE_GROWTH = 0.3
_MIN_LINE_COLOURS = 2   # Voters a haze-line needs at least ...
_LINE_SUPPORT = 2.0     # ... and this times the mean voters per orientation.
_NEAR_BONUS = 5.0       # Weight 1 + bonus * exp(-distance) of a voter.
_BELOW_EXPONENT = 0.8   # Score / (weight of the colours below) ** this.
CANDIDATES = np.linspace(0.1, 1.0, 37)  # Coarse per-channel grid (0.025).
# Refinements around the current maximum: (step, steps on each side).
_REFINE = ((0.00625, 4),)

def palette(image: np.ndarray, size: int = _PALETTE_SIZE):
  """Clusters the colours of `image`: (colours [k, 3], pixel counts [k])."""
  pixels = image.reshape(-1, 3)
  # Subsample before the float64 copy: the cost and memory do not grow with
  # the image.
  pixels = pixels[::max(1, pixels.shape[0] // MAX_PIXELS)].astype(np.float64)
  cells = np.clip((pixels * _QUANT).astype(np.int64), 0, _QUANT - 1)
  label = (cells[:, 0] * _QUANT + cells[:, 1]) * _QUANT + cells[:, 2]
  counts = np.bincount(label, minlength=_QUANT ** 3)
  sums = np.stack([np.bincount(label, pixels[:, c], minlength=_QUANT ** 3)
                   for c in range(3)], axis=-1)
  order = np.argsort(-counts, kind="stable")[:size]
  order = order[counts[order] > 0]
  return sums[order] / counts[order, None], counts[order].astype(np.float64)


def _plane_scores(points: np.ndarray, weights: np.ndarray, grid_x: np.ndarray,
                  grid_y: np.ndarray) -> np.ndarray:
  """Hough score of every 2-D candidate (grid_x[i], grid_y[j]) -> [i, j]."""
  m = _NUM_ANGLES
  step = np.pi / m  # Line orientations theta_k = k step, k < m.
  # float32 geometry: the tolerances are >= 0.01, far above its precision.
  points = points.astype(np.float32)
  ax, ay = np.meshgrid(grid_x.astype(np.float32), grid_y.astype(np.float32),
                       indexing="ij")
  n_cand = ax.size
  dx = ax.reshape(-1, 1) - points[None, :, 0]
  dy = ay.reshape(-1, 1) - points[None, :, 1]
  # Only colours darker than the candidate in both coordinates take part.
  cand, colour = np.nonzero((dx > 0) & (dy > 0))
  dx, dy = dx[cand, colour], dy[cand, colour]
  phi = np.arctan2(dy, dx)   # in (0, pi / 2)
  rho = np.hypot(dx, dy)
  tolerance = np.float32(_TOLERANCE) * (1 + np.float32(_TOLERANCE_GROWTH) * rho)
  half = np.arcsin(np.minimum(tolerance / rho, np.float32(1.0)))
  inv_step = np.float32(1.0 / step)
  first = np.ceil((phi - half) * inv_step).astype(np.int64)  # >= -m / 2
  last = np.floor((phi + half) * inv_step).astype(np.int64)
  last = np.minimum(last, first + m - 1)  # Each orientation at most once.
  keep = first <= last
  cand, colour, rho = cand[keep], colour[keep], rho[keep]
  first, last = first[keep] + m, last[keep] + m  # In [0, 2m): no negatives.
  # Voters per (candidate, orientation): a difference array over the doubled
  # orientation axis, summed, then folded modulo m (k and k + m: same line).
  size = 2 * m + 1
  start, stop = cand * size + first, cand * size + last + 1
  diff = (np.bincount(start, minlength=n_cand * size)
          - np.bincount(stop, minlength=n_cand * size)).reshape(n_cand, size)
  voters = np.cumsum(diff, axis=1)[:, :2 * m]
  voters = voters[:, :m] + voters[:, m:]
  below = np.bincount(cand, minlength=n_cand)[:, None]
  haze_line = voters >= np.maximum(_MIN_LINE_COLOURS,
                                   _LINE_SUPPORT * below / m)
  # Does a colour's run of orientations [first, last] hold a haze-line?
  prefix = np.concatenate([np.zeros((n_cand, 1), np.int64),
                           np.cumsum(np.tile(haze_line, (1, 2)), axis=1)],
                          axis=1)
  on_line = prefix[cand, last + 1] > prefix[cand, first]
  near = np.exp(-rho.astype(np.float64))
  weight = weights[colour] * (1.0 + _NEAR_BONUS * near)
  scores = np.bincount(cand[on_line], weight[on_line], minlength=n_cand)
  below_weight = np.bincount(cand, weight, minlength=n_cand)
  scores /= np.maximum(below_weight, 1e-12) ** _BELOW_EXPONENT
  return scores.reshape(ax.shape)


def _best(colours: np.ndarray, weights: np.ndarray, grids) -> np.ndarray:
  """argmax over grids[0] x grids[1] x grids[2] of RG * GB * RB scores."""
  rg = _plane_scores(colours[:, [0, 1]], weights, grids[0], grids[1])
  gb = _plane_scores(colours[:, [1, 2]], weights, grids[1], grids[2])
  rb = _plane_scores(colours[:, [0, 2]], weights, grids[0], grids[2])
  total = rg[:, :, None] * gb[None, :, :] * rb[:, None, :]
  r, g, b = np.unravel_index(np.argmax(total), total.shape)
  return np.array([grids[0][r], grids[1][g], grids[2][b]])


def estimate_airlight(image: np.ndarray) -> np.ndarray:
  """Estimates the air-light colour of a hazy image.

  Args:
    image: float RGB [height, width, 3] in [0, 1].

  Returns:
    float32 [3], the air-light A (each channel in [0.1, 1]).
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [h, w, 3], got {image.shape}")
  colours, counts = palette(image)
  weights = counts / counts.sum()
  # The air-light is brighter than the haze-lines' colours: a candidate below
  # the median of a channel would leave most of the image out of the vote.
  pixels = image.reshape(-1, 3)
  median = np.median(pixels[::max(1, pixels.shape[0] // MAX_PIXELS)], axis=0)
  grids = [CANDIDATES[CANDIDATES >= min(m, CANDIDATES[-1])] for m in median]
  best = _best(colours, weights, grids)
  for step, steps in _REFINE:
    offsets = np.arange(-steps, steps + 1) * step
    best = _best(colours, weights, [
        np.unique(np.clip(a + offsets, CANDIDATES[0], CANDIDATES[-1]))
        for a in best])
  return best.astype(np.float32)
