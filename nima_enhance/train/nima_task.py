"""NIMA as a training Task: AVA data, EMD loss, the paper's optimizer recipe."""

from __future__ import annotations

import math
import os
from typing import Dict, List, Optional

import gin
import keras
import numpy as np
import tensorflow as tf

from nima_enhance import losses
from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.data import tfds as ava_tfds
from nima_enhance.models import nima as nima_lib
from nima_enhance.train.task import OptimizerSpec, Task

HEAD_LAYER = nima_lib.HEAD_NAME
# Training images named in model_spec.json (see NimaTask.model_spec).
TRAINING_IMAGES_RECORDED = 256


@gin.configurable
def nima_optimizers(model: keras.Model, steps_per_epoch: int,
                    optimizer: str = "momentum",
                    backbone_learning_rate: float = 3e-7,
                    head_learning_rate: float = 3e-6,
                    momentum: float = 0.9,
                    decay_every_epochs: float = 10.0,
                    decay_rate: float = 0.95) -> List[OptimizerSpec]:
  """Separate optimizers (learning rates) for the backbone and the head.

  The paper (sec. 4.1): momentum optimizer, 3e-7 for the baseline CNN, 3e-6 for
  the last layer, exponential decay after every 10 epochs. The paper gives no
  decay factor; 0.95 is our choice. `optimizer="adam"` serves from-scratch
  training, where the backbone is not pre-trained.
  """
  head_vars = model.get_layer(HEAD_LAYER).trainable_variables
  head_ids = {id(v) for v in head_vars}
  backbone_vars = [v for v in model.trainable_variables
                   if id(v) not in head_ids]
  specs = []
  for learning_rate, variables in ((backbone_learning_rate, backbone_vars),
                                   (head_learning_rate, head_vars)):
    if not variables:
      continue
    schedule = keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=max(1, int(decay_every_epochs *
                                              steps_per_epoch)),
        decay_rate=decay_rate, staircase=True)
    if optimizer == "momentum":
      opt = keras.optimizers.SGD(schedule, momentum=momentum)
    elif optimizer == "adam":
      opt = keras.optimizers.Adam(schedule)
    else:
      raise ValueError(f"nima_optimizers.optimizer must be 'momentum' or "
                       f"'adam', got {optimizer!r}")
    specs.append((opt, variables))
  return specs


@gin.configurable(denylist=["ava_dir", "ratings"])
class NimaTask(Task):
  """Trains NIMA on an AVA-layout folder with the EMD (r = 2) loss."""

  name = "nima"

  def __init__(self, ava_dir: str, ratings: ava.AvaRatings,
               weights: Optional[str] = "imagenet", emd_r: float = 2.0):
    """Args: ava_dir: AVA folder; ratings: the (checked) training split;
    weights: backbone initialisation for build_nima; emd_r: loss norm."""
    self.ava_dir = ava_dir
    self.ratings = ratings
    self.weights = weights
    self.emd_r = emd_r
    self.preprocessing = ava_pipeline.preprocessing_config()
    # Every build_nima argument, set by build_model (model_spec.json).
    self.build_args: Optional[Dict[str, object]] = None

  def build_model(self) -> keras.Model:
    model, self.build_args = model_dir_lib.build_recorded(
        nima_lib.build_nima, weights=self.weights)
    return model

  def build_optimizers(self, model, steps_per_epoch):
    return nima_optimizers(model, steps_per_epoch)

  def steps_per_epoch(self, global_batch_size: int) -> int:
    return max(1, math.ceil(len(self.ratings) / global_batch_size))

  def examples_in_epoch(self) -> int:
    return len(self.ratings)

  def dataset(self, input_context, batch_size, start_example, seed):
    # The random flip runs in the step (per_example_loss), on the device.
    return ava_pipeline.make_dataset(
        self.ava_dir, self.ratings,
        ava_pipeline.pipeline_preprocessing(self.preprocessing),
        batch_size, training=True, seed=seed, start_example=start_example,
        input_context=input_context)

  def per_example_loss(self, model, batch, training):
    pixels, distribution = batch
    if training:  # the pipeline leaves the flip to the device
      pixels = ava_pipeline.flip_batch_tf(pixels, self.preprocessing)
    predicted = model(pixels, training=training)
    loss = losses.emd_loss(distribution, predicted, r=self.emd_r)
    return loss, {"emd_r1": tf.reduce_mean(
        losses.emd(distribution, predicted, r=1))}

  def model_spec(self) -> Dict[str, object]:
    spec = {"task": "nima", "spec_version": model_dir_lib.SPEC_VERSION,
            "preprocessing": self.preprocessing,
            "build_nima": self.build_args or model_dir_lib.recorded_arguments(
                nima_lib.build_nima, weights=self.weights)}
    if self.ava_dir is not None and self.ratings is not None:
      # Calibration images for int8 TFLite export (nima-export --quantize
      # int8): a fixed, seeded sample of the training split.
      ids = sorted(self.ratings.image_ids)
      picked = np.random.RandomState(0).permutation(len(ids))[
          :TRAINING_IMAGES_RECORDED]
      spec["training_images"] = {
          "ava_dir": os.path.abspath(self.ava_dir),
          "image_ids": [ids[i] for i in sorted(picked)]}
    return spec


class NimaTfdsTask(NimaTask):
  """NimaTask reading the TFDS `ava` records instead of loose files.

  Same model, loss and optimizers; the records hold the original image bytes,
  decoded and preprocessed exactly like the loose-file path.
  """

  def __init__(self, tfds_data_dir: str, **kwargs):
    super().__init__(None, None, **kwargs)
    self._tfds = ava_tfds
    self.tfds_data_dir = tfds_data_dir
    self.num_examples = ava_tfds.readers.num_examples("ava", tfds_data_dir,
                                                      "train")
    self.skipped_at_build = ava_tfds.load_builder(
        "ava", tfds_data_dir).info.metadata.get("skipped", {}).get("train", {})

  def steps_per_epoch(self, global_batch_size: int) -> int:
    return max(1, math.ceil(self.num_examples / global_batch_size))

  def examples_in_epoch(self) -> int:
    return self.num_examples

  def dataset(self, input_context, batch_size, start_example, seed):
    return self._tfds.ava_train_dataset(
        self.tfds_data_dir,
        ava_pipeline.pipeline_preprocessing(self.preprocessing),
        batch_size, seed=seed,
        start_example=start_example, input_context=input_context)

