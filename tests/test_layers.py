"""SymmetricPad2D and AdaptiveNormalization against independent references."""

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.models import layers


@pytest.mark.parametrize("shape,pad", [
    ((1, 5, 7, 2), ((1, 1), (1, 1))),
    ((2, 6, 4, 3), ((3, 2), (0, 3))),
    ((1, 8, 9, 1), ((4, 4), (8, 1))),
])
def test_matches_numpy_symmetric_when_pad_fits(shape, pad):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  got = layers.SymmetricPad2D(pad)(x).numpy()
  want = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)), mode="symmetric")
  np.testing.assert_array_equal(got, want)


def test_pad_larger_than_map_hand_written():
  # Row [1, 2] mirrored with its edge repeats with period 4: 1 2 2 1 | 1 2 2 1.
  x = np.array([1.0, 2.0], np.float32).reshape(1, 1, 2, 1)
  got = layers.SymmetricPad2D(((0, 0), (5, 4)))(x).numpy().ravel()
  np.testing.assert_array_equal(got, [1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2])
  # A single pixel padded by 256 (the CAN's largest dilation) stays constant.
  one = np.full((1, 1, 1, 3), 0.25, np.float32)
  padded = layers.SymmetricPad2D(256)(one).numpy()
  assert padded.shape == (1, 513, 513, 3)
  np.testing.assert_array_equal(padded, 0.25)


@pytest.mark.parametrize("size,before,after", [(3, 10, 7), (4, 256, 256),
                                               (1, 5, 0), (7, 0, 30)])
def test_pad_larger_than_map_closed_form(size, before, after):
  # Closed form: unfold the row and its mirror into one period of length 2n.
  row = np.arange(size, dtype=np.float32) + 1.0
  period = np.concatenate([row, row[::-1]])
  want = np.array([period[i % (2 * size)] for i in range(-before,
                                                         size + after)])
  x = row.reshape(1, size, 1, 1)
  got = layers.SymmetricPad2D(((before, after), (0, 0)))(x).numpy().ravel()
  np.testing.assert_array_equal(got, want)
  # numpy's symmetric mode agrees for any pad too.
  np.testing.assert_array_equal(got, np.pad(row, (before, after),
                                            mode="symmetric"))


def test_dynamic_shapes_one_trace():
  layer = layers.SymmetricPad2D(6)
  fn = tf.function(layer, input_signature=[
      tf.TensorSpec([None, None, None, 2], tf.float32)])
  for shape in [(1, 3, 5, 2), (2, 9, 2, 2)]:
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    want = np.pad(x, ((0, 0), (6, 6), (6, 6), (0, 0)), mode="symmetric")
    np.testing.assert_array_equal(fn(x).numpy(), want)
  assert layer.compute_output_shape((None, 4, None, 2)) == (None, 16, None, 2)


def test_gradient_is_the_adjoint():
  # d sum(pad(x)) / dx counts how often each pixel appears in the padded map.
  x = tf.constant(np.random.default_rng(2).normal(size=(1, 3, 4, 1)),
                  tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.reduce_sum(layers.SymmetricPad2D(((5, 2), (1, 9)))(x))
  index = np.arange(12).reshape(1, 3, 4, 1)
  padded = np.pad(index, ((0, 0), (5, 2), (1, 9), (0, 0)), mode="symmetric")
  counts = np.bincount(padded.ravel(), minlength=12).reshape(1, 3, 4, 1)
  np.testing.assert_array_equal(tape.gradient(y, x).numpy(), counts)


def test_bad_padding():
  with pytest.raises(ValueError):
    layers.SymmetricPad2D(-1)
  with pytest.raises(ValueError):
    layers.SymmetricPad2D((1, 2, 3))


def test_adaptive_norm_starts_as_identity_and_matches_formula():
  x = np.random.default_rng(3).normal(1.0, 2.0, (2, 5, 6, 4)).astype(
      np.float32)
  norm = layers.AdaptiveNormalization(epsilon=1e-3)
  np.testing.assert_allclose(norm(x, training=True).numpy(), x, atol=1e-6)
  norm.lam.assign(0.7)
  norm.mu.assign(-1.3)
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))
  want = 0.7 * x - 1.3 * (x - mean) / np.sqrt(var + 1e-3)
  np.testing.assert_allclose(norm(x, training=True).numpy(), want,
                             rtol=1e-4, atol=1e-4)
  names = sorted(v.name for v in norm.trainable_variables)
  assert len(norm.trainable_variables) == 4  # lambda, mu, BN gamma and beta
  assert any("lambda" in n for n in names) and any("mu" in n for n in names)


def test_adaptive_norm_inference_uses_moving_statistics():
  x = np.random.default_rng(4).normal(0.5, 1.5, (1, 6, 5, 3)).astype(
      np.float32)
  norm = layers.AdaptiveNormalization(epsilon=1e-3)
  norm(x, training=True)  # builds
  norm.lam.assign(1.2)
  norm.mu.assign(0.4)
  bn = norm.batch_norm
  bn.moving_mean.assign([0.1, -0.2, 0.3])
  bn.moving_variance.assign([2.0, 0.5, 1.0])
  bn.gamma.assign([1.5, 1.0, 0.5])
  bn.beta.assign([0.0, 0.2, -0.1])
  normalized = ((x - np.array([0.1, -0.2, 0.3])) /
                np.sqrt(np.array([2.0, 0.5, 1.0]) + 1e-3) *
                np.array([1.5, 1.0, 0.5]) + np.array([0.0, 0.2, -0.1]))
  np.testing.assert_allclose(norm(x, training=False).numpy(),
                             1.2 * x + 0.4 * normalized, rtol=1e-5, atol=1e-5)
