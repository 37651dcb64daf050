"""The perceptual loss (eq. 1): fidelity, the NIMA term, frozen NIMA, gamma=0."""

import os

import gin
import numpy as np
import pytest
import tensorflow as tf

import enhance_helpers
from nima_enhance import losses
from nima_enhance import scoring
from nima_enhance.models import can
from nima_enhance.models import nima as nima_lib
from nima_enhance.train import enhancer_task
from nima_enhance.train import loop


pytestmark = pytest.mark.usefixtures("clean_gin")  # conftest.py


@pytest.fixture(scope="module")
def nima_dir(tmp_path_factory):
  return enhance_helpers.make_nima_dir(
      str(tmp_path_factory.mktemp("nima") / "model"))


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("fivek"))
  enhance_helpers.make_pairs(path, ["astronaut", "coffee", "chelsea",
                                    "rocket"], size=(24, 32))
  return path


def _images(seed=0, shape=(2, 12, 16, 3)):
  rng = np.random.default_rng(seed)
  return (rng.uniform(size=shape).astype(np.float32),
          rng.uniform(size=shape).astype(np.float32))


class _Exploding:
  """A stand-in NIMA that fails if called."""

  def __call__(self, *args, **kwargs):
    raise AssertionError("NIMA must not run when gamma == 0")


def test_fidelity_terms_match_numpy():
  ref, out = _images()
  diff = out.astype(np.float64) - ref
  np.testing.assert_allclose(losses.fidelity_loss(ref, out, "l2"),
                             (diff ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(losses.fidelity_loss(ref, out, "l1"),
                             np.abs(diff).mean(axis=(1, 2, 3)), rtol=1e-5)
  delta = 0.1
  a = np.abs(diff)
  huber = np.where(a <= delta, 0.5 * a ** 2, delta * (a - 0.5 * delta))
  np.testing.assert_allclose(
      losses.fidelity_loss(ref, out, "huber", huber_delta=delta),
      huber.mean(axis=(1, 2, 3)), rtol=1e-5)
  with pytest.raises(ValueError):
    losses.fidelity_loss(ref, out, "l3")


def test_gamma_zero_is_plain_l2_and_skips_nima():
  ref, out = _images(1)
  loss, parts = losses.perceptual_loss(ref, out, _Exploding(), gamma=0.0,
                                       return_components=True)
  mse = ((out.astype(np.float64) - ref) ** 2).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(loss.numpy(), mse, rtol=1e-6)
  assert set(parts) == {"fidelity"}
  np.testing.assert_allclose(
      losses.perceptual_loss(ref, out, None, gamma=0.0).numpy(), mse,
      rtol=1e-6)


def test_quality_term_is_ten_minus_nima_mean():
  ref, out = _images(2)
  nima = nima_lib.build_nima(backbone="small_cnn", weights=None)
  probs = nima(np.clip(out, 0, 1) * 255.0, training=False).numpy()
  score = (probs * np.arange(1, 11)).sum(axis=-1)
  mse = ((out.astype(np.float64) - ref) ** 2).mean(axis=(1, 2, 3))
  loss, parts = losses.perceptual_loss(ref, out, nima, gamma=0.5,
                                       return_components=True)
  np.testing.assert_allclose(loss.numpy(), mse + 0.5 * (10.0 - score),
                             rtol=1e-5)
  np.testing.assert_allclose(parts["nima_mean"], score.mean(), rtol=1e-5)
  with pytest.raises(ValueError):
    losses.perceptual_loss(ref, out, None, gamma=1e-4)


def test_gin_binding_sets_gamma():
  ref, out = _images(3)
  nima = nima_lib.build_nima(backbone="small_cnn", weights=None)
  gin.parse_config("perceptual_loss.gamma = 1e-3")
  loss, parts = losses.perceptual_loss(ref, out, nima, return_components=True)
  want = parts["fidelity"] + 1e-3 * parts["quality"]
  np.testing.assert_allclose(tf.reduce_mean(loss), want, rtol=1e-5)


def test_gradients_reach_the_can_through_nima(nima_dir):
  bundle = scoring.load_nima(nima_dir)
  model = can.build_can()
  x, _ = _images(4, (1, 24, 32, 3))
  with tf.GradientTape() as tape:
    out = model(x, training=True)
    # The quality term alone: reference = output, so the L2 part is zero.
    loss = losses.perceptual_loss(tf.stop_gradient(out), out, bundle.model,
                                  gamma=1.0,
                                  nima_preprocessing=bundle.preprocessing)
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads)
  assert tf.linalg.global_norm(grads).numpy() > 0
  # Nothing of NIMA is trainable, so no optimizer can pick it up.
  assert not bundle.model.trainable_variables


def _train(data_dir, model_dir, nima_dir, gamma, steps):
  gin.clear_config()
  gin.parse_config([f"perceptual_loss.gamma = {gamma}",
                    f"train_loop.num_steps = {steps}",
                    "train_loop.global_batch_size = 1",
                    "train_loop.progress = False",
                    "EnhancerTask.learning_rate = 1e-3"])
  task = enhancer_task.EnhancerTask(data_dir, "local_laplacian",
                                    nima_model_dir=nima_dir)
  result = loop.train_loop(task, model_dir)
  return task, result


def test_nima_frozen_while_can_learns(tmp_path, pairs_dir, nima_dir):
  before = [v.numpy().copy() for v in scoring.load_nima(nima_dir).model.weights]
  initial_can = [w.copy() for w in can.build_can().get_weights()]
  task, result = _train(pairs_dir, str(tmp_path / "m"), nima_dir, 0.5, 4)
  after = [v.numpy() for v in task.nima.weights]
  assert len(before) == len(after) > 0
  for b, a in zip(before, after):
    np.testing.assert_array_equal(a, b)  # bit-identical
  trained = result["model"].get_weights()
  changed = [not np.array_equal(a, b) for a, b in zip(initial_can, trained)]
  assert sum(changed) >= len(changed) // 2
  nima_ids = {id(v) for v in task.nima.weights}
  optimizer_vars = task.build_optimizers(result["model"], 1)[0][1]
  assert not nima_ids & {id(v) for v in optimizer_vars}
  # The enhancer's checkpoint holds the CAN only.
  names = [n for n, _ in tf.train.list_variables(result["checkpoint"])]
  assert not any("nima" in n for n in names)


def test_gamma_zero_training_equals_plain_l2(tmp_path, pairs_dir, nima_dir):
  steps = 3
  task, result = _train(pairs_dir, str(tmp_path / "m"), nima_dir, 0.0, steps)
  assert task.nima is None  # gamma = 0 never loads NIMA
  # Plain L2 training by hand: same initial CAN, same batches, Adam 1e-3.
  model = can.build_can()
  optimizer = tf.keras.optimizers.Adam(1e-3)
  batches = iter(task.dataset(tf.distribute.InputContext(), 1, 0, 0))
  for _ in range(steps):
    source, target = next(batches)
    with tf.GradientTape() as tape:
      plain = tf.reduce_mean(tf.square(model(source, training=True) - target))
    grads = tape.gradient(plain, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
  gamma0_loss, _ = task.per_example_loss(result["model"], (source, target),
                                         training=False)
  plain_loss = tf.reduce_mean(tf.square(
      result["model"](source, training=False) - target))
  np.testing.assert_allclose(gamma0_loss.numpy()[0], plain_loss.numpy(),
                             rtol=1e-6)
  for a, b in zip(model.get_weights(), result["model"].get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert os.path.isfile(os.path.join(str(tmp_path / "m"), "model_spec.json"))
