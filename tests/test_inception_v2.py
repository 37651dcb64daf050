"""Inception-v2 backbone: TF-Slim layout, checkpoint name mapping, loading."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.models import inception_v2 as iv2
from nima_enhance.models.nima import build_nima


def _backbone():
  inputs = keras.Input((None, None, 3))
  return keras.Model(inputs, iv2.build_inception_v2(inputs, weights=None))


def _randomize(model, seed=0):
  """Non-trivial values everywhere, so a mis-mapped variable changes outputs."""
  rng = np.random.RandomState(seed)
  for name, var in iv2.slim_variable_map(model).items():
    if name.endswith("moving_variance"):
      value = rng.uniform(0.5, 2.0, var.shape)
    elif name.endswith(("moving_mean", "beta", "biases")):
      value = rng.normal(0.0, 0.1, var.shape)
    else:
      value = np.asarray(var) * rng.uniform(0.8, 1.2, var.shape)
    var.assign(value.astype(np.float32))


@pytest.fixture(scope="module")
def source():
  model = _backbone()
  _randomize(model)
  return model


@pytest.fixture(scope="module")
def pixels():
  return np.random.RandomState(1).uniform(0, 255, (2, 64, 96, 3)).astype(
      np.float32)


@pytest.fixture(scope="module")
def slim_ckpt(source, tmp_path_factory):
  prefix = str(tmp_path_factory.mktemp("slim") / "inception_v2.ckpt")
  return iv2.save_slim_checkpoint(source, prefix)


def test_feature_map_shape_and_width(source):
  out = source(np.zeros((1, 200, 150, 3), np.float32), training=False)
  # SAME padding everywhere: five stride-2 stages, ceil division.
  assert out.shape == (1, 7, 5, iv2.NUM_FEATURES)


def test_checkpoint_uses_slim_names(slim_ckpt):
  names = dict(tf.train.list_variables(slim_ckpt))
  # 68 conv+BN layers (weights, beta, mean, variance) + the separable stem.
  assert len(names) == 68 * 4 + 3
  assert names["InceptionV2/Conv2d_1a_7x7/depthwise_weights"] == [7, 7, 3, 8]
  assert names["InceptionV2/Conv2d_1a_7x7/pointwise_weights"] == [1, 1, 24, 64]
  assert names["InceptionV2/Conv2d_1a_7x7/biases"] == [64]
  assert names["InceptionV2/Mixed_3b/Branch_1/Conv2d_0a_1x1/weights"] == [
      1, 1, 192, 64]
  assert names["InceptionV2/Mixed_5c/Branch_3/Conv2d_0b_1x1/BatchNorm/"
               "moving_variance"] == [128]
  assert names["InceptionV2/Mixed_4a/Branch_1/Conv2d_1a_3x3/weights"] == [
      3, 3, 96, 96]
  # Slim's batch norm has no scale (gamma) in the inception arg scope.
  assert not any(n.endswith("gamma") for n in names)


def test_load_reproduces_outputs(source, slim_ckpt, pixels):
  fresh = _backbone()
  assert iv2.load_slim_checkpoint(fresh, slim_ckpt) == 275
  np.testing.assert_allclose(fresh(pixels, training=False),
                             source(pixels, training=False), atol=1e-5)


def test_extra_checkpoint_variables_are_ignored(source, tmp_path, pixels):
  names = iv2.slim_variable_map(source)
  items = sorted(names.items())
  extra = {"InceptionV2/Logits/Conv2d_1c_1x1/weights": tf.zeros([1, 1, 1024, 1001]),
           "global_step": tf.constant(5, tf.int64)}
  prefix = str(tmp_path / "with_logits.ckpt")
  tf.raw_ops.SaveV2(
      prefix=prefix, tensor_names=[n for n, _ in items] + list(extra),
      shape_and_slices=[""] * (len(items) + len(extra)),
      tensors=[tf.convert_to_tensor(v) for _, v in items] + list(extra.values()))
  fresh = _backbone()
  iv2.load_slim_checkpoint(fresh, prefix)
  np.testing.assert_allclose(fresh(pixels, training=False),
                             source(pixels, training=False), atol=1e-5)


def test_missing_variable_is_listed(source, tmp_path):
  gone = ["InceptionV2/Mixed_4c/Branch_2/Conv2d_0b_3x3/BatchNorm/moving_mean",
          "InceptionV2/Conv2d_2b_1x1/weights"]
  prefix = iv2.save_slim_checkpoint(source, str(tmp_path / "partial.ckpt"),
                                    exclude=gone)
  with pytest.raises(ValueError) as err:
    iv2.load_slim_checkpoint(_backbone(), prefix)
  message = str(err.value)
  assert prefix in message and "2 unmatched" in message
  for name in gone:
    assert name in message


def test_shape_mismatch_is_listed(source, tmp_path):
  names = dict(iv2.slim_variable_map(source))
  bad = "InceptionV2/Mixed_3c/Branch_0/Conv2d_0a_1x1/weights"
  names[bad] = tf.zeros([1, 1, 256, 63])
  items = sorted(names.items())
  prefix = str(tmp_path / "bad.ckpt")
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[n for n, _ in items],
                    shape_and_slices=[""] * len(items),
                    tensors=[tf.convert_to_tensor(v) for _, v in items])
  with pytest.raises(ValueError, match="Mixed_3c/Branch_0/Conv2d_0a_1x1/weights"):
    iv2.load_slim_checkpoint(_backbone(), prefix)


def test_stem_batch_norm_is_folded(source, tmp_path):
  """Checkpoints that normalise the stem instead of biasing it still load."""
  names = {n: np.asarray(v) for n, v in iv2.slim_variable_map(source).items()}
  stem = "InceptionV2/Conv2d_1a_7x7/"
  del names[stem + "biases"]
  rng = np.random.RandomState(2)
  beta = rng.normal(size=64).astype(np.float32)
  mean = rng.normal(size=64).astype(np.float32)
  var = rng.uniform(0.5, 2.0, 64).astype(np.float32)
  names.update({stem + "BatchNorm/beta": beta, stem + "BatchNorm/moving_mean": mean,
                stem + "BatchNorm/moving_variance": var})
  items = sorted(names.items())
  prefix = str(tmp_path / "bn_stem.ckpt")
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[n for n, _ in items],
                    shape_and_slices=[""] * len(items),
                    tensors=[tf.constant(v) for _, v in items])
  fresh = _backbone()
  iv2.load_slim_checkpoint(fresh, prefix)
  layer = fresh.get_layer(iv2.STEM)
  scale = 1.0 / np.sqrt(var + 1e-3)
  np.testing.assert_allclose(layer.bias, beta - mean * scale, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(layer.pointwise_kernel,
                             names[stem + "pointwise_weights"] * scale,
                             rtol=1e-5, atol=1e-7)


def test_imagenet_weights_from_env(source, slim_ckpt, pixels, monkeypatch):
  """The real `weights="imagenet"` path, fed a local checkpoint folder."""
  monkeypatch.setenv(iv2.CHECKPOINT_ENV, os.path.dirname(slim_ckpt))
  model = build_nima("inception_v2", weights="imagenet")
  features = keras.Model(model.input, model.get_layer("Mixed_5c__concat").output)
  np.testing.assert_allclose(features(pixels, training=False),
                             source(pixels, training=False), atol=1e-5)


def test_missing_imagenet_checkpoint_is_clear(tmp_path, monkeypatch):
  missing = str(tmp_path / "nowhere" / "inception_v2.ckpt")
  monkeypatch.setenv(iv2.CHECKPOINT_ENV, missing)
  with pytest.raises(FileNotFoundError, match="nowhere"):
    build_nima("inception_v2", weights="imagenet")
