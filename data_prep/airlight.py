"""Air-light estimation with haze-lines (Berman, Treibitz & Avidan, ICCP 2017).

Pixels of a hazy image lie on lines in RGB space that all meet at the air-light
A. The estimate is a Hough transform: every candidate A casts lines at a set of
angles, each palette colour votes for the lines through A that pass within a
small distance of it, and the candidate whose lines collect the most votes wins.
To keep the vote table small the search runs in the three 2-D projections (RG,
GB, RB) over a candidate grid, and a 3-D candidate's score is the product of
the scores of its three projections.

Palette: colours are quantised on a 16 x 16 x 16 grid and the most populated
cells (mean colour, pixel count) form the palette; that is a linear-time
clustering that keeps the estimate cheap on large images.
"""

from __future__ import annotations

import numpy as np

_QUANT = 16            # Cells per channel of the colour clustering.
_PALETTE_SIZE = 200    # Most populated cells kept as the palette.
_MAX_PIXELS = 1 << 18  # The palette is built from at most this many pixels.
_NUM_ANGLES = 32       # Line directions per candidate (over a quarter turn).
_TOLERANCE = 0.02      # A colour votes for a line within this distance.
CANDIDATES = np.linspace(0.1, 1.0, 37)  # Per-channel air-light grid (0.025).


def palette(image: np.ndarray, size: int = _PALETTE_SIZE):
  """Clusters the colours of `image`: (colours [k, 3], pixel counts [k])."""
  pixels = image.reshape(-1, 3).astype(np.float64)
  stride = max(1, pixels.shape[0] // _MAX_PIXELS)
  pixels = pixels[::stride]
  cells = np.minimum((pixels * _QUANT).astype(np.int64), _QUANT - 1)
  label = (cells[:, 0] * _QUANT + cells[:, 1]) * _QUANT + cells[:, 2]
  counts = np.bincount(label, minlength=_QUANT ** 3)
  sums = np.stack([np.bincount(label, pixels[:, c], minlength=_QUANT ** 3)
                   for c in range(3)], axis=-1)
  order = np.argsort(-counts, kind="stable")[:size]
  order = order[counts[order] > 0]
  return sums[order] / counts[order, None], counts[order].astype(np.float64)


def _plane_scores(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """Hough score of every 2-D candidate (a_x, a_y) on the CANDIDATES grid."""
  angles = (np.arange(_NUM_ANGLES) + 0.5) * (0.5 * np.pi / _NUM_ANGLES)
  ax, ay = np.meshgrid(CANDIDATES, CANDIDATES, indexing="ij")
  # Offsets from the colours to the candidate; haze-lines run from A towards
  # darker colours, so only colours below A (both coordinates) take part.
  dx = ax.reshape(-1, 1) - points[None, :, 0]
  dy = ay.reshape(-1, 1) - points[None, :, 1]
  below = (dx > 0) & (dy > 0)
  theta = np.arctan2(dy, dx)
  rho = np.hypot(dx, dy)
  scores = np.zeros(dx.shape[0])
  for angle in angles:
    # Distance from each colour to the line through A at this angle.
    near = below & (rho * np.abs(np.sin(theta - angle)) <= _TOLERANCE)
    votes = near @ weights
    # A line is a haze-line only if at least two colours lie on it.
    scores += np.where(near.sum(axis=1) >= 2, votes, 0.0)
  return scores.reshape(ax.shape)


def estimate_airlight(image: np.ndarray) -> np.ndarray:
  """Estimates the air-light colour of a hazy image.

  Args:
    image: float RGB [height, width, 3] in [0, 1].

  Returns:
    float32 [3], the air-light A (each channel on a 0.025 grid in [0.1, 1]).
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [h, w, 3], got {image.shape}")
  colours, counts = palette(image)
  # Log counts: a huge flat region (the sky) must not outvote every line.
  weights = np.log1p(counts)
  rg = _plane_scores(colours[:, [0, 1]], weights)
  gb = _plane_scores(colours[:, [1, 2]], weights)
  rb = _plane_scores(colours[:, [0, 2]], weights)
  # score[r, g, b] = RG[r, g] * GB[g, b] * RB[r, b]
  total = rg[:, :, None] * gb[None, :, :] * rb[:, None, :]
  r, g, b = np.unravel_index(np.argmax(total), total.shape)
  return CANDIDATES[[r, g, b]].astype(np.float32)
