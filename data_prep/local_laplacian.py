"""Local Laplacian filter (Paris, Hasinoff & Kautz, SIGGRAPH 2011).

Two implementations of one definition:

* `method="exact"`: the per-coefficient definition of the 2011 paper. For each
  coefficient (level l, position p) take g = G_l[p] of the input's Gaussian
  pyramid, remap the input around g, build the Laplacian pyramid of the remapped
  image and keep its coefficient at (l, p). The remapped image is only needed
  on the coefficient's support, so each coefficient is computed on a patch of
  radius 6 * 2^l aligned to the subsampling grid; the patches of one level go
  through the pyramid code as a batch.
* `method="fast"`: Aubry, Paris, Hasinoff, Kautz & Durand (TOG 2014). Remap the
  whole image at K reference values of g, build each Laplacian pyramid once,
  and interpolate every output coefficient linearly between the two references
  that bracket its Gaussian-pyramid value. Each coefficient only needs those
  two references, so the band-pass coefficients are evaluated sparsely (per
  coefficient for its two references, or, for large images at large K, only
  on the rows and columns that use a reference); only the Gaussian levels
  G_1, G_2, ... of the remapped images are computed whole. The pyramids are
  those of the details D_j = r_j(I) - I (the input's own pyramid adds back as
  I after the collapse, by linearity); with beta = 1, D_j is 0 wherever
  |I - g_j| > sigma_r, so at large K the G_1 of the references go by tiles
  that skip the references with no detail on a tile or that no band
  coefficient reads there (`_detail_level1`, `_used_references`).

Colour: the filter runs on one intensity channel and the colour ratios RGB / I
are restored afterwards. Intensity is I = (20 R + 40 G + B) / 61 (the weights of
Durand & Dorsey's tone mapper, also used by Paris et al.): a cheap luminance-like
mix that stays in [0, 1] for RGB in [0, 1]. "detail_enhancement" filters I
directly; "tone_mapping" filters log(I + eps), where sigma_r is a ratio.
"""

from __future__ import annotations

from typing import Callable, Optional

import gin
import numpy as np

from data_prep import pyramid

INTENSITY_WEIGHTS = np.array([20.0, 40.0, 1.0], dtype=np.float32) / 61.0
# Offset of the log domain: one 8-bit step, so sensor noise in black shadows is
# not turned into huge log-differences.
LOG_EPS = 1.0 / 256.0
# The noise guard of the detail curve (paper section 5.1): differences below 1%
# (of the linear range, or 1% ratio in the log domain) are left unamplified.
NOISE_LEVEL = 0.01

PRESETS = {
    # Paper's target for FiveK photos: boost detail, keep edges (beta = 1).
    "detail_enhancement": dict(sigma_r=0.2, alpha=0.5, beta=1.0, domain="linear"),
    # Compress large-scale contrast in the log domain, keep detail (alpha = 1).
    "tone_mapping": dict(sigma_r=float(np.log(2.5)), alpha=1.0, beta=0.5,
                         domain="log"),
}


@gin.configurable
def llf_params(preset: str = "detail_enhancement",
               sigma_r: Optional[float] = None,
               alpha: Optional[float] = None,
               beta: Optional[float] = None,
               domain: Optional[str] = None,
               levels: Optional[int] = None,
               method: str = "fast",
               num_samples: Optional[int] = None) -> dict:
  """The local Laplacian settings of a named preset, with gin overrides.

  Bind with e.g. `llf_params.preset = 'tone_mapping'` or `llf_params.alpha = 0.25`.

  Returns:
    keyword arguments for `local_laplacian` (plain, JSON-serialisable values).
  """
  if preset not in PRESETS:
    raise ValueError(f"llf_params.preset: unknown {preset!r}; one of "
                     f"{sorted(PRESETS)}")
  params = dict(PRESETS[preset])
  for name, value in (("sigma_r", sigma_r), ("alpha", alpha), ("beta", beta),
                      ("domain", domain)):
    if value is not None:
      params[name] = value
  params.update(levels=levels, method=method, num_samples=num_samples)
  return params


def intensity(image: np.ndarray) -> np.ndarray:
  """I = (20 R + 40 G + B) / 61 of a float RGB image."""
  return np.asarray(image, dtype=np.float32) @ INTENSITY_WEIGHTS


