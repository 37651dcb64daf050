"""The fast local Laplacian filter (Aubry et al., TOG 2014): the driver.

`_fast` quantises the intensity, samples K references, and picks the path by
size: every reference's G_1 by tiles (`llf_level1`, skipping the references
a tile does not need) then each band from each coefficient's two references
(`llf_bands._strip_band`); for large images at large K, the same by strips of
G_1 rows (`_streamed_levels`: memory bounded by the strip, the result bit for
bit the same); or, when not even a strip of K references fits its budget
(very wide images), one reference at a time by strips
(`llf_bands._band_and_reduce`), whose memory does not grow with K. See
`local_laplacian` for the method.
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
# held whole: 4 MP at K = 81 and 24 MP at K = 8 fit; beyond it (12 MP and
# more at the detail preset's K = 81, 48 MP at K = 8) the same computation
# goes by strips (`_streamed_levels`), so the 12-48 MP peaks of
# `peak_memory.py` stay bounded (48 MP prep-targets under 4 GB).
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
  # Large images at large K (the stack beyond the budget): the same by strips
  # (`_streamed_levels`), the stack only from G_depth on. Failing that (a
  # strip of K references beyond its budget): one remapped image at a time,
  # level by level and strip by strip with its dense bands
  # (`_band_and_reduce`), so the memory in use does not grow with K, and the
  # stack only from the first level of at most _BATCH_ELEMENTS samples.
  split = next((level for level in range(levels - 1)
                if gaussian[level].size <= _BATCH_ELEMENTS), levels - 1)
  shapes = [g.shape for g in gaussian]
  depth = _stream_depth(shapes, k)
  strip_rows = _stream_rows(shapes, k, depth) if levels > 1 else None
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
  elif strip_rows is not None:
    # The same computation by strips of G_1 rows (`_streamed_levels`): the
    # bands of levels 0 .. depth - 1 strip by strip, then the stack from
    # G_depth on as above.
    used = (llf_level1._used_references(positions, gaussian[1].shape)
            if k >= llf_level1._USED_MIN_K else None)
    stack = _streamed_levels(
        qrel, np.asarray(qrefs, np.int64) - qbase, remap_fn, used,
        llf_bands._table_pair(qrel, qbase, np.asarray(qrefs, dtype=np.int64),
                              remap_fn),
        positions, shapes, out, depth, strip_rows, keep=depth < levels - 1)
    split = depth
  elif split > 0:
    stack = np.empty((k,) + gaussian[split].shape, dtype=np.float32)
    for index, q in enumerate(qrefs):
      source = (lambda r0, r1, q=q, qrel=qrel:  # noqa: E731
                remap_fn(qrel[r0:r1], q, qbase))
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
    reduced = _reduce_stack(stack)
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


def _reduce_stack(stack: np.ndarray) -> np.ndarray:
  """`_downsample` of a [K, h, w] stack, a few references at a time (about
  _REDUCE_ELEMENTS samples): no K-fold padded temporaries (the same values:
  the reduction is per reference)."""
  reduced = np.empty((stack.shape[0], (stack.shape[1] + 1) // 2,
                      (stack.shape[2] + 1) // 2), dtype=np.float32)
  batch = max(1, _REDUCE_ELEMENTS // max(stack[0].size, 1))
  for first in range(0, stack.shape[0], batch):
    reduced[first:first + batch] = llf_resample._downsample(
        stack[first:first + batch])
  return reduced


# The streamed path (`_streamed_levels`, large images at large K): bytes of
# the [K, rows, w/2] G_1 rows one strip holds (its deeper levels and
# temporaries add about half as much), and of the [K, h_d, w_d] stack of the
# first level it keeps whole (G_3 at 24 MP with K = 81, G_4 at 48 MP).
_STRIP_STACK_BYTES = 192 << 20
_STREAM_STACK_BYTES = 128 << 20


def _stream_depth(shapes: list, k: int) -> int:
  """Levels whose bands the streamed path computes by strips: up to the
  first Gaussian level whose K-reference stack fits _STREAM_STACK_BYTES (or
  the residual's level, which needs no stack)."""
  levels = len(shapes)
  return next((d for d in range(1, levels - 1)
               if k * shapes[d][0] * shapes[d][1] * 4 <= _STREAM_STACK_BYTES),
              max(levels - 1, 1))


def _level_rows(y0: int, y1: int, level: int, heights: list) -> tuple:
  """Rows of level `level` whose band a strip of G_1 rows [y0, y1) adds (y0
  a multiple of 2^(depth - 1), so the strips partition every level)."""
  if level == 0:
    return 2 * y0, min(heights[0], 2 * y1)
  scale = 2 ** (level - 1)
  return y0 // scale, min(heights[level], -(-y1 // scale))


def _strip_needs(y0: int, y1: int, heights: list, depth: int) -> dict:
  """{level: (lo, hi)}: the rows of G_1 .. G_depth that the strip of G_1
  rows [y0, y1) needs exact, from the deepest level up: G_depth's own rows
  (kept), each band's context (`_strip_band`: 4 rows, the coarse rows of
  their halves and one beyond) and the fine rows of each needed coarse row
  (2r - 2 .. 2r + 2)."""
  need = {depth: _level_rows(y0, y1, depth, heights)}

  def add(level, lo, hi):
    if level in need:
      lo, hi = min(lo, need[level][0]), max(hi, need[level][1])
    need[level] = (lo, hi)

  for level in range(depth - 1, -1, -1):
    o0, o1 = _level_rows(y0, y1, level, heights)
    a, b = max(0, o0 - 4), min(heights[level], o1 + 4)
    add(level + 1, a // 2, min(heights[level + 1], (b + 1) // 2 + 1))
    if level >= 1:
      p0, p1 = need[level + 1]
      add(level, min(a, max(0, 2 * p0 - 2)),
          max(b, min(heights[level], 2 * p1 + 1)))
  return need


def _stream_align(depth: int) -> int:
  """Row alignment of the strips' G_1 rows: whole tiles of `_detail_level1`
  and even rows down to G_depth."""
  return int(np.lcm(llf_level1._TILE_ROWS, 2 ** max(depth - 1, 0)))


def _stream_context(depth: int, levels: int) -> int:
  """G_1 rows a strip of `_streamed_levels` holds beyond its own: the
  context of `_strip_needs` (away from the borders), aligned outwards."""
  align = _stream_align(depth)
  far = [1 << (40 - level) for level in range(levels)]  # No border near.
  y0 = align << 16
  lo, hi = _strip_needs(y0, y0 + align, far, depth)[1]
  return (hi - lo) - align + 2 * align


def _stream_rows(shapes: list, k: int, depth: int) -> Optional[int]:
  """G_1 rows per strip of `_streamed_levels` within _STRIP_STACK_BYTES, or
  None when not even one aligned strip and its context fit (very wide
  images at large K: the per-reference path, whose memory does not grow
  with K)."""
  if len(shapes) < 2:
    return None
  w1 = shapes[1][1]
  align = _stream_align(depth)
  rows = ((_STRIP_STACK_BYTES // (4 * k * w1) - _stream_context(
      depth, len(shapes))) // align * align)
  return rows if rows >= align else None


def _streamed_levels(qrel: np.ndarray, offsets: np.ndarray,
                     remap_fn: Callable, used: Optional[np.ndarray],
                     pair0: Callable, positions: list, shapes: list,
                     out: list, depth: int, strip_rows: int,
                     keep: bool) -> Optional[np.ndarray]:
  """The bands of levels 0 .. depth - 1 by strips of G_1 rows; returns the
  [K, h_d, w_d] stack of G_depth (None without `keep`).

  The result of the stack path of `_fast` bit for bit, with memory bounded
  by the strip: each strip computes every reference's G_1 on its rows and
  their context (`_detail_level1` by tiles, skipping references: the
  context rows shared with the previous strip are kept, not recomputed),
  reduces it down to G_depth and adds each level's band on the strip's rows
  (`_strip_band`, each coefficient from its two references). Every row used
  is exact (`_strip_needs`): a reduction of a strip is exact on the rows
  whose 5 taps lie inside it, as in `llf_bands._band_and_reduce`.
  """
  k = len(offsets)
  heights = [shape[0] for shape in shapes]
  h1, w1 = shapes[1]
  align, tile = _stream_align(depth), llf_level1._TILE_ROWS
  stack = (np.empty((k,) + tuple(shapes[depth]), dtype=np.float32)
           if keep else None)
  buffer = np.empty(
      k * min(h1, strip_rows + _stream_context(depth, len(shapes))) * w1,
      dtype=np.float32)
  prev = None
  for y0 in range(0, h1, strip_rows):
    y1 = min(h1, y0 + strip_rows)
    need = _strip_needs(y0, y1, heights, depth)
    a1 = need[1][0] // align * align
    b1 = min(h1, -(-need[1][1] // tile) * tile)
    size = k * (b1 - a1) * w1
    g1 = buffer[:size].reshape(k, b1 - a1, w1)  # Contiguous (`_stack_pair`).
    start = a1
    if prev is not None and prev[0] <= a1 < prev[1]:
      # The rows shared with the previous strip (numpy copies through a
      # temporary: the two views overlap in the buffer).
      g1[:, :prev[1] - a1] = prev[2][:, a1 - prev[0]:]
      start = prev[1]
    if start < b1:
      llf_level1._detail_level1(qrel, offsets, remap_fn, used,
                                rows=(start, b1), out=g1[:, start - a1:])
    prev = (a1, b1, g1)
    # G_l of the strip (l >= 1): its rows from `fine_start`, exact on
    # [lo, hi) (all of G_1's, computed from the whole image).
    fine, fine_start, lo, hi = g1, a1, a1, b1
    for level in range(depth):
      rows = _level_rows(y0, y1, level, heights)
      if level == 0:
        llf_bands._strip_band(out[0], g1, positions[0], pair0, rows=rows,
                              coarse_start=a1)
        continue
      # Only the rows [r0, r1) that the needed coarse rows read (even r0).
      p0, p1 = need[level + 1]
      r0 = max(fine_start, (2 * p0 - 2) // 2 * 2)
      r1 = min(fine_start + fine.shape[1], 2 * p1 + 1)
      coarse = _reduce_stack(fine[:, r0 - fine_start:r1 - fine_start])
      coarse_start = r0 // 2
      # Exact rows of the reduction: its 5 taps on exact rows, or mirrored at
      # the level's own borders (then as in the whole-level reduction).
      lo = 0 if r0 == 0 else (max(lo, r0) + 3) // 2
      hi = (heights[level + 1] if r1 == hi == heights[level]
            else (min(hi, r1) - 3) // 2 + 1)
      assert (r0 % 2 == 0 and lo <= p0 and p1 <= hi), (level, lo, hi, need)
      llf_bands._strip_band(out[level], coarse, positions[level],
                            llf_bands._stack_pair(fine, fine_start),
                            rows=rows, coarse_start=coarse_start)
      fine, fine_start = coarse, coarse_start
    if keep:
      r0, r1 = _level_rows(y0, y1, depth, heights)
      stack[:, r0:r1] = fine[:, r0 - fine_start:r1 - fine_start]
  return stack
