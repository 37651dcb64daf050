"""Air-light estimation with haze-lines (Berman, Treibitz & Avidan, ICCP 2017).

Pixels of a hazy image lie on lines in RGB space that all meet at the air-light
A (I = t J + (1 - t) A): the pixels of one scene colour J at different
distances spread along the segment from J towards A (a haze-line). The
estimate is a Hough transform in RGB space over pairs of colour clusters:

1. the colours are clustered into a palette (quantised cells' mean colours
   with pixel counts), and the `_PAIR_COLOURS` most populated clusters kept;
2. every pair of clusters at least `_MIN_SEPARATION` apart defines a line. If
   both lie on one haze-line, the line passes through A beyond the brighter of
   the two (the hazier pixel is nearer A), so each pair votes for the voxels of
   its ray beyond the brighter colour, once per voxel, in a `_GRID`^3
   accumulator over [`_LOW`, 1]^3, with the weight sqrt(w_i w_j) (w: the share
   of the image a cluster covers: large clusters count more, as in the paper,
   without one big cluster outvoting all pairs of smaller ones);
3. a ray votes only from `_SKIP` beyond its start: all the rays of a large
   cluster start at it (one per darker partner), a star whose votes pile up
   next to the cluster and made bright, populous colours (a white cup, a
   sunlit suit, a sky) win over the point where the lines cross;
4. the accumulator is smoothed by a Gaussian of `_SMOOTH` voxels (the lines'
   tolerance) and divided by the share of the pixels that may vote for each
   candidate A: under the haze model only pixels darker than A in every
   channel lie on haze-lines that end at A (brighter scene colours are allowed
   not to vote; they are not votes against), and without this a brighter
   candidate wins just because more of the image lies below it and its rays
   pass there. The share is floored at `_MIN_SHARE` so that a dark candidate
   below most of the image is not promoted by a tiny denominator. The
   maximum is A.

Pairs of colours from different haze-lines give rays that cross anywhere; rays
of pairs on one haze-line all cross at A, so the maximum is there even where
A is darker than many scene pixels in some channel (their haze-lines come
from above A and still meet at it). This is the 3-D form of the vote; the
paper's faster variant (three 2-D projections, the product of their scores)
pins A's colour but not its magnitude: on scenes with bright sky and dark
foliage it stopped at ~0.7 of |A|, and on near-grey scenes the score was flat
along A's direction (measured with `tools/benchmarks/dehaze.py`, docs in the
README's dehazing section).

Palette: colours are quantised on a 32^3 grid and the most populated cells
(mean colour, pixel count) form the palette, a linear-time clustering on at
most 2^18 pixels, so the estimate costs the same on any image size. The rays
are sampled every half voxel, in chunks of pairs to bound the memory.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_QUANT = 32             # Cells per channel of the colour clustering.
_PALETTE_SIZE = 1000    # Most populated cells kept as the palette.
MAX_PIXELS = 1 << 18    # The palette is built from at most this many pixels.
# Parameters chosen on synthetic haze (four photos x five air-light kinds,
# depth from the motorcycle's disparity) and checked on a second synthetic set
# (a landscape depth: the top of the frame far) and on the two real photos,
# which were not used to choose them (tools/benchmarks/dehaze.py):
# 150 clusters (11k pairs) were as accurate as 200-300 at half the cost; a
# 60^3 grid (0.015 per step) with a 1.5-voxel Gaussian halved the worst error
# of a 40^3 grid with a 1-voxel one (0.34 -> 0.15).
_PAIR_COLOURS = 150
_MIN_SEPARATION = 0.05  # Closer pairs give unreliable line directions.
_GRID = 60              # Accumulator voxels per channel over [_LOW, 1].
_LOW = 0.1              # Darkest air-light considered, per channel.
_SMOOTH = 1.5           # Gaussian sigma of the accumulator, in voxels.
_CHUNK = 2048           # Pairs rasterised at once (~40 MB of samples).
# Chosen on the motorcycle-depth synthetic set and the unit tests' cases
# (issue 17); the landscape-depth set and the real photos were the check
# (tools/benchmarks/dehaze.py, README): rays vote from 0.06 (4 voxels) beyond
# their start (0.045: the landscape set's worst error 0.17; 0.075: a sunlit
# suit won on one scene), and the share below A is floored at 0.4 (0.05 let
# dark candidates win on 9 of 40 cases; exponent 1 of the share, 0.5 and 0.75
# fixed fewer cases).
_SKIP = 0.06
_MIN_SHARE = 0.4
# Every alternative measured and dropped (six rounds for issue 17: the
# vote's variants, Sulami et al.'s colour-plane direction and magnitude,
# magnitude-only cues along the vote's direction, patch recurrence, ...)
# and where the estimator still fails: docs/airlight.md.


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


def vote(colours: np.ndarray, weights: np.ndarray,
         skip: float = _SKIP) -> np.ndarray:
  """Pair-ray votes [_GRID] * 3 over [_LOW, 1]^3 (before smoothing).

  Args:
    colours: [k, 3] cluster colours in [0, 1].
    weights: [k] cluster weights (shares of the image).
    skip: distance from a ray's start (the brighter colour) before it votes.
  """
  first, second = np.triu_indices(len(colours), 1)
  a, b = colours[first], colours[second]
  # The ray starts at the brighter colour of the pair, away from the darker.
  swap = a.sum(axis=1) > b.sum(axis=1)
  dark = np.where(swap[:, None], b, a)
  bright = np.where(swap[:, None], a, b)
  delta = bright - dark
  length = np.linalg.norm(delta, axis=1)
  keep = length >= _MIN_SEPARATION
  bright = bright[keep].astype(np.float32)
  direction = (delta[keep] / length[keep, None]).astype(np.float32)
  pair_weight = np.sqrt(weights[first] * weights[second])[keep]
  scale = (_GRID - 1) / (1.0 - _LOW)
  # Half-voxel steps up to the cube's diagonal.
  steps = (np.arange(1, int(2 * np.sqrt(3) * scale) + 2, dtype=np.float32)
           / np.float32(2 * scale))
  steps = steps[steps >= skip]
  acc = np.zeros(_GRID ** 3)
  for start in range(0, len(bright), _CHUNK):
    stop = start + _CHUNK
    points = (bright[start:stop, None, :]
              + steps[None, :, None] * direction[start:stop, None, :])
    inside = ((points >= _LOW) & (points <= 1.0)).all(axis=-1)
    cell = np.rint((points - _LOW) * np.float32(scale)).astype(np.int64)
    np.clip(cell, 0, _GRID - 1, out=cell)
    flat = (cell[..., 0] * _GRID + cell[..., 1]) * _GRID + cell[..., 2]
    # One vote per (ray, voxel): a ray's samples visit a voxel in one run.
    new = np.ones_like(inside)
    new[:, 1:] = flat[:, 1:] != flat[:, :-1]
    take = inside & new
    ray = np.nonzero(take)[0]
    acc += np.bincount(flat[take], pair_weight[start:stop][ray],
                       minlength=_GRID ** 3)
  return acc.reshape((_GRID,) * 3)


def share_below(image: np.ndarray) -> np.ndarray:
  """[_GRID] * 3: the share of the pixels <= each voxel's A in every channel.

  A 3-D cumulative histogram of the (subsampled) pixels: a pixel counts for
  the voxels at or above it in all three channels (the next grid value up).
  """
  pixels = image.reshape(-1, 3)
  pixels = pixels[::max(1, pixels.shape[0] // MAX_PIXELS)]
  scale = (_GRID - 1) / (1.0 - _LOW)
  # Index _GRID: above every candidate in that channel (counted nowhere).
  cell = np.clip(np.ceil((pixels - _LOW) * scale - 1e-4).astype(np.int64), 0,
                 _GRID)
  side = _GRID + 1
  flat = (cell[:, 0] * side + cell[:, 1]) * side + cell[:, 2]
  counts = np.bincount(flat, minlength=side ** 3).reshape((side,) * 3)
  cumulative = counts.cumsum(0).cumsum(1).cumsum(2)[:_GRID, :_GRID, :_GRID]
  return cumulative / max(len(pixels), 1)


def estimate_airlight(image: np.ndarray) -> np.ndarray:
  """Estimates the air-light colour of a hazy image.

  Args:
    image: float RGB [height, width, 3] in [0, 1] (any [..., 3] array of
      pixels: only colours are used).

  Returns:
    float32 [3], the air-light A (each channel in [0.1, 1]).
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [h, w, 3], got {image.shape}")
  colours, counts = palette(image, _PAIR_COLOURS)
  acc = ndimage.gaussian_filter(vote(colours, counts / counts.sum()), _SMOOTH)
  if not acc.max() > 0:
    # No two colours far enough apart to define a line (a flat image): no
    # haze-lines; the brightest colour is the only evidence of A.
    brightest = colours[np.argmax(colours.sum(axis=1))]
    return np.clip(brightest, _LOW, 1.0).astype(np.float32)
  score = acc / np.maximum(share_below(image), _MIN_SHARE)
  best = np.array(np.unravel_index(np.argmax(score), score.shape))
  return (_LOW + best * (1.0 - _LOW) / (_GRID - 1)).astype(np.float32)
