"""The tiled G_1 of every reference (`data_prep.llf_level1`)."""

import importlib

import numpy as np
import pytest

from data_prep import llf_fast
from data_prep import llf_level1
from data_prep import llf_remap
from data_prep import pyramid

# `data_prep.local_laplacian` is the function (the package re-exports it); the
# module holding it is reached through importlib.
llf = importlib.import_module("data_prep.local_laplacian")


def _patchwork(rng):
  """A 96x130 intensity image whose regions span very different ranges: a
  dark textured band, a bright flat-ish band with a step, a full-range ramp
  and a small bright square on black (each tile needs other references)."""
  y, x = np.mgrid[0:96, 0:130].astype(np.float32)
  image = np.empty((96, 130), np.float32)
  image[:30] = 0.05 + 0.04 * rng.random((30, 130))
  image[30:60] = np.where(x[30:60] < 70, 0.85, 0.95) + 0.01 * np.sin(x[30:60])
  image[60:] = x[60:] / 129.0
  image[70:80, 10:20] = 1.0
  image[70:80, 100:110] = 0.0
  return image


@pytest.mark.parametrize("levels", [3, 6])
def test_tile_skipping_keeps_every_needed_reference(monkeypatch, levels):
  """The tiled G_1 of the references (`_detail_level1`, skipping references
  whose detail is 0 on a tile or that no band coefficient reads there) gives
  the output of the per-reference strip path, which computes every
  reference everywhere; and it does skip (else the test proves nothing)."""
  values = _patchwork(np.random.default_rng(3))
  args = (0.2, 0.5, 1.0, levels, "fast", 81)
  # Many tiles on a small image.
  monkeypatch.setattr(llf_level1, "_TILE_ROWS", 4)
  monkeypatch.setattr(llf_level1, "_TILE_COLS", 8)
  monkeypatch.setattr(llf_level1, "_TILE_REFS", 5)
  monkeypatch.setattr(llf_level1, "_USED_MIN_K", 2)
  calls = []
  detail_level1 = llf_level1._detail_level1

  def spy(qrel, offsets, remap_fn, used=None):
    stack = detail_level1(qrel, offsets, remap_fn, used)
    calls.append((used, stack))
    return stack

  monkeypatch.setattr(llf_level1, "_detail_level1", spy)
  tiled = llf.filter_channel(values, *args)
  (used, stack), = calls
  # Some references are never read in a tile (at 3 levels; at 6 the deep
  # levels read nearly all in so small an image), or have no detail there.
  assert used.mean() < (0.8 if levels == 3 else 1.0)
  assert np.mean(stack == 0.0) > 0.3
  monkeypatch.setattr(llf_fast, "_STACK_BYTES", 0)  # The per-reference path.
  monkeypatch.setattr(llf_fast, "_STRIP_STACK_BYTES", 0)
  monkeypatch.setattr(llf_fast, "_BATCH_ELEMENTS", 8)
  strips = llf.filter_channel(values, *args)
  np.testing.assert_allclose(tiled, strips, atol=2e-6)
  assert np.abs(strips - values).max() > 0.02  # The filter did something.


def test_detail_level1_matches_the_downsampled_detail(monkeypatch):
  """Without the used-set, each reference's tiled G_1 is `_downsample` of its
  whole detail image D_j = r_j(I) - I (odd sizes: mirrored borders)."""
  values = _patchwork(np.random.default_rng(4))[:77, :101]
  monkeypatch.setattr(llf_level1, "_TILE_ROWS", 6)
  monkeypatch.setattr(llf_level1, "_TILE_COLS", 10)
  remap_fn = lambda v, g: llf_remap.remap(v, g, 0.2, 0.5, 1.0)  # noqa: E731
  fn, quantise = llf_remap._tabulated(remap_fn, 1.0)
  qrel = quantise(values)
  offsets = quantise(np.linspace(0.0, 1.0, 40)).astype(np.int64)
  stack = llf_level1._detail_level1(qrel, offsets, fn)
  for j, q in enumerate(offsets):
    detail = remap_fn(qrel * np.float32(fn.inv), q * fn.inv) - qrel * np.float32(
        fn.inv)
    np.testing.assert_allclose(stack[j], pyramid.downsample(detail),
                               atol=2e-6)
