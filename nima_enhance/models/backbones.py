"""Registry of NIMA baseline CNNs ("backbones").

A backbone builder is `builder(inputs, weights) -> features`:

* `inputs`: a Keras functional tensor of float pixels in [0, 255], shape
  [batch, H, W, 3], any H and W;
* `weights`: "imagenet" (the architecture's ImageNet weights) or None (random);
* the builder applies its own preprocessing inside the model, so callers never
  normalise pixels themselves;
* `features`: a 4-D feature map (NIMA pools it globally) or a 2-D tensor.

Registered: "mobilenet", "vgg16", "inception_v2". Any other name of a
`keras.applications` model ("InceptionV3", "MobileNetV2", "EfficientNetB0",
"ResNet50", ...) works too, with include_top=False and that application's
`preprocess_input` inside the model.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Optional

import keras
import tensorflow as tf

from nima_enhance.models import inception_v2

Builder = Callable[[keras.KerasTensor, Optional[str]], keras.KerasTensor]

_REGISTRY: Dict[str, Builder] = {}


def register_backbone(name: str) -> Callable[[Builder], Builder]:
  """Decorator registering `builder(inputs, weights) -> features` as `name`."""

  def decorator(builder: Builder) -> Builder:
    _REGISTRY[name] = builder
    return builder

  return decorator


def available_backbones() -> List[str]:
  """Registered backbone names (keras.applications names work in addition)."""
  _import_optional_backbones()
  return sorted(_REGISTRY)


def get_backbone_builder(name: str) -> Builder:
  """Returns the builder for a registered name or a keras.applications model.

  Raises:
    ValueError: naming the known backbones if `name` is neither.
  """
  if name not in _REGISTRY:
    _import_optional_backbones()
  if name in _REGISTRY:
    return _REGISTRY[name]
  if _application_function(name) is not None:
    return lambda inputs, weights: _build_application(name, inputs, weights)
  raise ValueError(
      f"unknown NIMA backbone {name!r}; known: {', '.join(available_backbones())}"
      ", or any keras.applications model name (e.g. InceptionV3, MobileNetV2, "
      "EfficientNetB0, ResNet50)")


# Modules that register more backbones when imported. They import this module,
# so they are loaded on first lookup instead of at import time (no cycle).
_OPTIONAL_BACKBONE_MODULES = ("nima_enhance.models.small",)


def _import_optional_backbones() -> None:
  for module in _OPTIONAL_BACKBONE_MODULES:
    try:
      importlib.import_module(module)
    except ImportError:
      pass


def _check_weights(name: str, weights: Optional[str]) -> None:
  if weights not in ("imagenet", None):
    raise ValueError(f"{name} backbone weights must be 'imagenet' or None, got "
                     f"{weights!r}")


# ---------------------------------------------------------------------------
# keras.applications models


def _application_function(name: str):
  """The keras.applications constructor called `name`, or None."""
  if not name or name.startswith("_"):
    return None
  fn = getattr(keras.applications, name, None)
  if not callable(fn) or isinstance(fn, type):
    return None
  module = _application_module(fn)
  if module is None or not hasattr(module, "preprocess_input"):
    return None
  return fn


def _application_module(fn):
  """The public keras.applications submodule defining `fn` (holds preprocess)."""
  short = getattr(fn, "__module__", "").rsplit(".", 1)[-1]
  return getattr(keras.applications, short, None)


@keras.saving.register_keras_serializable(package="nima_enhance")
class ApplicationPreprocess(keras.layers.Layer):
  """`keras.applications.<module>.preprocess_input` as a layer.

  Keeping the preprocessing a layer (not a Lambda) makes the model serialisable
  and lets gradients flow from the score back to the [0, 255] pixels.
  """

  def __init__(self, module: str, **kwargs):
    super().__init__(**kwargs)
    self.module = module
    self._fn = getattr(keras.applications, module).preprocess_input

  def call(self, inputs):
    return self._fn(inputs)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "module": self.module}


def _build_application(name: str, inputs: keras.KerasTensor,
                       weights: Optional[str]) -> keras.KerasTensor:
  _check_weights(name, weights)
  fn = _application_function(name)
  module = _application_module(fn).__name__.rsplit(".", 1)[-1]
  x = ApplicationPreprocess(module, name=f"{module}_preprocess")(inputs)
  base = fn(include_top=False, weights=weights,
            input_shape=tuple(inputs.shape[1:]))
  return base(x)


# ---------------------------------------------------------------------------
# MobileNet v1


@register_backbone("mobilenet")
def build_mobilenet(inputs: keras.KerasTensor,
                    weights: Optional[str] = "imagenet") -> keras.KerasTensor:
  """MobileNet v1 (alpha 1) conv features; pixels mapped to [-1, 1] inside."""
  _check_weights("mobilenet", weights)
  x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0,
                             name="mobilenet_preprocess")(inputs)
  base = keras.applications.MobileNet(
      input_shape=tuple(inputs.shape[1:]), alpha=1.0, include_top=False,
      weights=weights)
  return base(x)


# ---------------------------------------------------------------------------
# VGG16, fully convolutional


_VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_FC_WIDTH = 4096
_FC6_KERNEL = 7
_VGG_DROPOUT = 0.5


@keras.saving.register_keras_serializable(package="nima_enhance")
class PadToMinSize(keras.layers.Layer):
  """Zero-pads height and width (centred) up to `min_size` when smaller.

  fc6 of the fully convolutional VGG16 is a VALID 7x7 conv; this keeps inputs
  smaller than 224x224 usable. Zero is neutral for the post-ReLU pool5 maps.
  """

  def __init__(self, min_size: int, **kwargs):
    super().__init__(**kwargs)
    self.min_size = min_size

  def _paddings(self, size):
    if isinstance(size, int):
      total = max(0, self.min_size - size)
    else:
      total = tf.maximum(0, self.min_size - size)
    return [total // 2, total - total // 2]

  def call(self, inputs):
    static = inputs.shape
    dynamic = tf.shape(inputs)
    height = static[1] if static[1] is not None else dynamic[1]
    width = static[2] if static[2] is not None else dynamic[2]
    if isinstance(height, int) and isinstance(width, int) and (
        height >= self.min_size and width >= self.min_size):
      return inputs
    return tf.pad(inputs, [[0, 0], self._paddings(height),
                           self._paddings(width), [0, 0]])

  def compute_output_shape(self, input_shape):
    grow = lambda d: None if d is None else max(d, self.min_size)
    return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]),
            input_shape[3])

  def get_config(self):
    return {**super().get_config(), "min_size": self.min_size}


@register_backbone("vgg16")
def build_vgg16(inputs: keras.KerasTensor,
                weights: Optional[str] = "imagenet") -> keras.KerasTensor:
  """VGG16 as the paper runs it: conv layers, then fc6/fc7 as convolutions.

  fc6 is a 7x7 VALID conv with 4096 filters on pool5 and fc7 a 1x1 conv with
  4096 filters, each with ReLU and VGG's dropout of 0.5. With "imagenet" the
  conv layers and the fc1/fc2 matrices of `keras.applications.VGG16
  (include_top=True)` are copied in, the matrices reshaped into conv kernels
  (this downloads the 528 MB top-included weights file once).

  Returns:
    The fc7 map, [batch, h, w, 4096] with h = max(floor(H/32), 7) - 6.
  """
  _check_weights("vgg16", weights)
  x = ApplicationPreprocess("vgg16", name="vgg16_preprocess")(inputs)
  convs = []
  for block, (filters, repeats) in enumerate(_VGG_BLOCKS, start=1):
    for i in range(1, repeats + 1):
      layer = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                  name=f"block{block}_conv{i}")
      convs.append(layer)
      x = layer(x)
    x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
  x = PadToMinSize(_FC6_KERNEL, name="pool5_pad")(x)
  fc6 = keras.layers.Conv2D(_FC_WIDTH, _FC6_KERNEL, padding="valid",
                            activation="relu", name="fc6")
  x = keras.layers.Dropout(_VGG_DROPOUT, name="fc6_dropout")(fc6(x))
  fc7 = keras.layers.Conv2D(_FC_WIDTH, 1, activation="relu", name="fc7")
  x = keras.layers.Dropout(_VGG_DROPOUT, name="fc7_dropout")(fc7(x))
  if weights == "imagenet":
    _load_vgg16_imagenet(convs, fc6, fc7)
  return x


def _load_vgg16_imagenet(convs, fc6, fc7) -> None:
  reference = keras.applications.VGG16(include_top=True, weights="imagenet")
  for layer in convs:
    layer.set_weights(reference.get_layer(layer.name).get_weights())
  # Keras' Flatten of the channels-last 7x7x512 pool5 orders fc1's rows as
  # (row, column, channel): exactly a 7x7x512 conv kernel.
  for conv, dense in ((fc6, "fc1"), (fc7, "fc2")):
    kernel, bias = reference.get_layer(dense).get_weights()
    conv.set_weights([kernel.reshape(conv.kernel.shape), bias])
  del reference


# ---------------------------------------------------------------------------
# Inception-v2 (BN-Inception, TF-Slim layout)

register_backbone("inception_v2")(inception_v2.build_inception_v2)
