"""NIMA: a baseline CNN whose classifier is replaced by a 10-bucket softmax.

Paper section 2.1 / Fig. 3: baseline CNN (fully convolutional), global average
pooling, dropout, one fully connected layer with 10 outputs and a softmax over
the score buckets 1..10. The model takes float pixels in [0, 255] and owns its
preprocessing (docs/architecture.md, "Conventions").
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Tuple

import gin
import keras
import tensorflow as tf
# Private TF module: its only way to freeze a tf.function's variables into
# constants (what the TFLite converter does too).
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data.ava import NUM_BUCKETS
from nima_enhance.models import backbones

HEAD_NAME = "nima_head"


class WeightsNotFoundError(FileNotFoundError, ValueError):
  """A `weights` path that does not exist or holds no checkpoint.

  Both a FileNotFoundError and a ValueError, so callers catching either work.
  """


@gin.configurable("build_nima")
def build_nima(backbone: str = "mobilenet",
               input_shape: Tuple[Optional[int], Optional[int], int] = (
                   None, None, 3),
               weights: Optional[str] = "imagenet",
               dropout: float = 0.75) -> keras.Model:
  """Builds NIMA on a registered backbone or a keras.applications model.

  Args:
    backbone: "mobilenet", "vgg16", "inception_v2" or a keras.applications
      model name such as "MobileNetV2" (see `backbones.get_backbone_builder`).
    input_shape: [H, W, 3]; None sizes accept any image size.
    weights: "imagenet" (ImageNet backbone, random head), None (all random) or
      a path to our own weights: a folder (its latest tf.train checkpoint), a
      `*.weights.h5` file, or a tf.train.Checkpoint prefix written as
      `tf.train.Checkpoint(model=model, ...)` by the training loop.
    dropout: dropout rate before the head.

  Returns:
    Model mapping [batch, H, W, 3] float pixels in [0, 255] to [batch, 10]
    bucket probabilities. The last layer is a Dense named "nima_head", which
    the trainer uses to give the head its own learning rate.

  Raises:
    ValueError: unknown backbone, or a checkpoint that does not fit the model.
    WeightsNotFoundError: `weights` is a path that does not exist / holds no
      checkpoint.
  """
  builder = backbones.get_backbone_builder(backbone)
  from_file = weights not in ("imagenet", None)
  if from_file:
    # Fail before the (possibly large) model is built.
    weights_path = _resolve_weights_path(os.fspath(weights))
  inputs = keras.Input(shape=tuple(input_shape), name="image", dtype="float32")
  features = builder(inputs, None if from_file else weights)
  if len(features.shape) == 4:
    features = keras.layers.GlobalAveragePooling2D(name="global_pool")(features)
  elif len(features.shape) != 2:
    raise ValueError(f"backbone {backbone!r} returned features of shape "
                     f"{features.shape}; expected 2-D or 4-D")
  x = keras.layers.Dropout(dropout, name="head_dropout")(features)
  # float32 head under mixed precision: a float16 softmax and EMD lose the
  # small bucket probabilities.
  outputs = keras.layers.Dense(NUM_BUCKETS, activation="softmax",
                               name=HEAD_NAME, dtype="float32")(x)
  model = keras.Model(inputs, outputs, name=f"nima_{backbone}")
  if from_file:
    load_nima_weights(model, weights_path)
  return model


def _resolve_weights_path(path: str) -> str:
  """A directory's latest checkpoint, an existing .h5 file, or a prefix."""
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise WeightsNotFoundError(f"NIMA weights: no checkpoint in folder {path}")
    return latest
  if path.endswith(".h5") or path.endswith(".keras"):
    if not tf.io.gfile.exists(path):
      raise WeightsNotFoundError(f"NIMA weights: {path} does not exist")
    return path
  if not tf.io.gfile.exists(path + ".index"):
    raise WeightsNotFoundError(
        f"NIMA weights: {path} is neither a folder, a .weights.h5 file nor a "
        f"checkpoint prefix ({path}.index does not exist)")
  return path


