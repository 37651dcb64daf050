"""Target generation for enhancement training: local Laplacian, dehazing.

Public API (docs/architecture.md, "Python API"):
  local_laplacian(image, sigma_r, alpha, beta, levels=None, method="fast")
  nonlocal_dehaze(image, airlight=None, gamma=1.0) -> (dehazed, t, airlight)
  estimate_airlight(image)
"""

from data_prep.airlight import estimate_airlight
from data_prep.dehaze import nonlocal_dehaze
from data_prep.local_laplacian import llf_params
from data_prep.local_laplacian import local_laplacian

__all__ = ["local_laplacian", "llf_params", "nonlocal_dehaze",
           "estimate_airlight"]
