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
from nima_enhance.data import ava_pipeline
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
  image = images.read_image(path, target_size=ava_pipeline.decode_size(
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
  reader = scoring._planned_fn(bundle.preprocessing)  # pylint: disable=protected-access
  assert reader.experimental_get_tracing_count() == 1
  assert bundle._predict.experimental_get_tracing_count() == 1  # pylint: disable=protected-access


def test_jpeg_reader_equals_the_two_step_contract(bundle, tmp_path):
  """One graph call per JPEG: the pixels of read_image + eval_pixels."""
  paths = [p for p in _photo_files(str(tmp_path)) if "broken" not in p]
  # A sideways-stored photo with EXIF orientation 6 (upright: 384 x 512).
  exif = Image.Exif()
  exif[0x0112] = 6
  sideways = str(tmp_path / "sideways.jpg")
  Image.fromarray(helpers.photo_uint8("coffee")).resize(
      (512, 384), Image.BICUBIC).transpose(Image.Transpose.ROTATE_90).save(
          sideways, "JPEG", quality=90, exif=exif.tobytes())
  paths.append(sideways)
  load = scoring.file_pixels_fn(bundle.preprocessing)
  reader = scoring._planned_fn(bundle.preprocessing)  # pylint: disable=protected-access
  before = reader.experimental_get_tracing_count()
  for path in paths:
    expected = scoring.eval_pixels(
        images.read_image(path, target_size=ava_pipeline.decode_size(
            bundle.preprocessing)), bundle.preprocessing)
    got = load(path)
    assert got.shape == (H, W, 3)
    np.testing.assert_allclose(got, expected, atol=2e-3, err_msg=path)
  assert max(reader.experimental_get_tracing_count() - before, 0) <= 1
  # JPEGs go through the one-call reader (the PNGs do not).
  calls = []
  original = images.decode_jpeg_with

  def spy(data, run, **kwargs):
    out = original(data, run, **kwargs)
    calls.append(out is not None)
    return out

  try:
    images.decode_jpeg_with = spy
    for path in paths:
      load(path)
  finally:
    images.decode_jpeg_with = original
  assert calls == [p.endswith((".jpe", ".jpg")) for p in paths]


def test_jpeg_reader_refuses_damaged_files(bundle, tmp_path):
  load = scoring.file_pixels_fn(bundle.preprocessing)
  buffer = io.BytesIO()
  Image.fromarray(helpers.photo_uint8("astronaut")).save(buffer, "JPEG",
                                                          quality=90)
  data = buffer.getvalue()
  truncated = tmp_path / "truncated.jpg"
  truncated.write_bytes(data[:len(data) // 2])
  # Entropy-coded data overwritten after the headers: libjpeg only warns
  # ("Corrupt JPEG data"), the strict contract refuses the file.
  corrupt = bytearray(data)
  corrupt[len(data) // 2:len(data) // 2 + 64] = bytes(range(64))
  damaged = tmp_path / "corrupt.jpg"
  damaged.write_bytes(bytes(corrupt))
  folder = tmp_path / "folder.jpg"
  folder.mkdir()
  for path in (truncated, damaged, folder, tmp_path / "missing.jpg"):
    with pytest.raises(images.ImageReadError, match=str(path)):
      images.read_image(str(path))  # the contract refuses it ...
    with pytest.raises(images.ImageReadError, match=str(path)):
      load(str(path))  # ... and so does nima-score's reader


def test_predict_runs_frozen_weights():
  """NimaBundle.predict (weights frozen, batch norms folded) == the model."""
  import keras  # pylint: disable=g-import-not-at-top
  from nima_enhance.models import nima as nima_lib  # pylint: disable=g-import-not-at-top
  # MobileNet's blocks (conv, batch norm, ReLU6; depthwise conv, batch
  # norm, ReLU6) and NIMA's head, small enough to stay sensitive to the
  # input (a random-weight MobileNet gives every image the same score).
  keras.utils.set_random_seed(0)
  inputs = keras.Input((None, None, 3))
  x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
  x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.ReLU(6.0)(x)
  x = keras.layers.DepthwiseConv2D(3, use_bias=False)(x)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.ReLU(6.0)(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(10, activation="softmax",
                               name=nima_lib.HEAD_NAME)(x)
  model = keras.Model(inputs, outputs)
  rng = np.random.default_rng(0)
  # Batch norms far from identity, so folding them changes the arithmetic.
  for weight in model.weights:
    name = weight.path.rsplit("/", 1)[-1]
    if name in ("moving_mean", "beta"):
      weight.assign(rng.normal(0, 0.3, weight.shape).astype(np.float32))
    elif name in ("moving_variance", "gamma"):
      weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype(np.float32))
  model.trainable = False
  prep = {"mode": "paper", "image_size": [64, 96], "resize_size": 64,
          "random_flip": False}
  bundle = scoring.NimaBundle(model, prep, {}, None)
  x = tf.constant(rng.uniform(0, 255, (3, 64, 96, 3)).astype(np.float32))
  x = x * tf.constant([0.2, 0.6, 1.0])[:, None, None, None]  # apart
  reference = model(x, training=False).numpy()
  got = bundle.predict(x).numpy()
  np.testing.assert_allclose(got, reference, atol=1e-5)
  means = metrics.mean_score(reference).numpy()
  assert np.ptp(means) > 1e-3  # distinct images score apart
  np.testing.assert_allclose(metrics.mean_score(got).numpy(), means,
                             atol=1e-5)
  np.testing.assert_allclose(bundle.predict(x[:1]).numpy(), reference[:1],
                             atol=1e-5)  # another batch size, no retrace
  assert bundle._predict.experimental_get_tracing_count() == 1  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="NIMA input"):
    bundle.predict(tf.zeros([1, 32, 32, 3]))
  # The weights are constants of the function: a later assignment is not
  # seen (documented; a bundle's model is not trainable).
  head = model.get_layer(nima_lib.HEAD_NAME)
  head.kernel.assign(tf.zeros_like(head.kernel))
  np.testing.assert_allclose(bundle.predict(x).numpy(), got, atol=1e-6)
  assert np.max(np.abs(model(x, training=False).numpy() - got)) > 1e-3


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
