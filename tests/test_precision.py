"""--precision float32|bfloat16 for scoring and export (enhance's is in
test_can_streaming.py): float32 is the default, bfloat16 really computes in
bfloat16 and stays close to float32, and exports record it."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from nima_enhance import metrics
from nima_enhance import scoring
from nima_enhance.serving import export
from nima_enhance.serving import saved_model

import serving_helpers

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def nima_dir(tmp_path_factory):
  return serving_helpers.make_nima_dir(
      str(tmp_path_factory.mktemp("precision") / "nima"))


def _photos():
  """Two real photos, cropped to one size, float [0, 1]."""
  return np.stack([serving_helpers.photo_uint8(n)[:300, :400]
                   for n in ("coffee", "chelsea")]).astype(np.float32) / 255.0


def _pixels(preprocessing):
  return np.stack([scoring.eval_pixels(p, preprocessing) for p in _photos()])


def _conv_dtypes(model):
  return {layer.compute_dtype for layer in model._flatten_layers()  # pylint: disable=protected-access
          if isinstance(layer, keras.layers.Conv2D)}


def test_load_nima_precision(nima_dir):
  policy = keras.config.dtype_policy().name
  f32 = scoring.load_nima(nima_dir)
  bf16 = scoring.load_nima(nima_dir, precision="bfloat16")
  assert keras.config.dtype_policy().name == policy  # left as it was
  assert _conv_dtypes(f32.model) == {"float32"}
  assert _conv_dtypes(bf16.model) == {"bfloat16"}
  assert bf16.model.get_layer("nima_head").compute_dtype == "float32"
  pixels = tf.constant(_pixels(f32.preprocessing))
  p32 = f32.predict(pixels).numpy()
  p16 = bf16.predict(pixels)
  assert p16.dtype == tf.float32
  p16 = p16.numpy()
  np.testing.assert_allclose(p16.sum(axis=1), 1.0, atol=1e-5)
  means = [metrics.mean_score(tf.constant(p)).numpy() for p in (p32, p16)]
  diff = np.abs(means[1] - means[0])
  assert diff.max() > 0  # really computed in bfloat16
  assert diff.max() < 0.05
  with pytest.raises(ValueError, match="precision"):
    scoring.load_nima(nima_dir, precision="float16")


def test_scorer_export_precision_recorded_and_used(nima_dir, tmp_path):
  bundle = scoring.load_nima(nima_dir)
  pixels = _pixels(bundle.preprocessing)
  expected = metrics.mean_score(bundle.predict(tf.constant(pixels))).numpy()
  path = export.export_model(nima_dir, str(tmp_path / "bf16"),
                             precision="bfloat16")
  assert saved_model.read_metadata(path)["precision"] == "bfloat16"
  served = tf.saved_model.load(path).signatures["score_images"](
      images=tf.constant(_photos() * 255.0))["mean"].numpy()
  diff = np.abs(served - expected)
  assert 0 < diff.max() < 0.05
  with pytest.raises(saved_model.ExportError, match="precision"):
    export.export_model(nima_dir, str(tmp_path / "x"), precision="int4")


def test_enhancer_module_bfloat16(tmp_path):
  from nima_enhance.enhance import inference  # pylint: disable=g-import-not-at-top
  model = inference.load_enhancer(
      serving_helpers.make_can_dir(str(tmp_path / "can"))).model
  image = serving_helpers.photo_uint8("coffee")[:40, :56]
  batch = tf.constant(image[None].astype(np.float32) / 255.0)
  outs = {p: export.make_enhancer_module(model, tile_size=9, precision=p)
             .enhance(batch)["images"].numpy()
          for p in ("float32", "bfloat16")}
  diff = np.abs(outs["bfloat16"] - outs["float32"])
  assert 0 < diff.max() and diff.mean() < 0.02


def _binary(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args],
                        capture_output=True, text=True, timeout=120,
                        cwd=_ROOT)


@pytest.mark.slow
def test_precision_flags_reject_exports(nima_dir, tmp_path):
  photo = str(tmp_path / "p.png")
  from nima_enhance.data import image_write  # pylint: disable=g-import-not-at-top
  image_write.write_image(photo, serving_helpers.photo_uint8("coffee") / 255.0)
  result = _binary("nima_enhance.bin.nima_score", "--saved_model",
                   str(tmp_path), "--precision", "bfloat16", photo)
  assert result.returncode == 2, result.stderr
  assert "--precision" in result.stderr and "Traceback" not in result.stderr
  result = _binary("nima_enhance.bin.nima_export", "--model_dir", nima_dir,
                   "--export_dir", str(tmp_path / "e"), "--format", "tflite",
                   "--precision", "bfloat16")
  assert result.returncode == 2, result.stderr
  assert "--precision" in result.stderr and "Traceback" not in result.stderr