def remap(values: np.ndarray, g, sigma_r: float, alpha: float,
          beta: float) -> np.ndarray:
  """The point-wise remapping r_g(i) of Paris et al. (2011), section 5.

  Inside |i - g| <= sigma_r (detail): g + sign(i - g) sigma_r f_d(|i - g| /
  sigma_r) with f_d(x) = x^alpha; for alpha < 1 a smooth step between 1% and 2%
  blends f_d with the identity so noise is not amplified. Outside (edges):
  g + sign(i - g) (beta (|i - g| - sigma_r) + sigma_r).
  """
  # In-place arithmetic: this runs K times per image in the fast method and
  # dominates its cost, so temporaries are kept to a minimum.
  dist = np.subtract(values, g, dtype=np.float32)
  sign = np.sign(dist)
  np.abs(dist, out=dist)
  if alpha == 1.0:
    mapped = dist.copy()
  else:
    mapped = np.multiply(dist, 1.0 / sigma_r, dtype=np.float32)
    np.minimum(mapped, 1.0, out=mapped)
    np.power(mapped, np.float32(alpha), out=mapped)
    mapped *= np.float32(sigma_r)
    if alpha < 1.0:
      # mapped = dist + smoothstep * (mapped - dist), the noise guard.
      t = np.subtract(dist, NOISE_LEVEL, dtype=np.float32)
      t *= np.float32(1.0 / NOISE_LEVEL)
      np.clip(t, 0.0, 1.0, out=t)
      step = t * t
      t *= -2.0
      t += 3.0
      step *= t
      mapped -= dist
      mapped *= step
      mapped += dist
  # Edge part beyond sigma_r: beta (|d| - sigma_r) + sigma_r.
  edge = dist if beta == 1.0 else dist * np.float32(beta) + np.float32(
      sigma_r * (1.0 - beta))
  np.copyto(mapped, edge, where=dist > sigma_r)
  mapped *= sign
  mapped += g
  return mapped


def default_num_samples(value_range: float, sigma_r: float,
                        alpha: float = 1.0) -> int:
  """K references of the fast method: at least 8, at most 128.

  Linear interpolation between references is accurate when the remapping
  changes slowly with g. With alpha >= 1 the curve is smooth and a spacing of
  sigma_r / 2 keeps the fast result within ~0.001 MAE of the exact one.

  With alpha < 1 the noise guard turns from the identity to the x^alpha curve
  over a 1% wide ramp (slope up to ~5 for the detail preset). A coefficient
  interpolated between references farther apart than that ramp mixes remapped
  pyramids whose detail gain differs a lot from the exact one (the identity at
  |i - g| ~ 0), and the error is periodic in g: concentric bands along smooth
  gradients (a sky) at the reference spacing. A spacing of 0.05 gave 0.005 MAE
  but a 99th-percentile error of 0.018-0.029 on crops of the bundled photos,
  0.025 hardly better; cubic (Catmull-Rom) interpolation across references does
  not help either, the ramp being narrower than the spacing. The spacing is
  therefore capped at 1.25 x the guard width (0.0125: 81 references over
  [0, 1]): p99 <= 0.0075, max <= 0.021, MAE <= 0.0016 vs the exact method on
  the same crops, no visible banding.
  """
  spacing = sigma_r / 2.0
  if alpha < 1.0:
    spacing = min(spacing, _GUARD_SPACING)
  return int(min(128, max(8, np.ceil(value_range / spacing - 1e-6) + 1)))


# Reference spacing of the fast method when alpha < 1: resolves the noise
# guard's ramp (see `default_num_samples`).
_GUARD_SPACING = 1.25 * NOISE_LEVEL


def _sl(ndim: int, axis: int, start, stop, step=None) -> tuple:
  """Index of slice(start, stop, step) along `axis` of an ndim-array."""
  idx = [slice(None)] * ndim
  idx[axis] = slice(start, stop, step)
  return tuple(idx)