def load_nima_weights(model: keras.Model, path: str) -> str:
  """Loads our own NIMA weights into `model`; returns the path used.

  Args:
    model: a NIMA model of the architecture the weights were saved from.
    path: folder, `*.weights.h5` / `.keras` file, or tf.train checkpoint prefix.

  Raises:
    WeightsNotFoundError: nothing at `path`.
    ValueError: the checkpoint does not cover the model's variables.
  """
  path = _resolve_weights_path(path)
  if path.endswith(".h5") or path.endswith(".keras"):
    model.load_weights(path)
    return path
  try:
    status = tf.train.Checkpoint(model=model).restore(path)
    # Optimizer slots and counters saved beside the model are not needed here.
    status.expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as err:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    raise ValueError(
        f"NIMA weights: checkpoint {path} does not match this "
        f"{model.name} model (was it saved as tf.train.Checkpoint(model=...) "
        f"from the same backbone?): {first[:300]}") from None
  return path


@dataclasses.dataclass
class NimaBundle:
  """A restored NIMA with the preprocessing it was trained with."""
  model: keras.Model
  preprocessing: Dict[str, object]
  spec: Dict[str, object]
  checkpoint: Optional[str]
  _predict: Optional[object] = dataclasses.field(default=None, repr=False)
  _frozen: Optional[object] = dataclasses.field(default=None, repr=False)

  def predict(self, pixels: tf.Tensor) -> tf.Tensor:
    """The model in inference mode on a batch of preprocessed pixels.

    One tf.function per bundle with a batch-agnostic signature: traced once,
    not again for a last, smaller batch or for the next call of score_files.
    It runs with the weights frozen into it as constants at the first call,
    so that TensorFlow's graph optimizer folds each inference-mode batch
    norm's scale into the convolution before it and drops the variable
    reads: MobileNet at 480x640 costs ~15% less CPU per image, the same
    outputs up to float rounding (tools/benchmarks/nima_scoring.py, "model
    forward"). A restored bundle's model is not trainable; weights assigned
    after the first call are not seen (load a new bundle).
    """
    if self._frozen is None:
      model = self.model
      height, width = self.preprocessing["image_size"]
      self._predict = tf.function(
          lambda x: model(x, training=False),
          input_signature=[tf.TensorSpec([None, height, width, 3],
                                         tf.float32)])
      self._frozen = convert_to_constants.convert_variables_to_constants_v2(
          self._predict.get_concrete_function())
    pixels = tf.convert_to_tensor(pixels, tf.float32)
    spec = self._predict.input_signature[0]
    if not spec.is_compatible_with(pixels):
      raise ValueError(f"NIMA input must be {spec.shape}, got {pixels.shape}")
    return self._frozen(pixels)[0]


# Inference precisions of a restored NIMA (nima-score / nima-export
# --precision; the same meaning as enhance --precision).
PRECISIONS = ("float32", "bfloat16")


def load_nima(model_dir: str, precision: str = "float32") -> NimaBundle:
  """Rebuilds NIMA from model_dir and restores its latest checkpoint.

  Args:
    model_dir: a nima-train model dir.
    precision: "float32", or "bfloat16": the model is built under Keras'
      mixed_bfloat16 policy (convolutions and activations in bfloat16,
      weights kept in float32; batch normalization computes in float32 and
      the softmax head is float32, see `build_nima`), for hardware with
      bfloat16 units.

  Raises:
    FileNotFoundError: no model_spec.json or no checkpoint in model_dir.
    ValueError: an unknown precision.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                     f"got {precision!r}")
  spec, checkpoint = model_dir_lib.open_model_dir(model_dir, "nima")
  policy = keras.config.dtype_policy()
  if precision == "bfloat16":
    keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    model = model_dir_lib.build_from_spec(spec, build_nima,
                                          weights=None)
  finally:
    keras.config.set_dtype_policy(policy)  # the caller's policy, unchanged
  model_dir_lib.restore(model, checkpoint)
  model.trainable = False
  return NimaBundle(model, spec["preprocessing"], spec, checkpoint)
