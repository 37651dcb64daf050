"""Band-pass coefficients of the fast local Laplacian filter, by strips.

Each output coefficient is the linear interpolation between the two
references that bracket its Gaussian value (`_Positions`, `_bracket`). Two
ways to compute a level's band:

* `_strip_band`: from each coefficient's two references only
  (`_interpolated_band`), given every reference's next Gaussian level as a
  [K, h', w'] stack; the usual path of `llf_fast`.
* `_band_and_reduce`: one reference at a time, its dense band weighted by the
  interpolation's hat function on the rows and columns that use it; memory
  that does not grow with K (large images at large K).

Both work by strips of rows with enough context that the result equals the
whole-level computation.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from data_prep import llf_resample

# Rows of a strip in `_band_and_reduce`: about this many samples, so a strip
# and its temporaries stay in the processor cache whatever the image size.
_STRIP_ELEMENTS = 1 << 17
# Extra rows above and below a strip: a band row needs the coarse rows within
# one of its half, each of which needs the fine rows within two of its double.
_HALO = 6


def _band_and_reduce(source: Callable, shape: tuple, out: np.ndarray,
                     position, index: int,
                     reuse_halo: bool = False) -> np.ndarray:
  """One level of one remapped image's pyramid, in horizontal strips.

  `source(r0, r1)` gives rows [r0, r1) of the level's Gaussian image G_l.
  Adds hat_weight(position - index) * L_l to `out` (the interpolation of the
  fast method) and returns G_{l+1}. Each strip is computed with `_HALO` rows of
  context, aligned to even rows, so the result equals the whole-image
  computation bit for bit (the mirror borders only apply at the image's own).
  With `reuse_halo` (an expensive source: the remapping), the rows shared with
  the previous strip are kept rather than computed twice.
  """
  height, width = shape
  coarse = np.empty(((height + 1) // 2, (width + 1) // 2), dtype=np.float32)
  rows = max(4 * _HALO, (_STRIP_ELEMENTS // max(width, 1)) // 2 * 2)
  fine, fine_start, fine_stop = None, 0, 0
  for y0 in range(0, height, rows):
    y1 = min(height, y0 + rows)
    a, b = max(0, y0 - _HALO), min(height, y1 + _HALO)
    if reuse_halo and fine is not None and a < fine_stop:
      fine = np.concatenate([fine[a - fine_start:], source(fine_stop, b)])
    else:
      fine = source(a, b)
    fine_start, fine_stop = a, b
    reduced = llf_resample._downsample(fine)
    coarse[y0 // 2:(y1 + 1) // 2] = reduced[(y0 - a) // 2:(y1 + 1 - a) // 2]
    pos = position[y0:y1]
    weight = np.subtract(pos, np.float32(index))
    np.abs(weight, out=weight)
    np.subtract(np.float32(1.0), weight, out=weight)
    np.maximum(weight, 0.0, out=weight)
    used = weight > 0.0
    rows_used = np.flatnonzero(used.any(axis=1))
    if not rows_used.size:  # No coefficient of the strip uses this reference.
      continue
    cols_used = np.flatnonzero(used[rows_used[0]:rows_used[-1] + 1].any(axis=0))
    # Only the box [u0, u1) x [v0, v1) of coefficients using the reference (u0
    # even, as y0 and a are; v0 even).
    u0, u1 = y0 + rows_used[0] // 2 * 2, y0 + rows_used[-1] + 1
    v0, v1 = cols_used[0] // 2 * 2, cols_used[-1] + 1
    weight = weight[u0 - y0:u1 - y0, v0:v1]
    # Coarse rows and columns needed by the box: one beyond each end.
    c0 = max(0, (u0 - a) // 2 - 1)
    c1 = min(reduced.shape[0], (u1 - a + 1) // 2 + 1)
    d0 = max(0, v0 // 2 - 1)
    d1 = min(reduced.shape[1], (v1 + 1) // 2 + 1)
    up = llf_resample._upsample(reduced[c0:c1, d0:d1],
                   (min(b - a - 2 * c0, 2 * (c1 - c0)),
                    min(width - 2 * d0, 2 * (d1 - d0))))
    band = fine[u0 - a:u1 - a, v0:v1] - up[u0 - a - 2 * c0:u1 - a - 2 * c0,
                                          v0 - 2 * d0:v1 - 2 * d0]
    band *= weight
    out[u0:u1, v0:v1] += band
  return coarse


class _Positions:
  """Fractional reference index clip((g - lo) / step, 0, K - 1) of a level's
  Gaussian coefficients g, evaluated on demand for a slice of rows."""

  def __init__(self, level: np.ndarray, lo: float, step: float, k: int):
    self.level, self.lo, self.inv, self.k = level, lo, 1.0 / step, k

  def __getitem__(self, rows) -> np.ndarray:
    return self.of(self.level[rows])

  def of(self, values: np.ndarray) -> np.ndarray:
    """The position of any Gaussian values of the level (same arithmetic)."""
    out = np.subtract(values, np.float32(self.lo), dtype=np.float32)
    out *= np.float32(self.inv)
    return np.clip(out, np.float32(0.0), np.float32(self.k - 1.0), out=out)


def _parity_taps(parity: int, size: int, coarse_size: int) -> list:
  """Upsampling taps of the fine samples parity, parity + 2, ... of one axis.

  [(coarse index per sample, weight)]: even 2m takes 0.1, 0.8, 0.1 of
  m - 1, m, m + 1; odd 2m + 1 takes 0.5, 0.5 of m, m + 1; mirrored at the
  borders as in `_expand_axis` (a single sample mirrors onto itself).
  """
  m = np.arange(parity, size, 2) // 2
  last = coarse_size - 1

  def mirror(index):
    index = np.abs(index)
    return np.clip(np.where(index > last, 2 * last - index, index), 0, last)

  if parity == 0:
    return [(mirror(m - 1), 0.1), (mirror(m), 0.8), (mirror(m + 1), 0.1)]
  return [(mirror(m), 0.5), (mirror(m + 1), 0.5)]


def _bracket(position: np.ndarray, k: int):
  """Lower bracketing reference j0 = floor(position) (<= k - 2) and t."""
  j0 = np.minimum(position.astype(np.intp), max(k - 2, 0))
  return j0, position - j0.astype(np.float32)


def _interpolated_band(lower: np.ndarray, upper: np.ndarray,
                       reduced: np.ndarray, j0: np.ndarray,
                       frac: np.ndarray,
                       coarse_rows: Optional[tuple] = None) -> np.ndarray:
  """sum_j hat(position - j) * (G^j - upsample(reduced[j])), sparsely.

  `lower`, `upper`: the level's remapped values G^j0, G^(j0+1) at each
  coefficient; `reduced` [K, h', w']: every reference's next Gaussian level;
  (j0, frac) = `_bracket(position)`. Every coefficient only uses the two
  references bracketing its position, so rather than upsampling all K images
  the band is evaluated at each coefficient for those two only: the
  upsampling is linear, so its (up to 3 x 3) taps apply to the
  interpolation (1 - t) reduced[j0] + t reduced[j0 + 1] of the coarse
  neighbours. Equal to the dense form up to float rounding.

  `coarse_rows` = (c0, c1): the band's coarse rows are reduced[:, c0:c1]
  (read in place when `reduced` is contiguous: no copy of the K-reference
  rows).
  """
  k = reduced.shape[0]
  height, width = j0.shape
  c0, c1 = coarse_rows if coarse_rows is not None else (0, reduced.shape[1])
  if not reduced.flags.c_contiguous or (
      k <= _VERTICAL_MAX_K and height > 1 and width > 1):
    reduced, c0, c1 = reduced[:, c0:c1], 0, c1 - c0
  if k <= _VERTICAL_MAX_K and height > 1 and width > 1:
    return _interpolated_band_rows(lower, upper, reduced, j0, frac)
  h1, w1 = c1 - c0, reduced.shape[-1]
  plane = reduced.shape[1] * w1
  value = np.subtract(upper, lower)
  value *= frac
  value += lower  # (1 - t) G^j0 + t G^(j0+1) at each coefficient.
  flat = reduced.reshape(-1)  # A view (contiguous).
  flat_upper = flat[plane:] if k > 1 else flat  # reduced[j + 1] at j's index.
  low = np.empty((height, width), dtype=np.float32)
  high = np.empty((height, width), dtype=np.float32)
  # The 4 parity classes of (row, column): each has fixed taps and weights.
  for py in range(min(2, height)):
    row_taps = _parity_taps(py, height, h1)
    for px in range(min(2, width)):
      col_taps = _parity_taps(px, width, w1)
      base = j0[py::2, px::2] * plane + c0 * w1
      total_low = total_high = None
      for rows, row_weight in row_taps:
        row_base = base + (rows * w1)[:, None]
        for cols, col_weight in col_taps:
          index = np.add(row_base, cols[None, :])
          weight = np.float32(row_weight * col_weight)
          tap_low = flat.take(index, mode="wrap")
          tap_low *= weight
          tap_high = flat_upper.take(index, mode="wrap")
          tap_high *= weight
          if total_low is None:
            total_low, total_high = tap_low, tap_high
          else:
            total_low += tap_low
            total_high += tap_high
      low[py::2, px::2] = total_low  # upsample(reduced[j0]) at the class.
      high[py::2, px::2] = total_high  # upsample(reduced[j0 + 1]).
  high = high - low
  high *= frac
  high += low
  value -= high
  return value


# Up to this many references, `_interpolated_band` upsamples every
# reference's rows densely and gathers only along the rows (2.5 taps per
# sample rather than 6.25); beyond, the K-fold dense pass costs more.
_VERTICAL_MAX_K = 24


def _interpolated_band_rows(lower: np.ndarray, upper: np.ndarray,
                            reduced: np.ndarray, j0: np.ndarray,
                            frac: np.ndarray) -> np.ndarray:
  """`_interpolated_band` with the vertical upsampling done for every
  reference (a dense [K, height, w'] pass) and the horizontal taps gathered
  per sample for its two references. Equal up to float rounding.

  The vertically upsampled rows get one mirrored column at each end, so the
  horizontal taps of a sample are at fixed offsets 0, 1, 2 from one index
  (no border cases, one index array per column parity).
  """
  k, n, w1 = reduced.shape
  height, width = j0.shape
  # A strip's coarse rows may reach one beyond its own: >= height rows.
  size = max(height, 2 * n - 1)
  rows = np.empty((k, size, w1 + 2), dtype=np.float32)
  llf_resample._expand_axis(reduced, size, 1, out=rows[:, :, 1:w1 + 1])
  if w1 > 1:
    rows[:, :, 0] = rows[:, :, 2]
    rows[:, :, w1 + 1] = rows[:, :, w1 - 1]
  else:
    rows[:, :, 0] = rows[:, :, 1]
    rows[:, :, 2] = rows[:, :, 1]
  flat = rows.reshape(-1)
  plane = size * (w1 + 2)
  row_base = (np.arange(height, dtype=np.intp) * (w1 + 2))[:, None]
  value = np.subtract(upper, lower)
  value *= frac
  value += lower  # (1 - t) G^j0 + t G^(j0+1) at each coefficient.
  for px in range(min(2, width)):
    index = j0[:, px::2] * plane
    index += row_base
    index += (np.arange(px, width, 2) // 2)[None, :]  # Padded column m.

    def tap(offset, upper_plane):
      return flat[offset + (plane if upper_plane and k > 1 else 0):].take(
          index, mode="wrap")

    if px == 0:  # 0.1 c[m-1] + 0.8 c[m] + 0.1 c[m+1].
      parts = []
      for up_plane in (False, True):
        side = tap(0, up_plane)
        side += tap(2, up_plane)
        side *= np.float32(0.1)
        centre = tap(1, up_plane)
        centre *= np.float32(0.8)
        centre += side
        parts.append(centre)
    else:  # 0.5 (c[m] + c[m+1]).
      parts = []
      for up_plane in (False, True):
        pair = tap(1, up_plane)
        pair += tap(2, up_plane)
        pair *= np.float32(0.5)
        parts.append(pair)
    low, high = parts
    high -= low
    high *= frac[:, px::2]
    high += low
    value[:, px::2] -= high
  return value


# Fine samples per strip of `_strip_band` (its K-reference coarse rows are a
# quarter of that per reference, and stay in cache while gathered).
_BAND_STRIP_ELEMENTS = 1 << 17


def _strip_band(out: np.ndarray, reduced: np.ndarray, position: "_Positions",
                pair: Callable, rows: Optional[tuple] = None,
                coarse_start: int = 0) -> None:
  """`out` += the band of one level from each coefficient's two references,
  by strips of rows.

  `reduced` [K, h', w'] holds every remapped image's next Gaussian level;
  `pair(a, b, j0, j1)` gives the level's remapped values of references j0 and
  j1 (per coefficient) on rows [a, b). Each strip goes through
  `_interpolated_band` with 4 rows of context (its mirror borders then only
  touch discarded rows) and the coarse rows it needs, so the result is the
  whole-level one while the gathers stay in cache.

  `rows` = (r0, r1) (even r0) only adds the band's rows [r0, r1), and
  `reduced` may then hold only the coarse rows from `coarse_start` on, as
  long as it has those the rows need: (max(0, r0 - 4) // 2 up to
  (min(h, r1 + 4) + 1) // 2 + 1, clipped to the level below).
  """
  height, width = out.shape
  k = reduced.shape[0]
  r0, r1 = rows if rows is not None else (0, height)
  coarse_height = (height + 1) // 2  # Rows of the whole level below.
  coarse_stop = coarse_start + reduced.shape[1]
  step = max(8, (_BAND_STRIP_ELEMENTS // max(width, 1)) // 2 * 2)
  for y0 in range(r0, r1, step):
    y1 = min(r1, y0 + step)
    a, b = max(0, y0 - 4), min(height, y1 + 4)
    c1 = min(coarse_height, (b + 1) // 2 + 1)
    assert coarse_start <= a // 2 and c1 <= coarse_stop, (a, c1, coarse_start,
                                                          coarse_stop)
    j0, frac = _bracket(position[a:b], k)
    lower, upper = pair(a, b, j0, np.minimum(j0 + 1, k - 1))
    band = _interpolated_band(
        lower, upper, reduced, j0, frac,
        coarse_rows=(a // 2 - coarse_start, c1 - coarse_start))
    out[y0:y1] += band[y0 - a:y1 - a]


def _table_pair(qvalues: np.ndarray, qbase: int, qrefs: np.ndarray,
                remap_fn: Callable) -> Callable:
  """`_strip_band`'s `pair` of level 0: remap_fn(qvalues, qrefs[j], qbase)
  (the detail D_j, as the stack) per coefficient, the shift of each
  reference looked up in a K-entry table."""
  table = remap_fn.detail
  shift = (qrefs - qbase - remap_fn.half).astype(np.intp)

  def pair(a, b, j0, j1):
    strip = qvalues[a:b]
    lower = table.take(np.subtract(strip, shift.take(j0)), mode="wrap")
    upper = table.take(np.subtract(strip, shift.take(j1)), mode="wrap")
    return lower, upper

  return pair


def _stack_pair(stack: np.ndarray, row_start: int = 0) -> Callable:
  """`_strip_band`'s `pair` of a level held as a [K, h, w] stack (contiguous),
  or of its rows from `row_start` on."""
  size = stack.shape[1] * stack.shape[2]
  flat = stack.reshape(-1)
  assert stack.flags.c_contiguous  # `flat` is a view, not a copy.
  width = stack.shape[2]

  def pair(a, b, j0, j1):
    local = np.arange((a - row_start) * width, (b - row_start) * width,
                      dtype=np.intp).reshape(j0.shape)
    lower = flat.take(j0 * size + local, mode="wrap")
    upper = flat.take(j1 * size + local, mode="wrap")
    return lower, upper

  return pair
