"""The CAN enhancer: the paper's architecture, padding, identity start, sizes."""

import time

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from nima_enhance import model_dir
from nima_enhance.models import can
from nima_enhance.models import layers


@pytest.fixture(scope="module")
def model():
  return can.build_can()


def test_architecture_matches_paper(model):
  convs = can.conv_layers(model)
  assert len(convs) == 10
  assert [c.filters for c in convs] == [32] * 9 + [3]
  assert [c.kernel_size for c in convs] == [(3, 3)] * 9 + [(1, 1)]
  assert [c.dilation_rate[0] for c in convs] == [1, 2, 4, 8, 16, 32, 64, 128,
                                                 256, 1]
  assert all(c.padding == "valid" for c in convs)
  assert can.receptive_field() == 1023 == 1 + 2 * sum(2 ** k for k in range(9))
  # Leaky ReLU (0.2) after every layer but the last; no activation at the end.
  relus = [l for l in model.layers if isinstance(l, keras.layers.LeakyReLU)]
  assert len(relus) == 9
  assert all(abs(r.negative_slope - 0.2) < 1e-9 for r in relus)
  assert model.layers[-1] is convs[-1]
  assert convs[-1].activation is keras.activations.linear
  norms = [l for l in model.layers
           if isinstance(l, layers.AdaptiveNormalization)]
  assert len(norms) == 9


def test_every_3x3_conv_reads_a_symmetrically_padded_map(model):
  for conv in can.conv_layers(model)[:-1]:
    source = conv._inbound_nodes[0].parent_nodes[0].operation
    assert isinstance(source, layers.SymmetricPad2D)
    rate = conv.dilation_rate[0]
    assert source.padding == ((rate, rate), (rate, rate))


def test_constant_image_stays_constant_with_random_weights():
  # Symmetric padding keeps a flat image flat at every layer; zero padding
  # would darken the borders. Large random kernels make any leak visible.
  net = can.build_can(init_noise=0.2, adaptive_norm=False, seed=3)
  out = net(np.full((1, 40, 60, 3), 0.4, np.float32)).numpy()
  assert np.ptp(out[..., 0]) < 1e-4 * max(1.0, np.abs(out).max())


def test_chen_variant_is_one_gin_binding():
  gin.clear_config()
  try:
    gin.parse_config("build_can.dilations = [1, 2, 4, 8, 16, 32, 64, 128, 1]")
    net = can.build_can()
    rates = [c.dilation_rate[0] for c in can.conv_layers(net)]
    assert rates == [1, 2, 4, 8, 16, 32, 64, 128, 1, 1]
    assert model_dir.recorded_arguments(can.build_can)["dilations"] == rates[:-1]
  finally:
    gin.clear_config()
  assert can.receptive_field(rates[:-1]) == 1 + 2 * (255 + 1)
  with pytest.raises(ValueError):
    can.build_can(dilations=[1, 2])


def test_identity_initialisation(model, real_photo):
  image = real_photo[::4, ::4]
  out = model(image[None]).numpy()[0]
  assert out.shape == image.shape
  assert np.abs(out - image).max() < 1e-2
  assert np.abs(out - image).mean() < 1e-3
  # The centre taps copy channel i to channel i.
  kernel = can.conv_layers(model)[4].kernel.numpy()
  np.testing.assert_allclose(kernel[1, 1], np.eye(32), atol=1e-3)


@pytest.mark.parametrize("size", [(40, 60), (1, 1), (3, 700)])
def test_any_size_runs(model, size):
  x = np.random.default_rng(0).uniform(size=(1,) + size + (3,)).astype(
      np.float32)
  out = model(x).numpy()
  assert out.shape == x.shape
  np.testing.assert_allclose(out, x, atol=1e-2)


def test_output_is_not_clipped_unless_asked():
  x = np.full((1, 4, 4, 3), 1.5, np.float32)  # out-of-range on purpose
  assert can.build_can()(x).numpy().max() > 1.4
  assert can.build_can(clip_output=True)(x).numpy().max() <= 1.0


@pytest.mark.slow
def test_full_resolution_1500x2000(model, real_photo):
  image = tf.image.resize(real_photo, (1500, 2000)).numpy()
  fn = tf.function(lambda x: model(x, training=False))
  start = time.perf_counter()
  out = fn(image[None]).numpy()[0]
  elapsed = time.perf_counter() - start
  assert out.shape == (1500, 2000, 3)
  assert np.abs(out - image).max() < 1e-2
  print(f"CAN forward 1500x2000: {elapsed:.1f} s")
