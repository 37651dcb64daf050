"""The pyramid steps of the fast local Laplacian filter (`llf_fast`).

Equal to those of `pyramid` (the same 5-tap kernel and mirror borders):
upsampling and the collapse bit for bit, the reductions up to float rounding
(they compute only the kept even samples, about 3x faster than the scipy
filter); the collapse works in place in the bands.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from data_prep import pyramid

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


def _gaussian_levels(values: np.ndarray, levels: int) -> list:
  """`pyramid.gaussian_pyramid` with the fast `_downsample` (same up to
  float rounding, ~3x faster than the scipy filter)."""
  out = [values]
  for _ in range(levels - 1):
    out.append(_downsample(out[-1]))
  return out


def _collapse(bands: list) -> np.ndarray:
  """`pyramid.collapse` in place in the bands (bit-identical: `_upsample`
  equals `pyramid.upsample` and the sums are the same), without the
  full-size temporaries of the generic version."""
  image = bands[-1]
  for band in reversed(bands[:-1]):
    band += _upsample(image, band.shape[-2:])
    image = band
  return image
