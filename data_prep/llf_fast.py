"""The fast local Laplacian filter (Aubry et al., TOG 2014): the driver.

`_fast` quantises the intensity, samples K references, and picks the path by
size: every reference's G_1 by tiles (`llf_level1`) then each band from each
coefficient's two references (`llf_bands._strip_band`); or, for large images
at large K, one reference at a time by strips (`llf_bands._band_and_reduce`),
so the memory in use does not grow with K. See `local_laplacian` for the
method.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from data_prep import llf_bands
from data_prep import llf_level1
from data_prep import llf_remap
from data_prep import llf_resample

# Levels of at most this many samples go through as one [K, h, w] stack (and
# a level 0 of at most 4 times as many, see `_fast`).
_BATCH_ELEMENTS = 1 << 16


# Samples of the reference stack reduced per call at the deeper levels.
_REDUCE_ELEMENTS = 1 << 18


# Largest [K, h/2, w/2] stack of every reference's G_1 (bytes, K per pixel)
# for which the level-0 band goes through `_strip_band`: 4 MP at K = 81 and
# 24 MP at K = 8 fit; beyond it (12 MP and more at the detail preset's K = 81,
# 48 MP at K = 8) the references are filtered one at a time by strips, whose
# memory does not grow with K, so the 12-48 MP peaks of `peak_memory.py` stay
# those of that path (48 MP prep-targets under 4 GB).
_STACK_BYTES = 320 << 20


def _fast(values: np.ndarray, levels: int, remap_fn: Callable,
          num_samples: Optional[int], sigma_r: float,
          alpha: float) -> np.ndarray:
  gaussian = llf_resample._gaussian_levels(values, levels)
  lo, hi = float(values.min()), float(values.max())
  if hi - lo < 1e-6:  # Flat image: every remapping is the identity.
    return values.copy()
  k = num_samples or llf_remap.default_num_samples(hi - lo, sigma_r, alpha)
  refs = np.linspace(lo, hi, k)
  step = (hi - lo) / (k - 1)
  remap_fn, quantise = llf_remap._tabulated(remap_fn, hi - lo)
  qrefs = [int(q) for q in quantise(refs)]
  # Look-up indices relative to the lowest step, quantised strip by strip (no
  # full-size float64 temporary; the rounding is monotonic, so the lowest step
  # is that of the minimum). int32, not intp: 4 bytes per pixel less on the
  # largest map of the filter (the look-up converts each strip, ~5% of the
  # time at K = 8).
  qbase = min(int(quantise(np.float32(lo))), min(qrefs))
  qrel = np.empty(values.shape, dtype=np.int32)
  rows = max(1, llf_bands._STRIP_ELEMENTS // max(values.shape[1], 1))
  for r0 in range(0, values.shape[0], rows):
    strip = qrel[r0:r0 + rows]
    strip[...] = quantise(values[r0:r0 + rows])
    strip -= qbase
  # Fractional reference index of every Gaussian coefficient, computed where
  # it is used (a level's worth, or a strip's) rather than stored.
  positions = [llf_bands._Positions(g, lo, step, k) for g in gaussian[:-1]]
  out = [np.zeros(g.shape, np.float32) for g in gaussian[:-1]]
  # Usually (K x h/2 x w/2 floats within _STACK_BYTES, or a small image):
  # every reference's G_1 as a [K, h/2, w/2] stack, computed by tiles that
  # skip the references they do not need; then every band, level 0 included,
  # evaluated by strips for only the two references of each coefficient
  # (`_strip_band`), the deeper levels from the stack reduced level by level.
  # Large images at large K (the stack beyond the budget): one remapped image
  # at a time, level by level and strip by strip with its dense bands
  # (`_band_and_reduce`), so the memory in use does not grow with K, and the
  # stack only from the first level of at most _BATCH_ELEMENTS samples.
  split = next((level for level in range(levels - 1)
                if gaussian[level].size <= _BATCH_ELEMENTS), levels - 1)
  if levels > 1 and (gaussian[0].size <= 4 * _BATCH_ELEMENTS
                     or k * gaussian[1].size * 4 <= _STACK_BYTES):
    # Every reference's G_1 (remapped and reduced by tiles, a tile's
    # references in batches), then the level-0 band from each pixel's two
    # references only (`_strip_band`): the remapped level-0 values come
    # straight from the table, and no reference is upsampled at full size.
    used = (llf_level1._used_references(positions, gaussian[1].shape)
            if k >= llf_level1._USED_MIN_K else None)
    stack = llf_level1._detail_level1(
        qrel, np.asarray(qrefs, np.int64) - qbase, remap_fn, used)
    llf_bands._strip_band(
        out[0], stack, positions[0],
        llf_bands._table_pair(qrel, qbase, np.asarray(qrefs, dtype=np.int64),
                              remap_fn))
    split = 1
  elif split > 0:
    stack = np.empty((k,) + gaussian[split].shape, dtype=np.float32)
    for index, q in enumerate(qrefs):
      source = lambda r0, r1, q=q: remap_fn(qrel[r0:r1], q, qbase)  # noqa
      for level in range(split):
        current = llf_bands._band_and_reduce(
            source, gaussian[level].shape, out[level], positions[level],
            index, level == 0)
        source = lambda r0, r1, g=current: g[r0:r1]  # noqa: E731
      stack[index] = current
  del qrel
  for level in range(split, levels - 1):
    # A few references at a time (about _REDUCE_ELEMENTS samples): no K-fold
    # padded temporaries of a large stack, few calls on small levels, and each
    # reduction's temporaries freed before the next (a list of K reductions,
    # then stacked, touched twice the fresh memory: page faults cost more
    # than the copy here).
    reduced = np.empty((k,) + gaussian[level + 1].shape, dtype=np.float32)
    batch = max(1, _REDUCE_ELEMENTS // stack[0].size)
    for first in range(0, k, batch):
      reduced[first:first + batch] = llf_resample._downsample(
          stack[first:first + batch])
    llf_bands._strip_band(out[level], reduced, positions[level],
                          llf_bands._stack_pair(stack))
    stack = reduced
  # The bands are those of the details D_j = r_j(I) - I; the pyramid of I
  # itself (its bands and residual) adds back as I after the collapse.
  out.append(np.zeros(gaussian[-1].shape, np.float32))
  del positions, gaussian
  result = llf_resample._collapse(out)
  result += values
  return result