def _expand_axis(coarse: np.ndarray, size: int, axis: int,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
  """`pyramid._upsample_axis` writing into one output array (bit-identical).

  `size` must be 2n - 1 or 2n for n coarse samples; `out` (optional) is the
  output array to fill.
  """
  n = coarse.shape[axis]
  nd = coarse.ndim
  shape = list(coarse.shape)
  shape[axis] = n + 2
  pad = np.empty(shape, dtype=coarse.dtype)
  pad[_sl(nd, axis, 1, n + 1)] = coarse
  if n > 1:
    pad[_sl(nd, axis, 0, 1)] = coarse[_sl(nd, axis, 1, 2)]
    pad[_sl(nd, axis, n + 1, n + 2)] = coarse[_sl(nd, axis, n - 2, n - 1)]
  else:
    pad[_sl(nd, axis, 0, 1)] = coarse
    pad[_sl(nd, axis, 2, 3)] = coarse
  shape[axis] = size
  if out is None:
    out = np.empty(shape, dtype=coarse.dtype)
  even = out[_sl(nd, axis, 0, None, 2)]
  np.multiply(pad[_sl(nd, axis, 0, n)], np.float32(0.1), out=even)
  tmp = pad[_sl(nd, axis, 1, n + 1)] * np.float32(0.8)
  even += tmp
  np.multiply(pad[_sl(nd, axis, 2, n + 2)], np.float32(0.1), out=tmp)
  even += tmp
  k = size // 2
  odd = out[_sl(nd, axis, 1, None, 2)]
  np.add(pad[_sl(nd, axis, 1, k + 1)], pad[_sl(nd, axis, 2, k + 2)], out=odd)
  odd *= np.float32(0.5)
  return out


def _upsample(coarse: np.ndarray, shape: tuple) -> np.ndarray:
  """`pyramid.upsample` of the fast method (bit-identical)."""
  nd = coarse.ndim
  return _expand_axis(_expand_axis(coarse, shape[0], nd - 2), shape[1], nd - 1)


def _reduce_last(x: np.ndarray) -> np.ndarray:
  """`_reduce_axis` along the last axis (bit-identical): the mirror-padded
  samples are split into contiguous even and odd arrays first, so the 5 taps
  run on contiguous data rather than with a stride of 2."""
  n = x.shape[-1]
  m = (n + 1) // 2
  pad = np.empty(x.shape[:-1] + (2 * m + 4,), dtype=x.dtype)
  pad[..., 2:n + 2] = x
  pad[..., 0] = x[..., 2]
  pad[..., 1] = x[..., 1]
  pad[..., n + 2] = x[..., n - 2]
  pad[..., n + 3] = x[..., n - 3]
  pad[..., n + 4:] = 0.0  # Unused (odd n).
  pairs = pad.reshape(x.shape[:-1] + (m + 2, 2))
  even = np.ascontiguousarray(pairs[..., 0])  # pad[2i]
  odd = np.ascontiguousarray(pairs[..., 1])  # pad[2i + 1]
  out = even[..., 1:m + 1] * np.float32(0.4)
  tmp = np.add(odd[..., 0:m], odd[..., 1:m + 1])
  tmp *= np.float32(0.25)
  out += tmp
  np.add(even[..., 0:m], even[..., 2:m + 2], out=tmp)
  tmp *= np.float32(0.05)
  out += tmp
  return out


def _reduce_axis(x: np.ndarray, axis: int) -> np.ndarray:
  """`pyramid.downsample` along one axis (n >= 3 samples), computing only the
  kept even samples: 0.4 x[2c] + 0.25 (x[2c-1] + x[2c+1]) + 0.05 (x[2c-2] +
  x[2c+2]) with the same mirror borders. Equal to the scipy filter up to float
  rounding (~1e-7), about 3x faster (no odd outputs, no strided scipy pass)."""
  n, nd = x.shape[axis], x.ndim
  m = (n + 1) // 2
  if axis == nd - 1:
    return _reduce_last(x)
  shape = list(x.shape)
  shape[axis] = n + 4
  pad = np.empty(shape, dtype=x.dtype)
  pad[_sl(nd, axis, 2, n + 2)] = x
  pad[_sl(nd, axis, 0, 1)] = x[_sl(nd, axis, 2, 3)]
  pad[_sl(nd, axis, 1, 2)] = x[_sl(nd, axis, 1, 2)]
  pad[_sl(nd, axis, n + 2, n + 3)] = x[_sl(nd, axis, n - 2, n - 1)]
  pad[_sl(nd, axis, n + 3, n + 4)] = x[_sl(nd, axis, n - 3, n - 2)]
  out = pad[_sl(nd, axis, 2, 2 * m + 1, 2)] * np.float32(0.4)
  tmp = np.add(pad[_sl(nd, axis, 1, 2 * m, 2)],
               pad[_sl(nd, axis, 3, 2 * m + 2, 2)])
  tmp *= np.float32(0.25)
  out += tmp
  np.add(pad[_sl(nd, axis, 0, 2 * m - 1, 2)], pad[_sl(nd, axis, 4, 2 * m + 3, 2)],
         out=tmp)
  tmp *= np.float32(0.05)
  out += tmp
  return out


def _downsample(x: np.ndarray) -> np.ndarray:
  """`pyramid.downsample` of the fast method (same result up to float noise)."""
  if x.shape[-1] < 3 or x.shape[-2] < 3:
    return pyramid.downsample(x)
  return _reduce_axis(_reduce_axis(x, x.ndim - 2), x.ndim - 1)


# Rows of a strip in `_band_and_reduce`: about this many samples, so a strip
# and its temporaries stay in the processor cache whatever the image size.
_STRIP_ELEMENTS = 1 << 17
# Extra rows above and below a strip: a band row needs the coarse rows within
# one of its half, each of which needs the fine rows within two of its double.
_HALO = 6
# Levels of at most this many samples go through as one [K, h, w] stack (and
# a level 0 of at most 4 times as many, see `_fast`).
_BATCH_ELEMENTS = 1 << 16


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
    reduced = _downsample(fine)
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
    up = _upsample(reduced[c0:c1, d0:d1],
                   (min(b - a - 2 * c0, 2 * (c1 - c0)),
                    min(width - 2 * d0, 2 * (d1 - d0))))
    band = fine[u0 - a:u1 - a, v0:v1] - up[u0 - a - 2 * c0:u1 - a - 2 * c0,
                                          v0 - 2 * d0:v1 - 2 * d0]
    band *= weight
    out[u0:u1, v0:v1] += band
  return coarse


# Every look-up of the fast method (`take`) has its indices in range by
# construction and uses mode="wrap", which leaves them unchanged: numpy's
# fastest take (1.5x the default "raise" on 2000-sample rows of int64
# indices, 1.4x on int32; "clip" is no faster than "raise").

# Samples per unit of the tabulated remapping of the fast method: 2^17 over the
# value range (a table of 2^18 + 1 floats, 1 MB).
_TABLE_SAMPLES = 1 << 17


def _tabulated(remap_fn: Callable, span: float):
  """r_g(v) = g + F(v - g) with F = r_0 tabulated, on a quantised intensity.

  The values and the references are quantised to steps of span / 2^17, so
  v - g is an exact integer number of steps and the remapping of a block of
  rows is one integer subtraction, one table look-up and one addition (the K
  remappings of the whole image dominate the cost of the fast method, K = 81
  for the detail preset). The quantisation moves v by at most span * 3.8e-6,
  i.e. <= 2e-5 after the noise guard's steepest slope (~5): far below the
  fast method's own error. The exact method keeps the analytic remapping.

  Returns:
    (fn, quantise): `fn(rows, q)` remaps the quantised rows `rows` (int32, a
    slice of `quantise(values)`) around the quantised reference q (an int,
    or one per sample); `fn(rows, q, base)` takes rows in steps above `base`
    and returns the detail r_g(v) - v (see there); `quantise(x)` gives the
    int32 steps of x. `fn.table`, `fn.detail`, `fn.half` and `fn.inv` expose
    the tables: F(d) is table[half + d steps] and D(d) = F(d) - d is
    detail[half + d steps], a step being inv; D is 0 beyond `fn.support`
    steps.
  """
  scale = _TABLE_SAMPLES / max(float(span), 1e-3)
  half = int(np.ceil(float(span) * scale)) + 2
  # r_0 is odd (r_0(-d) = -r_0(d) bit for bit), so only d >= 0 is evaluated.
  samples = np.arange(0, half + 1, dtype=np.float64) / scale
  samples = samples.astype(np.float32)
  positive = remap_fn(samples, np.float32(0.0)).astype(np.float32)
  table = np.concatenate([-positive[:0:-1], positive])
  # The detail part D(d) = F(d) - d (also odd): the fast method filters
  # D_g(v) = r_g(v) - v and adds the input back (linearity of the pyramids);
  # with beta = 1, D is exactly 0 beyond |d| > sigma_r, which lets whole
  # tiles of a reference be skipped (`_detail_level1`).
  positive -= samples
  detail = np.concatenate([-positive[:0:-1], positive])
  nonzero = np.flatnonzero(positive)
  inv = 1.0 / scale

  def quantise(x):
    return np.rint(np.asarray(x, dtype=np.float64) * scale).astype(np.int32)

  def fn(rows, q, base=None):
    if base is not None:  # rows: int steps above `base` (<= every q).
      # The detail D_g(v) = r_g(v) - v: the fast method filters it and adds
      # the input back; the values stay near 0, where float32 is finer.
      return detail[half - (q - base):].take(rows, mode="wrap")
    if np.ndim(q):  # One reference per sample.
      index = np.subtract(rows, (q - half).astype(np.int32), dtype=np.int32)
      out = table.take(index)
      out += (q * inv).astype(np.float32)
      return out
    index = np.subtract(rows, np.int32(q - half), dtype=np.int32)
    out = table.take(index)
    out += np.float32(q * inv)
    return out

  # For callers that gather per-sample references themselves.
  fn.table, fn.detail, fn.half, fn.inv = table, detail, half, inv
  # D(d) = 0 for |d| > support steps (the whole table when beta != 1).
  fn.support = int(nonzero[-1]) if nonzero.size else -1
  return fn, quantise


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
                       frac: np.ndarray) -> np.ndarray:
  """sum_j hat(position - j) * (G^j - upsample(reduced[j])), sparsely.

  `lower`, `upper`: the level's remapped values G^j0, G^(j0+1) at each
  coefficient; `reduced` [K, h', w']: every reference's next Gaussian level;
  (j0, frac) = `_bracket(position)`. Every coefficient only uses the two
  references bracketing its position, so rather than upsampling all K images
  the band is evaluated at each coefficient for those two only: the
  upsampling is linear, so its (up to 3 x 3) taps apply to the
  interpolation (1 - t) reduced[j0] + t reduced[j0 + 1] of the coarse
  neighbours. Equal to the dense form up to float rounding.
  """
  k = reduced.shape[0]
  height, width = j0.shape
  if k <= _VERTICAL_MAX_K and height > 1 and width > 1:
    return _interpolated_band_rows(lower, upper, reduced, j0, frac)
  h1, w1 = reduced.shape[-2:]
  value = np.subtract(upper, lower)
  value *= frac
  value += lower  # (1 - t) G^j0 + t G^(j0+1) at each coefficient.
  flat = reduced.reshape(-1)
  flat_upper = flat[h1 * w1:] if k > 1 else flat  # reduced[j + 1] at j's index.
  low = np.empty((height, width), dtype=np.float32)
  high = np.empty((height, width), dtype=np.float32)
  # The 4 parity classes of (row, column): each has fixed taps and weights.
  for py in range(min(2, height)):
    row_taps = _parity_taps(py, height, h1)
    for px in range(min(2, width)):
      col_taps = _parity_taps(px, width, w1)
      base = j0[py::2, px::2] * (h1 * w1)
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
  _expand_axis(reduced, size, 1, out=rows[:, :, 1:w1 + 1])
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


