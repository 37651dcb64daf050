"""nima_enhance.serving.saved_model: the clients of an exported SavedModel.

`load_enhancer` and `score_files_with_saved_model` on the exports of
conftest's session fixtures (shared with tests/test_export.py) are compared
with the restored checkpoint run through the library's own path
(inference.load_enhancer / scoring.score_files) on real photos.
"""

import os

import numpy as np
import pytest

import serving_helpers as helpers
from nima_enhance import scoring
from nima_enhance.data import images
from nima_enhance.enhance import inference
from nima_enhance.serving import saved_model

TOL = 1e-4


def test_load_enhancer_is_a_drop_in_for_the_bundle(can_dir, enhancer_export,
                                                   scorer_export):
  served = saved_model.load_enhancer(enhancer_export[0])
  assert served.metadata["kind"] == "enhancer"
  image = images.decode_image_bytes(helpers.enhancer_requests()["coffee.jpg"])
  np.testing.assert_allclose(served(image),
                             inference.load_enhancer(can_dir)(image),
                             atol=TOL, rtol=0)
  with pytest.raises(saved_model.ExportError, match="wrong kind"):
    saved_model.load_enhancer(scorer_export[1])
  with pytest.raises(FileNotFoundError):
    saved_model.load_enhancer(
        os.path.dirname(os.path.dirname(scorer_export[1])))


def test_score_files_with_saved_model_matches_score_files(
    nima_dir, scorer_export, photo_files, tmp_path):
  broken = tmp_path / "broken.jpg"  # sniffs as JPEG, the decoder rejects it
  broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
  empty = tmp_path / "empty.png"
  empty.write_bytes(b"")
  text = tmp_path / "notes.jpg"
  text.write_bytes(b"not an image")
  paths = [photo_files[0], str(broken), photo_files[1], str(empty),
           str(tmp_path / "missing.jpg"), str(text), photo_files[2]]
  reference = list(scoring.score_files(scoring.load_nima(nima_dir), paths))
  served = list(saved_model.score_files_with_saved_model(
      scorer_export[0], paths, batch_size=2))
  assert [s.path for s in served] == paths
  assert [s.error is None for s in served] == [r.error is None
                                               for r in reference]
  assert [s.error is None for s in served] == [True, False, True, False,
                                               False, False, True]
  for s, r in zip(served, reference):
    if r.error is None:
      np.testing.assert_allclose(s.distribution, r.distribution, atol=TOL,
                                 rtol=0)
      assert abs(s.mean - r.mean) < TOL and abs(s.std - r.std) < TOL
