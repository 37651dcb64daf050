"""Backbone registry and paper Table 2 complexity."""

import keras
import numpy as np
import pytest

from nima_enhance.models import backbones
from nima_enhance.models import complexity
from nima_enhance.models.nima import build_nima

PAPER_SHAPE = (480, 640, 3)


@pytest.fixture(scope="module")
def vgg16():
  # Fully convolutional: the weights (and so the count) do not depend on the
  # input size, so one model serves the Table 2 count and small-input passes.
  return build_nima("vgg16", weights=None)


@pytest.mark.parametrize("backbone", ["mobilenet", "inception_v2"])
def test_parameters_and_flops_match_paper(backbone):
  model = build_nima(backbone, input_shape=PAPER_SHAPE, weights=None)
  paper = complexity.PAPER_TABLE2[backbone]
  params_m = complexity.count_parameters(model) / 1e6
  assert params_m == pytest.approx(paper["params_m"], rel=0.01)
  gflops = complexity.count_flops(model, (1,) + PAPER_SHAPE) / 1e9
  assert gflops == pytest.approx(paper["gflops"], rel=0.02)


def test_vgg16_matches_paper(vgg16):
  paper = complexity.PAPER_TABLE2["vgg16"]
  assert complexity.count_parameters(vgg16) / 1e6 == pytest.approx(
      paper["params_m"], rel=0.01)
  # VALID fc6 on the 15x20 pool5 map of a 480x640 image.
  gflops = complexity.count_flops(vgg16, (1,) + PAPER_SHAPE) / 1e9
  assert gflops == pytest.approx(paper["gflops"], rel=0.02)


def test_vgg16_is_fully_convolutional(vgg16):
  assert vgg16.get_layer("fc6").kernel.shape == (7, 7, 512, 4096)
  assert vgg16.get_layer("fc7").kernel.shape == (1, 1, 4096, 4096)
  for shape in [(64, 48), (250, 260)]:  # pool5 2x1 (padded to 7) and 7x8
    probs = vgg16(np.full((1,) + shape + (3,), 128.0, np.float32),
                  training=False).numpy()
    assert probs.shape == (1, 10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


def test_pad_to_min_size_static_and_dynamic():
  layer = backbones.PadToMinSize(7)
  x = np.ones((1, 2, 9, 3), np.float32)
  out = layer(x)
  assert out.shape == (1, 7, 9, 3)
  # Centred: the 2 original rows sit in the middle.
  np.testing.assert_array_equal(out.numpy()[0, :, 0, 0], [0, 0, 1, 1, 0, 0, 0])
  inputs = keras.Input((None, None, 3))
  assert layer(inputs).shape == (None, None, None, 3)
  assert layer.compute_output_shape((None, 3, 10, 3)) == (None, 7, 10, 3)


def test_preprocessing_is_inside_the_model():
  inputs = keras.Input((None, None, 3))
  backbones.build_mobilenet(inputs, None)
  pixels = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
  mobilenet_pre = keras.layers.Rescaling(1 / 127.5, offset=-1.0)
  np.testing.assert_allclose(mobilenet_pre(pixels), [[[[-1.0, 0.0, 1.0]]]])
  vgg_pre = backbones.ApplicationPreprocess("vgg16")
  rgb = np.array([[[[10.0, 20.0, 30.0]]]], np.float32)
  # Caffe style: RGB -> BGR, minus the ImageNet BGR mean, no scaling.
  np.testing.assert_allclose(vgg_pre(rgb),
                             [[[[30 - 103.939, 20 - 116.779, 10 - 123.68]]]],
                             rtol=1e-5)


def test_keras_application_by_name():
  model = build_nima("MobileNetV2", input_shape=(96, 96, 3), weights=None)
  probs = model(np.zeros((2, 96, 96, 3), np.float32), training=False).numpy()
  assert probs.shape == (2, 10)
  np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
  assert model.get_layer("mobilenet_v2_preprocess") is not None


def test_unknown_backbone_lists_known_names():
  with pytest.raises(ValueError) as err:
    backbones.get_backbone_builder("resnet9000")
  for name in ["mobilenet", "vgg16", "inception_v2", "keras.applications"]:
    assert name in str(err.value)
  with pytest.raises(ValueError, match="resnet9000"):
    build_nima("resnet9000", weights=None)


def test_registered_names():
  assert {"mobilenet", "vgg16", "inception_v2"} <= set(
      backbones.available_backbones())


def test_register_custom_backbone_with_2d_features():
  @backbones.register_backbone("test_tiny_2d")
  def _tiny(inputs, weights):
    del weights
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.layers.Dense(4, name="tiny_fc")(x)

  model = build_nima("test_tiny_2d", weights=None)
  assert backbones.get_backbone_builder("test_tiny_2d") is _tiny
  probs = model(np.zeros((3, 5, 7, 3), np.float32), training=False).numpy()
  np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
  # 2-D features go straight to the head: no extra pooling layer.
  assert "global_pool" not in [layer.name for layer in model.layers]


def test_bad_weights_value_for_backbone():
  with pytest.raises(ValueError, match="imagenet"):
    backbones.build_mobilenet(keras.Input((None, None, 3)), "places365")


def test_vgg16_imagenet_mapping(monkeypatch):
  """fc1/fc2 become fc6/fc7 kernels: at 224x224 fc7 equals Keras' fc2.

  A randomly initialised include_top VGG16 stands in for the ImageNet file,
  which cannot be downloaded here; the copying code is the real one.
  """
  original = keras.applications.VGG16
  made = []

  def fake_vgg16(**kwargs):
    made.append(original(**{**kwargs, "weights": None}))
    return made[-1]

  monkeypatch.setattr(keras.applications, "VGG16", fake_vgg16)
  inputs = keras.Input((224, 224, 3))
  fc7 = keras.Model(inputs, backbones.build_vgg16(inputs, "imagenet"))
  reference = made[0]
  fc2 = keras.Model(reference.input, reference.get_layer("fc2").output)
  x = np.random.RandomState(0).uniform(0, 255, (1, 224, 224, 3)).astype(
      np.float32)
  expected = fc2(keras.applications.vgg16.preprocess_input(x.copy()))
  assert float(np.abs(expected).max()) > 0
  np.testing.assert_allclose(fc7(x, training=False)[:, 0, 0, :], expected,
                             rtol=1e-4, atol=1e-4)
