"""Deterministic, near-uniform points on the unit sphere (haze-line directions).

The non-local dehazing prior clusters the directions of I - A around a fixed set
of directions that tessellate the sphere. We use a Fibonacci (golden-angle)
spiral: point i of n sits at height z_i = 1 - (2 i + 1) / n and azimuth
i * pi * (3 - sqrt(5)). Every point covers the same area (4 pi / n) to within a
few percent, any n is possible (icosahedron subdivision only gives
10 * 4^k + 2 points), and the points are a pure function of n, so the
clustering, and every target derived from it, is reproducible bit for bit.
"""

from __future__ import annotations

import numpy as np

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


def fibonacci_sphere(n: int = 1000) -> np.ndarray:
  """n unit vectors [n, 3] spread evenly over the sphere (deterministic)."""
  if n < 1:
    raise ValueError(f"need at least one point, got {n}")
  index = np.arange(n, dtype=np.float64)
  z = 1.0 - (2.0 * index + 1.0) / n
  radius = np.sqrt(np.maximum(0.0, 1.0 - z * z))
  azimuth = index * GOLDEN_ANGLE
  return np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth), z],
                  axis=-1)
