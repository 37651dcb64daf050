"""build_nima: head, any input size, gin binding, restoring our checkpoints."""


import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.models import nima


def _pixels(shape, seed=0):
  return np.random.RandomState(seed).uniform(0, 255, shape).astype(np.float32)


@pytest.fixture(scope="module")
def mobilenet():
  return nima.build_nima("mobilenet", weights=None)


@pytest.mark.parametrize("backbone", ["mobilenet", "inception_v2"])
def test_any_input_size_gives_a_distribution(backbone, mobilenet):
  model = mobilenet if backbone == "mobilenet" else nima.build_nima(
      backbone, weights=None)
  for shape in [(2, 96, 128, 3), (1, 200, 150, 3)]:
    probs = model(_pixels(shape), training=False).numpy()
    assert probs.shape == (shape[0], nima.NUM_BUCKETS)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


def test_head_layout(mobilenet):
  head = mobilenet.get_layer(nima.HEAD_NAME)
  assert isinstance(head, keras.layers.Dense)
  assert head.units == 10 and mobilenet.layers[-1] is head
  assert mobilenet.get_layer("head_dropout").rate == 0.75
  assert mobilenet.input.shape == (None, None, None, 3)


def test_gradients_reach_the_pixels(mobilenet):
  x = tf.constant(_pixels((1, 64, 64, 3)))
  with tf.GradientTape() as tape:
    tape.watch(x)
    score = tf.reduce_sum(mobilenet(x, training=False) * tf.range(1.0, 11.0))
  grad = tape.gradient(score, x)
  assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_gin_binds_build_nima():
  gin.clear_config()
  try:
    gin.parse_config(["build_nima.backbone = 'inception_v2'",
                      "build_nima.dropout = 0.5"])
    model = nima.build_nima(weights=None)
  finally:
    gin.clear_config()
  assert model.name == "nima_inception_v2"
  assert model.get_layer("head_dropout").rate == 0.5


def test_restore_tf_train_checkpoint(mobilenet, tmp_path):
  for var in mobilenet.get_layer(nima.HEAD_NAME).weights:
    var.assign(tf.random.normal(var.shape, seed=3))
  step = tf.Variable(7, dtype=tf.int64)
  optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
  prefix = tf.train.Checkpoint(model=mobilenet, optimizer=optimizer,
                               step=step).save(str(tmp_path / "ckpt"))
  x = _pixels((2, 80, 96, 3))
  expected = mobilenet(x, training=False).numpy()
  for path in (prefix, str(tmp_path)):  # a prefix and its folder
    restored = nima.build_nima("mobilenet", weights=path)
    np.testing.assert_allclose(restored(x, training=False), expected,
                               atol=1e-6)


def test_restore_weights_h5(mobilenet, tmp_path):
  path = str(tmp_path / "nima.weights.h5")
  mobilenet.save_weights(path)
  x = _pixels((1, 64, 64, 3))
  restored = nima.build_nima("mobilenet", weights=path)
  np.testing.assert_allclose(restored(x, training=False),
                             mobilenet(x, training=False), atol=1e-6)


def test_missing_weights_path_is_clear(tmp_path):
  missing = str(tmp_path / "no_such_run" / "ckpt-3")
  with pytest.raises(nima.WeightsNotFoundError, match="no_such_run"):
    nima.build_nima("mobilenet", weights=missing)
  with pytest.raises(ValueError, match="no checkpoint in folder"):
    nima.build_nima("mobilenet", weights=str(tmp_path))
  with pytest.raises(FileNotFoundError):
    nima.build_nima("mobilenet", weights=str(tmp_path / "x.weights.h5"))


def test_checkpoint_of_another_model_is_rejected(tmp_path):
  inputs = keras.Input((None, None, 3))
  other = keras.Model(inputs, keras.layers.Dense(10, name="nima_head")(
      keras.layers.GlobalAveragePooling2D()(inputs)))
  prefix = tf.train.Checkpoint(model=other).save(str(tmp_path / "other"))
  with pytest.raises(ValueError, match="does not match"):
    nima.build_nima("mobilenet", weights=prefix)
