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
  coefficient for its two references, by strips of rows for large images;
  or, for very wide ones at large K, only on the rows and columns that use a
  reference); only the Gaussian levels
  G_1, G_2, ... of the remapped images are computed whole. The pyramids are
  those of the details D_j = r_j(I) - I (the input's own pyramid adds back as
  I after the collapse, by linearity); with beta = 1, D_j is 0 wherever
  |I - g_j| > sigma_r, so at large K the G_1 of the references go by tiles
  that skip the references with no detail on a tile or that no band
  coefficient reads there (`llf_level1`).

Colour: the filter runs on one intensity channel and the colour ratios RGB / I
are restored afterwards. Intensity is I = (20 R + 40 G + B) / 61 (the weights of
Durand & Dorsey's tone mapper, also used by Paris et al.): a cheap luminance-like
mix that stays in [0, 1] for RGB in [0, 1]. "detail_enhancement" filters I
directly; "tone_mapping" filters log(I + eps), where sigma_r is a ratio.

This module is the public entry (presets, `llf_params`, the RGB filter, the
prep-targets operator) and holds the exact method. The fast method lives in
the modules below it, each importing only those after it in this list:
`llf_fast` (its driver: which path, level by level), `llf_level1` (every
reference's tiled G_1), `llf_bands` (the interpolated band coefficients, by
strips), `llf_resample` (bit-identical fast pyramid steps) and `llf_remap`
(the remapping r_g, analytic and tabulated, and the choice of K).
"""

from __future__ import annotations

from typing import Callable, Optional

import gin
import numpy as np

from data_prep import llf_fast
from data_prep import llf_remap
from data_prep import pyramid

INTENSITY_WEIGHTS = np.array([20.0, 40.0, 1.0], dtype=np.float32) / 61.0
# Offset of the log domain: one 8-bit step, so sensor noise in black shadows is
# not turned into huge log-differences.
LOG_EPS = 1.0 / 256.0


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
  remap_fn = lambda v, g: llf_remap.remap(  # noqa: E731
      v, g, sigma_r, alpha, beta)
  if method == "fast":
    return llf_fast._fast(values, levels, remap_fn, num_samples, sigma_r,
                          alpha)
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
      `llf_remap.default_num_samples` (8..128, spacing <= sigma_r / 2, and
      <= 0.0125 when alpha < 1).

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
