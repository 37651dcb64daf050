"""The fast local Laplacian driver (`data_prep.llf_fast`): its two paths agree."""

import importlib

import numpy as np
import pytest

from data_prep import llf_bands
from data_prep import llf_fast

# `data_prep.local_laplacian` is the function (the package re-exports it); the
# module holding it is reached through importlib.
llf = importlib.import_module("data_prep.local_laplacian")


@pytest.mark.parametrize("k", [8, 30])
def test_fast_strip_paths_agree(real_photo, monkeypatch, k):
  """The level bands from each coefficient's two references, in strips of a
  few rows (`_strip_band`), equal the one-reference-at-a-time strip path of
  large images at large K (independent code: dense per-reference bands)."""
  values = llf.intensity(np.ascontiguousarray(real_photo[40:130, 60:130]))
  args = (0.2, 0.5, 1.0, 5, "fast", k)
  # 10-row strips.
  monkeypatch.setattr(llf_bands, "_BAND_STRIP_ELEMENTS", 10 * 70)
  strips = llf.filter_channel(values, *args)
  monkeypatch.setattr(llf_fast, "_STACK_BYTES", 0)
  monkeypatch.setattr(llf_fast, "_BATCH_ELEMENTS", 8)
  monkeypatch.setattr(llf_bands, "_STRIP_ELEMENTS", 12 * 70)
  per_reference = llf.filter_channel(values, *args)
  np.testing.assert_allclose(strips, per_reference, atol=2e-6)
