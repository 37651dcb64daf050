"""scoring.score_files: the read-ahead pipeline and its speed mechanisms.

The pipeline (reader threads, read-ahead, the model called on short calls on
a CPU, a reduced JPEG decode, one trace per function) must give exactly the
scores of scoring each file alone through the reading contract and the model.
"""

import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import serving_helpers as helpers
from nima_enhance import metrics
from nima_enhance import scoring
from nima_enhance.data import ava
from nima_enhance.data import images

H, W = helpers.PREPROCESSING["image_size"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  return scoring.load_nima(helpers.make_nima_dir(
      str(tmp_path_factory.mktemp("scoring") / "nima")))


def _photo_files(folder):
  """Real-photo files of several sizes and formats, and one damaged JPEG."""
  paths = []
  for i, (name, size, fmt) in enumerate([
      ("astronaut", (512, 384), "JPEG"),   # >= 8x 48x64: decoded at 1/8
      ("coffee", (300, 200), "JPEG"),      # 4x: decoded at 1/4
      ("chelsea", (90, 120), "PNG"),
      ("rocket", (64, 48), "JPEG"),        # enlarged
      ("astronaut", (700, 500), "JPEG"),
      ("coffee", (130, 97), "PNG"),
      ("chelsea", (260, 200), "JPEG")]):
    pil = Image.fromarray(helpers.photo_uint8(name)).resize(size,
                                                           Image.BICUBIC)
    path = os.path.join(folder, f"{i}_{name}.{fmt.lower()[:3]}")
    pil.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    paths.append(path)
  broken = os.path.join(folder, "broken.jpg")
  with open(broken, "wb") as f:
    f.write(b"\xff\xd8\xff\xe0 not a jpeg")
  paths.insert(3, broken)
  return paths


def _one_by_one(bundle, path):
  """One file alone: the reading contract, preprocessing, the Keras model."""
  image = images.read_image(path, target_size=ava.decode_size(
      bundle.preprocessing))
  pixels = scoring.eval_pixels_tf(tf.constant(image), bundle.preprocessing)
  return bundle.model(pixels[None], training=False).numpy()[0]


def test_pipeline_equals_one_by_one(bundle, tmp_path, monkeypatch):
  paths = _photo_files(str(tmp_path))
  # Calls of 2 images inside batches of 3: calls and batches straddle the
  # damaged file and the last, short batch.
  monkeypatch.setattr(scoring, "CPU_CALL_PIXELS", 2 * H * W)
  if not tf.config.list_logical_devices("GPU"):
    assert scoring.model_call_size(3, H, W) == 2
  scored = list(scoring.score_files(bundle, paths, batch_size=3,
                                    num_threads=3))
  assert [s.path for s in scored] == paths
  assert [bool(s.error) for s in scored] == [p.endswith("broken.jpg")
                                             for p in paths]
  assert "broken.jpg" in scored[3].error
  good = [s for s in scored if not s.error]
  expected = np.stack([_one_by_one(bundle, s.path) for s in good])
  got = np.stack([s.distribution for s in good])
  np.testing.assert_allclose(got, expected, atol=2e-6)
  # The images score differently, so a score given to the wrong file or a
  # call's rows shifted would show.
  means = metrics.mean_score(expected).numpy()
  assert np.min(np.abs(np.diff(np.sort(means)))) > 1e-5
  # A different batch and call split gives the same scores.
  monkeypatch.setattr(scoring, "CPU_CALL_PIXELS", 10 * H * W)
  again = [s.distribution for s in scoring.score_files(bundle, paths, 8)
           if not s.error]
  np.testing.assert_allclose(np.stack(again), expected, atol=2e-6)


def test_one_trace_for_every_size(bundle, tmp_path):
  paths = [p for p in _photo_files(str(tmp_path)) if "broken" not in p]
  for batch in (3, 4):  # calls of different lengths
    list(scoring.score_files(bundle, paths, batch))
  pixels_fn = scoring._pixels_fn(bundle.preprocessing)  # pylint: disable=protected-access
  assert pixels_fn.experimental_get_tracing_count() == 1
  assert bundle._predict.experimental_get_tracing_count() == 1  # pylint: disable=protected-access


def test_large_jpeg_is_decoded_reduced(bundle, tmp_path):
  # 8x the input in both directions: libjpeg's 1/8 decode (block means), not
  # the full decode, feeds the resize.
  pil = Image.fromarray(helpers.photo_uint8("astronaut")).resize(
      (8 * W + 5, 8 * H + 3), Image.BICUBIC)
  buffer = io.BytesIO()
  pil.save(buffer, "JPEG", quality=90)
  path = tmp_path / "large.jpg"
  path.write_bytes(buffer.getvalue())
  got = scoring.file_pixels_fn(bundle.preprocessing)(str(path))
  eighth = tf.io.decode_jpeg(buffer.getvalue(), channels=3,
                             ratio=8).numpy() / np.float32(255)
  assert eighth.shape[:2] == (H + 1, W + 1)  # ceil(size / 8)
  reduced = scoring.eval_pixels(eighth, bundle.preprocessing)
  full = scoring.eval_pixels(images.read_image(str(path)),
                             bundle.preprocessing)
  np.testing.assert_allclose(got, reduced, atol=1e-3)
  # The full decode gives visibly other pixels: the check above can fail.
  assert np.max(np.abs(full - reduced)) > 1.0


def test_model_call_size(bundle):
  with pytest.raises(ValueError, match="batch size"):
    scoring.score_files(bundle, [], 0)
  if tf.config.list_logical_devices("GPU"):
    assert scoring.model_call_size(32, 480, 640) == 32
    return
  assert scoring.model_call_size(32, 480, 640) == 1
  assert scoring.model_call_size(32, 224, 224) == 6
  assert scoring.model_call_size(3, 48, 64) == 3
  assert scoring.model_call_size(32, 2000, 3000) == 1
