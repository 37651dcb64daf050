"""Inception-v2 (BN-Inception) feature extractor laid out like TF-Slim's.

The network follows TF-Slim's `inception_v2_base` (depth_multiplier 1,
use_separable_conv=True, final endpoint Mixed_5c) so that the public ImageNet
checkpoint `inception_v2_2016_08_28` loads variable by variable:

* every regular conv is bias-free and followed by batch norm without a scale
  (slim's `inception_arg_scope` uses `slim.batch_norm` with its default
  `scale=False`, decay 0.9997, epsilon 0.001) and a ReLU;
* the stem `Conv2d_1a_7x7` is a depthwise-separable 7x7 conv, stride 2, depthwise
  multiplier 8; slim's arg scope does not cover `separable_conv2d`, so it keeps
  slim's own defaults: a bias, a ReLU and no batch norm;
* all convs and pools use SAME padding.

Keras layer names are the slim scopes below `InceptionV2/` with "/" written as
"__" (Keras forbids "/" in names), e.g. `Mixed_3b__Branch_1__Conv2d_0a_1x1`, and
its batch norm `Mixed_3b__Branch_1__Conv2d_0a_1x1__BatchNorm`.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import gin
import keras
import numpy as np
import tensorflow as tf

SLIM_SCOPE = "InceptionV2"
CHECKPOINT_URL = ("http://download.tensorflow.org/models/"
                  "inception_v2_2016_08_28.tar.gz")
CHECKPOINT_ENV = "NIMA_INCEPTION_V2_CKPT"
_CHECKPOINT_FILE = "inception_v2.ckpt"

_BN_EPSILON = 0.001
_BN_MOMENTUM = 0.9997
_SEP = "__"

# One branch op: ("conv", scope, filters, stride) with the kernel size read from
# the scope's "_KxK" suffix, or ("avg" | "max", scope, stride) for a 3x3 pool.
_Op = Tuple
_MIXED: List[Tuple[str, List[List[_Op]]]] = [
    ("Mixed_3b", [
        [("conv", "Conv2d_0a_1x1", 64, 1)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 64, 1)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 1),
         ("conv", "Conv2d_0c_3x3", 96, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 32, 1)]]),
    ("Mixed_3c", [
        [("conv", "Conv2d_0a_1x1", 64, 1)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 1)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 1),
         ("conv", "Conv2d_0c_3x3", 96, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 64, 1)]]),
    ("Mixed_4a", [
        [("conv", "Conv2d_0a_1x1", 128, 1), ("conv", "Conv2d_1a_3x3", 160, 2)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 1),
         ("conv", "Conv2d_1a_3x3", 96, 2)],
        [("max", "MaxPool_1a_3x3", 2)]]),
    ("Mixed_4b", [
        [("conv", "Conv2d_0a_1x1", 224, 1)],
        [("conv", "Conv2d_0a_1x1", 64, 1), ("conv", "Conv2d_0b_3x3", 96, 1)],
        [("conv", "Conv2d_0a_1x1", 96, 1), ("conv", "Conv2d_0b_3x3", 128, 1),
         ("conv", "Conv2d_0c_3x3", 128, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 128, 1)]]),
    ("Mixed_4c", [
        [("conv", "Conv2d_0a_1x1", 192, 1)],
        [("conv", "Conv2d_0a_1x1", 96, 1), ("conv", "Conv2d_0b_3x3", 128, 1)],
        [("conv", "Conv2d_0a_1x1", 96, 1), ("conv", "Conv2d_0b_3x3", 128, 1),
         ("conv", "Conv2d_0c_3x3", 128, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 128, 1)]]),
    ("Mixed_4d", [
        [("conv", "Conv2d_0a_1x1", 160, 1)],
        [("conv", "Conv2d_0a_1x1", 128, 1), ("conv", "Conv2d_0b_3x3", 160, 1)],
        [("conv", "Conv2d_0a_1x1", 128, 1), ("conv", "Conv2d_0b_3x3", 160, 1),
         ("conv", "Conv2d_0c_3x3", 160, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 96, 1)]]),
    ("Mixed_4e", [
        [("conv", "Conv2d_0a_1x1", 96, 1)],
        [("conv", "Conv2d_0a_1x1", 128, 1), ("conv", "Conv2d_0b_3x3", 192, 1)],
        [("conv", "Conv2d_0a_1x1", 160, 1), ("conv", "Conv2d_0b_3x3", 192, 1),
         ("conv", "Conv2d_0c_3x3", 192, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 96, 1)]]),
    ("Mixed_5a", [
        [("conv", "Conv2d_0a_1x1", 128, 1), ("conv", "Conv2d_1a_3x3", 192, 2)],
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_3x3", 256, 1),
         ("conv", "Conv2d_1a_3x3", 256, 2)],
        [("max", "MaxPool_1a_3x3", 2)]]),
    ("Mixed_5b", [
        [("conv", "Conv2d_0a_1x1", 352, 1)],
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_3x3", 320, 1)],
        [("conv", "Conv2d_0a_1x1", 160, 1), ("conv", "Conv2d_0b_3x3", 224, 1),
         ("conv", "Conv2d_0c_3x3", 224, 1)],
        [("avg", "AvgPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 128, 1)]]),
    # Slim's last block max-pools in its pool branch, unlike every other block.
    ("Mixed_5c", [
        [("conv", "Conv2d_0a_1x1", 352, 1)],
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_3x3", 320, 1)],
        [("conv", "Conv2d_0a_1x1", 192, 1), ("conv", "Conv2d_0b_3x3", 224, 1),
         ("conv", "Conv2d_0c_3x3", 224, 1)],
        [("max", "MaxPool_0a_3x3", 1), ("conv", "Conv2d_0b_1x1", 128, 1)]]),
]

STEM = "Conv2d_1a_7x7"
# A model holding the backbone (possibly nested) or its layers by name.
LayerSource = Union[keras.Model, Mapping[str, keras.layers.Layer]]
NUM_FEATURES = 1024


def keras_name(slim_path: str) -> str:
  """Keras layer name for a slim scope below `InceptionV2/`."""
  return slim_path.replace("/", _SEP)


def slim_path(layer_name: str) -> str:
  """Inverse of `keras_name`."""
  return layer_name.replace(_SEP, "/")


def _kernel_size(scope: str) -> int:
  return int(scope.rsplit("_", 1)[1].split("x")[0])


def _add(layers: Dict[str, keras.layers.Layer], layer: keras.layers.Layer):
  layers[layer.name] = layer
  return layer


def _conv_bn_relu(layers, x, scope: str, filters: int, stride: int = 1):
  name = keras_name(scope)
  x = _add(layers, keras.layers.Conv2D(
      filters, _kernel_size(scope), strides=stride, padding="same",
      use_bias=False,
      kernel_initializer=keras.initializers.VarianceScaling(
          2.0, "fan_in", "truncated_normal"),
      name=name))(x)
  x = _add(layers, keras.layers.BatchNormalization(
      epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, scale=False,
      name=name + _SEP + "BatchNorm"))(x)
  return keras.layers.ReLU(name=name + _SEP + "Relu")(x)


def _pool(x, kind: str, scope: str, stride: int):
  layer = (keras.layers.AveragePooling2D if kind == "avg"
           else keras.layers.MaxPooling2D)
  return layer(3, strides=stride, padding="same", name=keras_name(scope))(x)


def inception_v2_base(
    x: keras.KerasTensor,
    layers: Optional[Dict[str, keras.layers.Layer]] = None) -> keras.KerasTensor:
  """Applies slim's `inception_v2_base` up to Mixed_5c on preprocessed pixels.

  Args:
    x: [batch, H, W, 3] tensor scaled to [-1, 1].
    layers: if given, receives the weighted layers by name (for weight loading
      before the enclosing model exists).

  Returns:
    The Mixed_5c map, [batch, ceil(H/32), ceil(W/32), 1024].
  """
  layers = {} if layers is None else layers
  x = _add(layers, keras.layers.SeparableConv2D(
      64, 7, strides=2, padding="same", depth_multiplier=8, use_bias=True,
      activation="relu", name=STEM))(x)
  x = _pool(x, "max", "MaxPool_2a_3x3", 2)
  x = _conv_bn_relu(layers, x, "Conv2d_2b_1x1", 64)
  x = _conv_bn_relu(layers, x, "Conv2d_2c_3x3", 192)
  x = _pool(x, "max", "MaxPool_3a_3x3", 2)
  for block, branches in _MIXED:
    outputs = []
    for b, ops in enumerate(branches):
      y = x
      for op in ops:
        scope = f"{block}/Branch_{b}/{op[1]}"
        if op[0] == "conv":
          y = _conv_bn_relu(layers, y, scope, op[2], op[3])
        else:
          y = _pool(y, op[0], scope, op[2])
      outputs.append(y)
    x = keras.layers.Concatenate(axis=-1, name=keras_name(block + "/concat"))(
        outputs)
  return x


def conv_scopes() -> Iterator[str]:
  """Every slim conv scope (below `InceptionV2/`) of the network, in order."""
  yield STEM
  yield "Conv2d_2b_1x1"
  yield "Conv2d_2c_3x3"
  for block, branches in _MIXED:
    for b, ops in enumerate(branches):
      for op in ops:
        if op[0] == "conv":
          yield f"{block}/Branch_{b}/{op[1]}"


@gin.configurable("inception_v2_checkpoint")
def inception_v2_checkpoint(path: Optional[str] = None) -> str:
  """Locates the TF-Slim ImageNet checkpoint `inception_v2_2016_08_28`.

  Order: `path` (gin: `inception_v2_checkpoint.path`), then the environment
  variable NIMA_INCEPTION_V2_CKPT, then a download of the public tarball through
  `keras.utils.get_file` (cached under ~/.keras/models).

  Args:
    path: checkpoint prefix (`.../inception_v2.ckpt`) or a folder holding it.

  Returns:
    A checkpoint prefix readable by `tf.train.load_checkpoint`.
  """
  path = path or os.environ.get(CHECKPOINT_ENV)
  if not path:
    path = keras.utils.get_file(
        fname="inception_v2_2016_08_28", origin=CHECKPOINT_URL, extract=True,
        cache_subdir="models")
  return _resolve_prefix(path)


def _resolve_prefix(path: str) -> str:
  if tf.io.gfile.isdir(path):
    candidate = os.path.join(path, _CHECKPOINT_FILE)
    if tf.io.gfile.exists(candidate) or tf.io.gfile.exists(candidate + ".index"):
      return candidate
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
    for root, _, files in tf.io.gfile.walk(path):
      if _CHECKPOINT_FILE in files:
        return os.path.join(root, _CHECKPOINT_FILE)
    raise FileNotFoundError(
        f"Inception-v2 checkpoint: no {_CHECKPOINT_FILE} or checkpoint in {path}")
  if not (tf.io.gfile.exists(path) or tf.io.gfile.exists(path + ".index")):
    raise FileNotFoundError(f"Inception-v2 checkpoint: {path} does not exist")
  return path


def _find_layers(model: keras.Model) -> Dict[str, keras.layers.Layer]:
  """Layers by name, looking inside nested models too."""
  found = {}
  stack = list(model.layers)
  while stack:
    layer = stack.pop()
    found.setdefault(layer.name, layer)
    if isinstance(layer, keras.Model):
      stack.extend(layer.layers)
  return found


def slim_variable_map(model: LayerSource,
                      scope: str = SLIM_SCOPE) -> Dict[str, keras.Variable]:
  """Maps every TF-Slim checkpoint name of the backbone to its Keras variable.

  Args:
    model: a model containing the Inception-v2 layers (possibly nested), or a
      dict of those layers by name.
    scope: the slim variable scope (the checkpoint's top-level name).

  Returns:
    {"InceptionV2/Mixed_3b/Branch_0/Conv2d_0a_1x1/weights": variable, ...}.

  Raises:
    ValueError: if the model lacks an Inception-v2 layer.
  """
  layers = dict(model) if isinstance(model, Mapping) else _find_layers(model)
  mapping = {}
  missing = []
  for conv in conv_scopes():
    name = keras_name(conv)
    prefix = f"{scope}/{conv}/"
    if name not in layers:
      missing.append(name)
      continue
    layer = layers[name]
    if conv == STEM:
      mapping[prefix + "depthwise_weights"] = layer.depthwise_kernel
      mapping[prefix + "pointwise_weights"] = layer.pointwise_kernel
      mapping[prefix + "biases"] = layer.bias
      continue
    mapping[prefix + "weights"] = layer.kernel
    bn = layers.get(name + _SEP + "BatchNorm")
    if bn is None:
      missing.append(name + _SEP + "BatchNorm")
      continue
    mapping[prefix + "BatchNorm/beta"] = bn.beta
    mapping[prefix + "BatchNorm/moving_mean"] = bn.moving_mean
    mapping[prefix + "BatchNorm/moving_variance"] = bn.moving_variance
  if missing:
    raise ValueError("model has no Inception-v2 layer(s): " + ", ".join(missing))
  return mapping


def _folded_stem(reader, shapes, prefix: str) -> Optional[Dict[str, np.ndarray]]:
  """Stem weights when a checkpoint normalises the stem instead of biasing it.

  Some slim-derived checkpoints (e.g. object-detection fine-tunes) put a batch
  norm after the separable stem. At inference that is an affine map per output
  channel, so it folds exactly into the pointwise kernel and the bias.
  """
  bn = prefix + "BatchNorm/"
  if not all(bn + k in shapes for k in ("beta", "moving_mean", "moving_variance")):
    return None
  mean = reader.get_tensor(bn + "moving_mean")
  inv_std = 1.0 / np.sqrt(reader.get_tensor(bn + "moving_variance") + _BN_EPSILON)
  gamma = reader.get_tensor(bn + "gamma") if bn + "gamma" in shapes else 1.0
  scale = gamma * inv_std
  return {
      prefix + "pointwise_weights":
          reader.get_tensor(prefix + "pointwise_weights") * scale,
      prefix + "biases": reader.get_tensor(bn + "beta") - mean * scale,
  }


def load_slim_checkpoint(model: LayerSource,
                         checkpoint: str, scope: str = SLIM_SCOPE) -> int:
  """Copies a TF-Slim Inception-v2 checkpoint into the Keras layers by name.

  Variables in the checkpoint that the backbone does not use (the ImageNet
  logits, `global_step`, optimizer slots) are ignored.

  Args:
    model: the model or layer dict given to `slim_variable_map`.
    checkpoint: a checkpoint prefix or a folder holding one.
    scope: the slim variable scope.

  Returns:
    The number of variables copied.

  Raises:
    FileNotFoundError: if the checkpoint does not exist.
    ValueError: listing every expected variable that is missing from the
      checkpoint or has the wrong shape.
  """
  prefix_path = _resolve_prefix(checkpoint)
  reader = tf.train.load_checkpoint(prefix_path)
  shapes = reader.get_variable_to_shape_map()
  targets = slim_variable_map(model, scope)
  values = {}
  stem = f"{scope}/{STEM}/"
  if stem + "biases" not in shapes and stem + "pointwise_weights" in shapes:
    values.update(_folded_stem(reader, shapes, stem) or {})
  problems = []
  for name, variable in targets.items():
    if name not in values:
      if name not in shapes:
        problems.append(f"{name} (missing)")
        continue
      values[name] = reader.get_tensor(name)
    want = tuple(variable.shape)
    if tuple(np.shape(values[name])) != want:
      problems.append(f"{name} (shape {tuple(np.shape(values[name]))}, "
                      f"model needs {want})")
  if problems:
    raise ValueError(
        f"Inception-v2 checkpoint {prefix_path} does not match the model; "
        f"{len(problems)} unmatched variable(s): " + ", ".join(sorted(problems)))
  for name, variable in targets.items():
    variable.assign(np.asarray(values[name], dtype=variable.dtype))
  return len(targets)


def save_slim_checkpoint(model: LayerSource,
                         prefix: str, scope: str = SLIM_SCOPE,
                         exclude: Sequence[str] = ()) -> str:
  """Writes the backbone's variables under their TF-Slim names.

  The result reads back with `tf.train.load_checkpoint` and TF1 slim savers
  alike. Used by the tests; also handy to hand weights to slim-based code.

  Args:
    model: the model or layer dict given to `slim_variable_map`.
    prefix: checkpoint prefix to write (`.index` / `.data-*` files).
    scope: the slim variable scope.
    exclude: slim names to leave out.

  Returns:
    The prefix.
  """
  tf.io.gfile.makedirs(os.path.dirname(os.path.abspath(prefix)))
  items = sorted((n, v) for n, v in slim_variable_map(model, scope).items()
                 if n not in set(exclude))
  tf.raw_ops.SaveV2(
      prefix=prefix, tensor_names=[n for n, _ in items],
      shape_and_slices=[""] * len(items),
      tensors=[tf.convert_to_tensor(v) for _, v in items])
  return prefix


def build_inception_v2(inputs: keras.KerasTensor, weights: Optional[str] = None,
                       checkpoint: Optional[str] = None) -> keras.KerasTensor:
  """Backbone builder: Inception-v2 features of [0, 255] pixels.

  Args:
    inputs: float pixels in [0, 255], [batch, H, W, 3], any H and W.
    weights: "imagenet" to load the TF-Slim ImageNet checkpoint (see
      `inception_v2_checkpoint` for where it is found), or None.
    checkpoint: explicit slim checkpoint for "imagenet", overriding the lookup.

  Returns:
    The Mixed_5c feature map (1024 channels); NIMA pools it globally.
  """
  if weights not in ("imagenet", None):
    raise ValueError(f"inception_v2 weights must be 'imagenet' or None, "
                     f"got {weights!r}")
  # Slim's inception preprocessing feeds the net pixels in [-1, 1].
  x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0,
                             name="inception_v2_preprocess")(inputs)
  layers = {}
  features = inception_v2_base(x, layers)
  if weights == "imagenet":
    # An explicit argument wins over the gin / environment / download lookup.
    path = checkpoint or inception_v2_checkpoint()
    load_slim_checkpoint(layers, path)
  return features
