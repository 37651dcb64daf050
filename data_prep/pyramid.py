"""Gaussian and Laplacian pyramids (Burt & Adelson) on the last two axes.

The 5-tap kernel [.05 .25 .4 .25 .05] is applied separably with whole-sample
symmetric borders (`x[-i] = x[i]`, scipy's "mirror"). Levels keep the even
samples, so a patch that starts on a multiple of 2^levels and ends at the image
border gets exactly the coefficients of the whole image there (the exact local
Laplacian filter relies on it). Every function accepts arrays of shape [..., height, width], so a
stack of remapped images (the fast local Laplacian filter) or a batch of patches
(the exact one) goes through in one vectorised call.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
from scipy import ndimage

KERNEL = np.array([0.05, 0.25, 0.4, 0.25, 0.05], dtype=np.float64)

# The coarsest level keeps at least this many samples on its short side, so the
# residual still holds a (tiny) image rather than a single mean value.
_MIN_COARSEST_SIDE = 4


def num_levels(height: int, width: int) -> int:
  """Pyramid depth from the image size: halve until the short side is ~4.

  Returns the number of levels including the coarse residual (>= 1); for a
  256x256 image: 256, 128, ..., 4 -> 7 levels.
  """
  side = min(height, width)
  levels = 1
  while side >= 2 * _MIN_COARSEST_SIDE:
    side = (side + 1) // 2
    levels += 1
  return levels


def downsample(image: np.ndarray) -> np.ndarray:
  """Blurs with the 5-tap kernel and keeps even samples: [..., h, w] -> ceil/2."""
  kernel = KERNEL.astype(image.dtype)
  # Subsampling rows before filtering columns halves the work of the second pass.
  rows = ndimage.correlate1d(image, kernel, axis=-2, mode="mirror")[..., ::2, :]
  return ndimage.correlate1d(rows, kernel, axis=-1, mode="mirror")[..., ::2]


def _upsample_axis(coarse: np.ndarray, size: int, axis: int) -> np.ndarray:
  """Polyphase form of "insert zeros, filter with 2 * KERNEL" along one axis.

  Even outputs are 0.1 c[k-1] + 0.8 c[k] + 0.1 c[k+1]; odd outputs are
  0.5 (c[k] + c[k+1]); the coarse signal is mirror-extended by one sample.
  """
  coarse = np.moveaxis(coarse, axis, -1)
  n = coarse.shape[-1]
  if n > 1:
    padded = np.concatenate([coarse[..., 1:2], coarse, coarse[..., n - 2:n - 1]],
                            axis=-1)
  else:  # A single sample mirrors onto itself.
    padded = np.concatenate([coarse, coarse, coarse], axis=-1)
  left, centre, right = padded[..., :-2], padded[..., 1:-1], padded[..., 2:]
  out = np.empty(coarse.shape[:-1] + (2 * n,), dtype=coarse.dtype)
  out[..., 0::2] = 0.1 * left + 0.8 * centre + 0.1 * right
  out[..., 1::2] = 0.5 * (centre + right)
  return np.moveaxis(out[..., :size], -1, axis)


def upsample(coarse: np.ndarray, shape: tuple) -> np.ndarray:
  """Expands [..., h', w'] to [..., shape[0], shape[1]] (inverse of downsample)."""
  return _upsample_axis(_upsample_axis(coarse, shape[0], -2), shape[1], -1)


def gaussian_pyramid(image: np.ndarray, levels: int) -> List[np.ndarray]:
  """[G_0 = image, G_1, ..., G_{levels-1}]."""
  pyramid = [image]
  for _ in range(levels - 1):
    pyramid.append(downsample(pyramid[-1]))
  return pyramid


def laplacian_pyramid(image: np.ndarray, levels: int,
                      gaussian: Optional[List[np.ndarray]] = None
                      ) -> List[np.ndarray]:
  """[L_0, ..., L_{levels-2}, G_{levels-1}]: band-pass levels plus residual."""
  gaussian = gaussian if gaussian is not None else gaussian_pyramid(image, levels)
  pyramid = []
  for fine, coarse in zip(gaussian[:-1], gaussian[1:]):
    pyramid.append(fine - upsample(coarse, fine.shape[-2:]))
  pyramid.append(gaussian[-1])
  return pyramid


def collapse(pyramid: List[np.ndarray]) -> np.ndarray:
  """Reconstructs the image from a Laplacian pyramid (exact inverse)."""
  image = pyramid[-1]
  for band in reversed(pyramid[:-1]):
    image = band + upsample(image, band.shape[-2:])
  return image
