"""Every reference's G_1 of the fast local Laplacian filter, by tiles.

`_detail_level1` computes the first Gaussian level of each reference's detail
D_j = r_j(I) - I as a [K, h/2, w/2] stack, tile by tile, skipping the
references whose detail is 0 on a tile (beta = 1) and, at large K, those no
band coefficient reads there (`_used_references`). `llf_fast` uses it
whenever the stack fits its memory budget.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from data_prep import llf_bands
from data_prep import llf_resample

# Coarse rows and columns of a tile of `_detail_level1` (its fine block has
# 2 * size + 3 samples a side): wide tiles keep numpy's inner loops long, few
# rows keep tiles small enough to skip many references.
_TILE_ROWS, _TILE_COLS = 16, 128
# References remapped per batch in a tile (their blocks stay in cache).
_TILE_REFS = 16
# From this many references on, `_detail_level1` also skips the references
# no band coefficient reads in a tile (`_used_references`, ~0.03 s at 4 MP);
# with fewer, nearly every tile's coefficients read them all (4 MP, 8 levels,
# K = 8, one process: 20.3 MP/s without the used-set, 15.6 with it, 17.6 by
# the per-reference strips of `_band_and_reduce`).
_USED_MIN_K = 20


def _mirror_index(positions: np.ndarray, size: int) -> np.ndarray:
  """Sample index of (possibly out-of-range) positions on an axis of `size`
  samples, mirrored without repeating the border (scipy's "mirror")."""
  if size == 1:
    return np.zeros_like(positions)
  period = 2 * (size - 1)
  positions = np.abs(positions) % period
  return np.where(positions > size - 1, period - positions, positions)


def _block_order(tile: int) -> np.ndarray:
  """Fine positions 0..2 tile + 2 of a tile's block, even ones first: a
  reduction tap then reads one contiguous run of the block."""
  local = np.arange(2 * tile + 3)
  return np.concatenate([local[0::2], local[1::2]])


def _reduce_block(values: np.ndarray, tile: int, axis: int,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
  """The 5-tap reduction of blocks in `_block_order` along `axis` (1 or 2 of
  [m, rows, cols]): tile samples 0.4 x[2i+2] + 0.25 (x[2i+1] + x[2i+3]) +
  0.05 (x[2i] + x[2i+4]), where even position 2i is entry i and odd 2i + 1
  is entry tile + 2 + i."""
  odd = tile + 2

  def part(start, stop):
    return values[llf_resample._sl(3, axis, start, stop)]

  out = np.multiply(part(1, tile + 1), np.float32(0.4), out=out)
  tmp = np.add(part(odd, odd + tile), part(odd + 1, odd + tile + 1))
  tmp *= np.float32(0.25)
  out += tmp
  np.add(part(0, tile), part(2, tile + 2), out=tmp)
  tmp *= np.float32(0.05)
  out += tmp
  return out


def _used_references(positions: list, shape: tuple) -> np.ndarray:
  """Which references' G_1 each tile of `_detail_level1` must hold.

  `positions`: the `_Positions` of the levels with a band, G_0 .. G_{n-2};
  `shape`: G_1's. Returns bool [tile rows, tile columns, K]: reference j
  for tile t when some band coefficient whose value depends on G_1^j inside
  t brackets its Gaussian value with j (j0 or j0 + 1). A level-l coefficient
  q (l >= 1) reads G_1 within 3.5 * 2^l - 2 samples of 2^(l-1) q (its G_l
  sample, and the 3 x 3 G_{l+1} samples of its upsampling, each 2^(l+1) - 2
  from its centre); a level-0 one within 1.5 of q / 2. The windows below use
  4 * 2^l (4 at level 0), and mirrored borders stay within them, so the set
  only ever errs on the side of more references.
  """
  h1, w1 = shape
  cy, cx = _TILE_ROWS, _TILE_COLS
  tiles_x = -(-w1 // cx)
  k = positions[0].k
  used = np.zeros((-(-h1 // cy), tiles_x, k), dtype=bool)

  for level, position in enumerate(positions):
    gauss = position.level
    scale, reach = 2.0 ** (level - 1), 4 * 2 ** level
    height, width = gauss.shape

    def window(start, stop, size):  # Level-l samples reading [start, stop).
      return (max(0, int(np.floor((start - reach) / scale))),
              min(size, int(np.ceil((stop - 1 + reach) / scale)) + 1))

    col_windows = [window(tx * cx, min(w1, tx * cx + cx), width)
                   for tx in range(tiles_x)]
    for ty in range(used.shape[0]):
      r0, r1 = window(ty * cy, min(h1, ty * cy + cy), height)
      lows, highs = gauss[r0:r1].min(axis=0), gauss[r0:r1].max(axis=0)
      # The lower reference j0 of the window's least and greatest values,
      # with the arithmetic of `_Positions` and `_bracket` (j0 is monotonic).
      first = llf_bands._bracket(position.of(np.array(
          [lows[c0:c1].min() for c0, c1 in col_windows])), k)[0]
      last = llf_bands._bracket(position.of(np.array(
          [highs[c0:c1].max() for c0, c1 in col_windows])), k)[0]
      for tx in range(tiles_x):
        used[ty, tx, first[tx]:last[tx] + 2] = True  # j0 .. j0 + 1.
  return used


def _detail_level1(qrel: np.ndarray, offsets: np.ndarray,
                   remap_fn: Callable,
                   used: Optional[np.ndarray] = None,
                   rows: Optional[tuple] = None,
                   out: Optional[np.ndarray] = None) -> np.ndarray:
  """G_1 of every reference's detail D_j = r_{g_j}(I) - I, as [K, h/2, w/2].

  `qrel`: the quantised intensity (int32 steps above the lowest reference);
  `offsets`: each reference's steps above the same base (ascending);
  `remap_fn`: the `_tabulated` function, whose `detail` table gives D.

  By tiles of `_TILE_ROWS` x `_TILE_COLS` coarse samples, each from its fine
  block (the 5 taps of its samples, mirrored at the image's borders, so the
  result equals `_downsample` of the whole image up to float rounding). D_j
  is 0 wherever |I - g_j| > sigma_r (beta = 1), so a tile is only computed
  for the references within `remap_fn.support` steps of its block's
  intensity range: every other reference's G_1 is exactly 0 there, and the
  stack starts as zeros. `used` (`_used_references`), when given, skips the
  references no band coefficient reads in a tile as well (their G_1 is left
  0 there). Measured at 4 MP with the detail preset (K = 81): on the
  benchmark's astronaut photo, a textured one, 81% of the tile-reference
  pairs remain; the used-set halves this function's time on scikit-image's
  rocket photo (0.58 -> 0.29 s) and gains little on the astronaut.

  `rows` = (r0, r1) computes only G_1 rows [r0, r1) (r0 a multiple of
  `_TILE_ROWS`, so the tiles are those of the whole computation: the same
  values bit for bit), as [K, r1 - r0, w/2], into `out` when given (the
  strips of `llf_fast._streamed_levels`).
  """
  height, width = qrel.shape
  h1, w1 = (height + 1) // 2, (width + 1) // 2
  k, cy, cx, m = len(offsets), _TILE_ROWS, _TILE_COLS, _TILE_REFS
  r0, r1 = rows if rows is not None else (0, h1)
  assert r0 % cy == 0 and 0 <= r0 <= r1 <= h1, (rows, h1)
  if out is None:
    stack = np.zeros((k, r1 - r0, w1), dtype=np.float32)
  else:
    stack = out
    stack.fill(0.0)
  tiles_x = -(-w1 // cx)
  cols = _mirror_index(2 * cx * np.arange(tiles_x)[:, None]
                       + _block_order(cx) - 2, width)
  order_y = _block_order(cy)
  detail = remap_fn.detail
  # D_j at steps s above the base: detail[starts[j] + s].
  starts = remap_fn.half - np.asarray(offsets, np.int64)
  support = remap_fn.support
  values = np.empty((m, 2 * cy + 3, 2 * cx + 3), dtype=np.float32)
  vert = np.empty((m, cy, 2 * cx + 3), dtype=np.float32)
  tiles = np.empty((m, cy, cx), dtype=np.float32)
  for y0 in range(r0, r1, cy):
    fine = _mirror_index(2 * y0 + order_y - 2, height)
    blocks = qrel[fine[None, :, None], cols[:, None, :]].astype(np.intp)
    lows = np.searchsorted(offsets, blocks.min(axis=(1, 2)) - support, "left")
    highs = np.searchsorted(offsets, blocks.max(axis=(1, 2)) + support,
                            "right")
    ch = min(cy, r1 - y0)
    for tile in range(tiles_x):
      x0 = tile * cx
      cw = min(cx, w1 - x0)
      refs = np.arange(lows[tile], highs[tile])
      if used is not None:
        refs = refs[used[y0 // cy, tile, refs]]
      for first in range(0, len(refs), m):
        batch = refs[first:first + m]
        for i, start in enumerate(starts[batch]):
          detail[start:].take(blocks[tile], out=values[i], mode="wrap")
        n = len(batch)
        _reduce_block(values[:n], cy, 1, out=vert[:n])
        _reduce_block(vert[:n], cx, 2, out=tiles[:n])
        if batch[-1] - batch[0] < n:  # A run: a slice writes faster.
          batch = slice(batch[0], batch[-1] + 1)
        stack[batch, y0 - r0:y0 - r0 + ch, x0:x0 + cw] = tiles[:n, :ch, :cw]
  return stack