def _strip_band(out: np.ndarray, reduced: np.ndarray, position: "_Positions",
                pair: Callable) -> None:
  """`out` += the band of one level from each coefficient's two references,
  by strips of rows.

  `reduced` [K, h', w'] holds every remapped image's next Gaussian level;
  `pair(a, b, j0, j1)` gives the level's remapped values of references j0 and
  j1 (per coefficient) on rows [a, b). Each strip goes through
  `_interpolated_band` with 4 rows of context (its mirror borders then only
  touch discarded rows) and the coarse rows it needs, so the result is the
  whole-level one while the gathers stay in cache.
  """
  height, width = out.shape
  coarse_height = reduced.shape[1]
  k = reduced.shape[0]
  rows = max(8, (_BAND_STRIP_ELEMENTS // max(width, 1)) // 2 * 2)
  for y0 in range(0, height, rows):
    y1 = min(height, y0 + rows)
    a, b = max(0, y0 - 4), min(height, y1 + 4)
    c1 = min(coarse_height, (b + 1) // 2 + 1)
    j0, frac = _bracket(position[a:b], k)
    lower, upper = pair(a, b, j0, np.minimum(j0 + 1, k - 1))
    band = _interpolated_band(lower, upper, reduced[:, a // 2:c1], j0, frac)
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


def _stack_pair(stack: np.ndarray) -> Callable:
  """`_strip_band`'s `pair` of a level held as a [K, h, w] stack."""
  size = stack.shape[1] * stack.shape[2]
  flat = stack.reshape(-1)
  width = stack.shape[2]

  def pair(a, b, j0, j1):
    local = np.arange(a * width, b * width, dtype=np.intp).reshape(j0.shape)
    lower = flat.take(j0 * size + local, mode="wrap")
    upper = flat.take(j1 * size + local, mode="wrap")
    return lower, upper

  return pair


# Samples of the reference stack reduced per call at the deeper levels.
_REDUCE_ELEMENTS = 1 << 18

# Fine samples per strip of `_strip_band` (its K-reference coarse rows are a
# quarter of that per reference, and stay in cache while gathered).
_BAND_STRIP_ELEMENTS = 1 << 17
# Largest [K, h/2, w/2] stack of every reference's G_1 (bytes, K per pixel)
# for which the level-0 band goes through `_strip_band`: 4 MP at K = 81 and
# 24 MP at K = 8 fit; beyond it (12 MP and more at the detail preset's K = 81,
# 48 MP at K = 8) the references are filtered one at a time by strips, whose
# memory does not grow with K, so the 12-48 MP peaks of `peak_memory.py` stay
# those of that path (48 MP prep-targets under 4 GB).
_STACK_BYTES = 320 << 20


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
    return values[_sl(3, axis, start, stop)]

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
      first = _bracket(position.of(np.array(
          [lows[c0:c1].min() for c0, c1 in col_windows])), k)[0]
      last = _bracket(position.of(np.array(
          [highs[c0:c1].max() for c0, c1 in col_windows])), k)[0]
      for tx in range(tiles_x):
        used[ty, tx, first[tx]:last[tx] + 2] = True  # j0 .. j0 + 1.
  return used


def _detail_level1(qrel: np.ndarray, offsets: np.ndarray,
                   remap_fn: Callable,
                   used: Optional[np.ndarray] = None) -> np.ndarray:
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
  """
  height, width = qrel.shape
  h1, w1 = (height + 1) // 2, (width + 1) // 2
  k, cy, cx, m = len(offsets), _TILE_ROWS, _TILE_COLS, _TILE_REFS
  stack = np.zeros((k, h1, w1), dtype=np.float32)
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
  out = np.empty((m, cy, cx), dtype=np.float32)
  for y0 in range(0, h1, cy):
    rows = _mirror_index(2 * y0 + order_y - 2, height)
    blocks = qrel[rows[None, :, None], cols[:, None, :]].astype(np.intp)
    lows = np.searchsorted(offsets, blocks.min(axis=(1, 2)) - support, "left")
    highs = np.searchsorted(offsets, blocks.max(axis=(1, 2)) + support,
                            "right")
    ch = min(cy, h1 - y0)
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
        _reduce_block(vert[:n], cx, 2, out=out[:n])
        if batch[-1] - batch[0] < n:  # A run: a slice writes faster.
          batch = slice(batch[0], batch[-1] + 1)
        stack[batch, y0:y0 + ch, x0:x0 + cw] = out[:n, :ch, :cw]
  return stack


def _gaussian_levels(values: np.ndarray, levels: int) -> list:
  """`pyramid.gaussian_pyramid` with the fast `_downsample` (same up to
  float rounding, ~3x faster than the scipy filter)."""
  out = [values]
  for _ in range(levels - 1):
    out.append(_downsample(out[-1]))
  return out


def _fast(values: np.ndarray, levels: int, remap_fn: Callable,
          num_samples: Optional[int], sigma_r: float,
          alpha: float) -> np.ndarray:
  gaussian = _gaussian_levels(values, levels)
  lo, hi = float(values.min()), float(values.max())
  if hi - lo < 1e-6:  # Flat image: every remapping is the identity.
    return values.copy()
  k = num_samples or default_num_samples(hi - lo, sigma_r, alpha)
  refs = np.linspace(lo, hi, k)
  step = (hi - lo) / (k - 1)
  remap_fn, quantise = _tabulated(remap_fn, hi - lo)
  qrefs = [int(q) for q in quantise(refs)]
  # Look-up indices relative to the lowest step, quantised strip by strip (no
  # full-size float64 temporary; the rounding is monotonic, so the lowest step
  # is that of the minimum). int32, not intp: 4 bytes per pixel less on the
  # largest map of the filter (the look-up converts each strip, ~5% of the
  # time at K = 8).
  qbase = min(int(quantise(np.float32(lo))), min(qrefs))
  qrel = np.empty(values.shape, dtype=np.int32)
  rows = max(1, _STRIP_ELEMENTS // max(values.shape[1], 1))
  for r0 in range(0, values.shape[0], rows):
    strip = qrel[r0:r0 + rows]
    strip[...] = quantise(values[r0:r0 + rows])
    strip -= qbase
  # Fractional reference index of every Gaussian coefficient, computed where
  # it is used (a level's worth, or a strip's) rather than stored.
  positions = [_Positions(g, lo, step, k) for g in gaussian[:-1]]
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
    used = (_used_references(positions, gaussian[1].shape)
            if k >= _USED_MIN_K else None)
    stack = _detail_level1(qrel, np.asarray(qrefs, np.int64) - qbase,
                           remap_fn, used)
    _strip_band(out[0], stack, positions[0],
                _table_pair(qrel, qbase, np.asarray(qrefs, dtype=np.int64),
                            remap_fn))
    split = 1
  elif split > 0:
    stack = np.empty((k,) + gaussian[split].shape, dtype=np.float32)
    for index, q in enumerate(qrefs):
      source = lambda r0, r1, q=q: remap_fn(qrel[r0:r1], q, qbase)  # noqa
      for level in range(split):
        current = _band_and_reduce(source, gaussian[level].shape, out[level],
                                   positions[level], index, level == 0)
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
      reduced[first:first + batch] = _downsample(stack[first:first + batch])
    _strip_band(out[level], reduced, positions[level], _stack_pair(stack))
    stack = reduced
  # The bands are those of the details D_j = r_j(I) - I; the pyramid of I
  # itself (its bands and residual) adds back as I after the collapse.
  out.append(np.zeros(gaussian[-1].shape, np.float32))
  del positions, gaussian
  result = _collapse(out)
  result += values
  return result


def _collapse(bands: list) -> np.ndarray:
  """`pyramid.collapse` in place in the bands (bit-identical: `_upsample`
  equals `pyramid.upsample` and the sums are the same), without the
  full-size temporaries of the generic version."""
  image = bands[-1]
  for band in reversed(bands[:-1]):
    band += _upsample(image, band.shape[-2:])
    image = band
  return image


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


def _windows(size: int, level: int, radius: int, align: int, length: int):
  """Per coefficient of one axis at `level`: patch start, patch length, offset."""
  positions = np.arange(-(-size // 2 ** level)) * 2 ** level
  if size <= length:
    starts = np.zeros_like(positions)
    lengths = np.full_like(positions, size)
  else:
    starts = np.maximum(0, (positions - radius) // align * align)
    lengths = np.minimum(size, starts + length) - starts
  return starts, lengths, (positions - starts) >> level


def _exact(values: np.ndarray, levels: int, remap_fn: Callable,
           chunk_elements: int = 1 << 21) -> np.ndarray:
  gaussian = pyramid.gaussian_pyramid(values, levels)
  height, width = values.shape
  out = []
  for level in range(levels - 1):
    # A level-l coefficient depends on input samples within 6 * 2^l - 2; a
    # start aligned to 2^(l+1) keeps the patch's subsampling grid the image's.
    radius, align = 6 * 2 ** level, 2 ** (level + 1)
    length = 2 * radius + align + 1
    ys, ly, oy = _windows(height, level, radius, align, length)
    xs, lx, ox = _windows(width, level, radius, align, length)
    band = np.empty(gaussian[level].shape, dtype=values.dtype)
    for len_y in np.unique(ly):
      for len_x in np.unique(lx):
        rows, cols = np.nonzero(ly == len_y)[0], np.nonzero(lx == len_x)[0]
        step = max(1, chunk_elements // (len(cols) * len_y * len_x))
        col_idx = xs[cols][:, None] + np.arange(len_x)  # [nx, Lx]
        for first in range(0, len(rows), step):
          chunk = rows[first:first + step]
          row_idx = ys[chunk][:, None] + np.arange(len_y)  # [ny, Ly]
          patches = values[row_idx[:, None, :, None], col_idx[None, :, None, :]]
          g = gaussian[level][np.ix_(chunk, cols)][..., None, None]
          bands = pyramid.laplacian_pyramid(remap_fn(patches, g), level + 2)
          coeff = bands[level][np.arange(len(chunk))[:, None],
                               np.arange(len(cols))[None, :],
                               oy[chunk][:, None], ox[cols][None, :]]
          band[np.ix_(chunk, cols)] = coeff
    out.append(band)
  out.append(gaussian[-1])
  return pyramid.collapse(out)


def filter_channel(values: np.ndarray, sigma_r: float, alpha: float,
                   beta: float, levels: Optional[int] = None,
                   method: str = "fast",
                   num_samples: Optional[int] = None) -> np.ndarray:
  """Local Laplacian filter of one 2-D channel (any value range)."""
  values = np.asarray(values, dtype=np.float32)
  levels = levels or pyramid.num_levels(*values.shape)
  remap_fn = lambda v, g: remap(v, g, sigma_r, alpha, beta)  # noqa: E731
  if method == "fast":
    return _fast(values, levels, remap_fn, num_samples, sigma_r, alpha)
  if method == "exact":
    return _exact(values, levels, remap_fn)
  raise ValueError(f"method must be 'fast' or 'exact', got {method!r}")


def local_laplacian(image: np.ndarray, sigma_r: float, alpha: float,
                    beta: float, levels: Optional[int] = None,
                    method: str = "fast", domain: str = "linear",
                    num_samples: Optional[int] = None) -> np.ndarray:
  """Local Laplacian filter of a float RGB image in [0, 1].

  Args:
    image: float array [height, width, 3] in [0, 1].
    sigma_r: detail/edge threshold in the filtered domain (intensity units, or
      log-intensity units when domain="log").
    alpha: detail exponent; < 1 enhances detail, > 1 smooths it.
    beta: edge slope; < 1 compresses large-scale range (tone mapping).
    levels: pyramid depth including the residual; default from the size.
    method: "fast" (sampled references, Aubry et al. 2014) or "exact".
    domain: "linear" filters intensity, "log" filters log(intensity + 1/256).
    num_samples: references K of the fast method; default
      `default_num_samples` (8..128, spacing <= sigma_r / 2, and <= 0.0125
      when alpha < 1).

  Returns:
    float32 RGB [height, width, 3] in [0, 1].
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [h, w, 3], got {image.shape}")
  lum = intensity(image)
  if domain == "linear":
    filtered = filter_channel(lum, sigma_r, alpha, beta, levels, method,
                              num_samples)
    lum_out = np.maximum(filtered, 0.0, out=filtered)
  elif domain == "log":
    filtered = filter_channel(np.log(lum + LOG_EPS), sigma_r, alpha, beta,
                              levels, method, num_samples)
    lum_out = np.maximum(np.exp(filtered) - LOG_EPS, 0.0)
  else:
    raise ValueError(f"domain must be 'linear' or 'log', got {domain!r}")
  # Colour ratios RGB / I; the tiny offset only matters for black pixels,
  # where every channel is 0 and the output stays 0.
  # One 2-D gain lum_out / I and a single pass over the RGB image (large
  # images are memory-bound here, so no 3-channel temporaries).
  tiny = np.float32(1e-7)
  gain = lum_out.astype(np.float32, copy=False)
  gain /= lum + tiny
  out = np.multiply(image, gain[..., None])
  return np.clip(out, 0.0, 1.0, out=out)


@gin.configurable
def apply_local_laplacian(image: np.ndarray, params: Optional[dict] = None
                          ) -> np.ndarray:
  """The prep-targets operator: `local_laplacian` with `llf_params()` settings."""
  return local_laplacian(image, **(params if params is not None
                                   else llf_params()))
