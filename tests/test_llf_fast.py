"""The fast local Laplacian driver (`data_prep.llf_fast`): its two paths agree."""

import importlib

import numpy as np
import pytest

from data_prep import llf_bands
from data_prep import llf_fast
from data_prep import llf_level1

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
  monkeypatch.setattr(llf_fast, "_STRIP_STACK_BYTES", 0)
  monkeypatch.setattr(llf_fast, "_BATCH_ELEMENTS", 8)
  monkeypatch.setattr(llf_bands, "_STRIP_ELEMENTS", 12 * 70)
  per_reference = llf.filter_channel(values, *args)
  np.testing.assert_allclose(strips, per_reference, atol=2e-6)


@pytest.mark.parametrize("levels,k", [(6, 81), (4, 30)])
def test_streamed_path_equals_per_reference_path(real_photo, monkeypatch,
                                                 levels, k):
  """The large-image path by strips of G_1 rows (`_streamed_levels`: every
  reference's G_1 by tiles skipping references, the bands of the first levels
  strip by strip) equals the one-reference-at-a-time strip path
  (`_band_and_reduce`, independent code computing every reference
  everywhere), and the stack path bit for bit; forced on a small image with
  many strips, small tiles and a deep streamed part."""
  values = llf.intensity(np.ascontiguousarray(real_photo[60:230, 150:261]))
  args = (0.2, 0.5, 1.0, levels, "fast", k)
  monkeypatch.setattr(llf_level1, "_TILE_ROWS", 4)
  monkeypatch.setattr(llf_level1, "_TILE_COLS", 8)
  monkeypatch.setattr(llf_level1, "_USED_MIN_K", 2)
  whole = llf.filter_channel(values, *args)  # The stack path.
  monkeypatch.setattr(llf_fast, "_STACK_BYTES", 0)
  monkeypatch.setattr(llf_fast, "_BATCH_ELEMENTS", 8)
  # Keep only G_3's stack (or the residual's level): two streamed levels+.
  w1 = (values.shape[1] + 1) // 2
  monkeypatch.setattr(llf_fast, "_STREAM_STACK_BYTES", k * 22 * 14 * 4)
  depth = llf_fast._stream_depth(
      [(-(-values.shape[0] // 2 ** l), -(-values.shape[1] // 2 ** l))
       for l in range(levels)], k)
  assert depth == min(3, levels - 1)
  align = llf_fast._stream_align(depth)
  monkeypatch.setattr(llf_fast, "_STRIP_STACK_BYTES", 4 * k * w1 * (
      llf_fast._stream_context(depth, levels) + 2 * align))
  calls, skipped = [], []
  streamed, tiles = llf_fast._streamed_levels, llf_level1._detail_level1

  def spy(*args, **kwargs):
    calls.append(args[-2:] + (kwargs["keep"],))
    return streamed(*args, **kwargs)

  def tile_spy(qrel, offsets, remap_fn, used=None, rows=None, out=None):
    stack = tiles(qrel, offsets, remap_fn, used, rows, out)
    skipped.append(np.mean(stack == 0.0))
    return stack

  monkeypatch.setattr(llf_fast, "_streamed_levels", spy)
  monkeypatch.setattr(llf_level1, "_detail_level1", tile_spy)
  strips = llf.filter_channel(values, *args)
  (depth_used, rows, keep), = calls
  assert (depth_used, rows, keep) == (depth, 2 * align, depth < levels - 1)
  assert len(skipped) > 5 and np.mean(skipped) > 0.3  # Tiles skip refs.
  np.testing.assert_array_equal(strips, whole)
  monkeypatch.setattr(llf_fast, "_STRIP_STACK_BYTES", 0)  # Per reference.
  monkeypatch.setattr(llf_bands, "_STRIP_ELEMENTS", 12 * values.shape[1])
  per_reference = llf.filter_channel(values, *args)
  np.testing.assert_allclose(strips, per_reference, atol=2e-6)
  assert np.abs(strips - values).max() > 0.02  # The filter did something.
