"""The enhancer as a training Task: CAN trained with the perceptual loss (eq. 1).

The paper's recipe (sec. 4.2): Adam with learning rate 1e-4, batch 1,
480x640 training images, L2 fidelity, gamma = 1e-4, NIMA weights fixed.

NIMA is held by the task, not by the trained model: it is restored from its
own model dir, marked non-trainable and called with training=False, so it is
neither in the optimizer's variables nor in the enhancer's checkpoints, and
gradients of the quality term still flow through it into the CAN.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional

from absl import logging
import gin
import keras
import tensorflow as tf

from nima_enhance import config
from nima_enhance import losses
from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data import fivek
from nima_enhance.data import fivek_pipeline
from nima_enhance.data.tfds import readers
from nima_enhance.models import can
from nima_enhance.models import nima as nima_lib
from nima_enhance.train.task import OptimizerSpec, Task


@gin.configurable("enhancer_target")
def default_target(name: Optional[str] = None) -> Optional[str]:
  """The target folder a gin file names (enhancer_target.name); --target wins.

  Lets gin/enhance/*.gin carry the operator name prep-targets writes
  (local_laplacian, nonlocal_dehaze) so --target can be left out.
  """
  return name


class NimaChoice(NamedTuple):
  """The NIMA a gin file names for the perceptual loss."""
  model_dir: Optional[str]
  expected_backbone: Optional[str]


@gin.configurable("perceptual_nima")
def default_nima(model_dir: Optional[str] = None,
                 expected_backbone: Optional[str] = None) -> NimaChoice:
  """The NIMA a gin file asks for when --nima_model_dir is not given.

  gin/enhance/*_nima.gin name the paper's choice, a NIMA(Inception-v2) trained
  with `nima-train --gin_file nima/inception_v2.gin --model_dir
  runs/nima_inception_v2`; --nima_model_dir overrides it with any NIMA.

  Args:
    model_dir: default NIMA model dir (relative to the working directory).
    expected_backbone: the backbone that default is meant to have; a
      --nima_model_dir with another backbone is used, with a log line.
  """
  return NimaChoice(model_dir, expected_backbone)


def loss_settings(**explicit) -> Dict[str, object]:
  """perceptual_loss's gamma, fidelity and huber_delta as configured.

  Explicit values win; the rest come from gin or the defaults (read by the
  config module). EnhancerTask passes them to `losses.perceptual_loss`
  itself, so the loss it trains with is the one model_spec.json records.
  """
  return config.configured_arguments(
      losses.perceptual_loss, ("gamma", "fidelity", "huber_delta"), **explicit)


@gin.configurable(denylist=["data_dir", "target", "nima_model_dir",
                            "split_file", "pairs", "gamma", "fidelity",
                            "huber_delta", "nima"])
class EnhancerTask(Task):
  """Trains the CAN on FiveK-style pairs with the perceptual loss."""

  name = "enhancer"

  def __init__(self, data_dir: str, target: str,
               nima_model_dir: Optional[str] = None,
               split_file: Optional[str] = None,
               pairs: Optional[fivek.Pairs
                               | fivek_pipeline.EncodedPairs] = None,
               learning_rate: float = 1e-4,
               nima_input: str = "nima_preprocessing",
               gamma: Optional[float] = None,
               fidelity: Optional[str] = None,
               huber_delta: Optional[float] = None,
               nima=None):
    """Args:

      data_dir: folder with input/ and <target>/.
      target: target folder name (local_laplacian, nonlocal_dehaze, ...).
      nima_model_dir: a nima-train model dir; required when gamma > 0.
      split_file: optional list of test names (the rest trains).
      pairs: the training pairs if already found (else found here): files,
        or the TFDS records' `EncodedPairs` (EnhancerTfdsTask).
      learning_rate: Adam's learning rate (paper: 1e-4).
      nima_input: "nima_preprocessing": NIMA sees the enhanced image resized
        as it was evaluated (the score the loss raises is the score
        enhance-eval reports); "full_size": NIMA sees the image at its own
        size (identical in the paper's setting, 480x640 both).
      gamma, fidelity, huber_delta: the loss (eq. 1); None takes
        `perceptual_loss.*` as configured (`loss_settings`).
      nima: an already restored NIMA (`scoring.NimaBundle`) instead of
        nima_model_dir (built outside the strategy scope: one device only).

    Raises:
      ConfigError: gamma > 0 without a NIMA model dir, or a bad nima_input.
    """
    self.data_dir = data_dir
    self.target = target
    self.split_file = split_file
    self.learning_rate = learning_rate
    if nima_input not in ("nima_preprocessing", "full_size"):
      raise config.ConfigError("EnhancerTask.nima_input must be "
                               "'nima_preprocessing' or 'full_size', got "
                               f"{nima_input!r}")
    self.nima_input = nima_input
    settings = loss_settings(**{k: v for k, v in (
        ("gamma", gamma), ("fidelity", fidelity),
        ("huber_delta", huber_delta)) if v is not None})
    self.gamma = float(settings["gamma"])
    self.fidelity = settings["fidelity"]
    self.huber_delta = float(settings["huber_delta"])
    self.nima_choice = default_nima()
    if self.gamma and not nima_model_dir and nima is None:
      nima_model_dir = self.nima_choice.model_dir
      if nima_model_dir and not os.path.isdir(nima_model_dir):
        raise config.ConfigError(
            f"perceptual_loss.gamma={self.gamma}: the gin default NIMA "
            f"{nima_model_dir} does not exist; train it (nima-train "
            f"--gin_file nima/"
            f"{self.nima_choice.expected_backbone or 'inception_v2'}.gin "
            f"--model_dir {nima_model_dir}) or pass --nima_model_dir")
    if self.gamma and not nima_model_dir and nima is None:
      raise config.ConfigError(
          f"perceptual_loss.gamma={self.gamma} needs --nima_model_dir (a "
          "nima-train model dir); use perceptual_loss.gamma=0 for plain L2")
    self.nima_model_dir = (os.path.abspath(nima_model_dir) if nima_model_dir
                           and self.gamma else None)
    if pairs is None:
      pairs, report = fivek.find_pairs(data_dir, target, "train", split_file)
      logging.info("train: %s", report.summary())
    self.pairs = pairs
    self.nima: Optional[keras.Model] = None
    self.nima_preprocessing: Optional[Dict] = None
    self.build_args: Optional[Dict[str, object]] = None
    if nima is not None and self.gamma:
      self._use_nima(nima)

  def build_model(self) -> keras.Model:
    if self.nima_model_dir:
      # Restored inside the strategy scope so replicas get their own copies.
      self.load_nima()
    model, self.build_args = model_dir_lib.build_recorded(can.build_can)
    return model

  def load_nima(self) -> None:
    """Restores the frozen NIMA (trainable=False, used with training=False)."""
    self._use_nima(nima_lib.load_nima(self.nima_model_dir))

  def _use_nima(self, bundle) -> None:
    bundle.model.trainable = False
    self.nima = bundle.model
    self.nima_preprocessing = (bundle.preprocessing if self.nima_input ==
                               "nima_preprocessing" else None)
    backbone = bundle.spec.get("build_nima", {}).get("backbone", "mobilenet")
    expected = self.nima_choice.expected_backbone
    if expected and backbone != expected:
      logging.info("Perceptual NIMA is NIMA(%s) from %s; the gin config "
                   "names NIMA(%s), the paper's choice.", backbone,
                   self.nima_model_dir, expected)
    logging.info("Frozen NIMA(%s) from %s (%s)", backbone, self.nima_model_dir,
                 bundle.checkpoint)

  def build_optimizers(self, model: keras.Model,
                       steps_per_epoch: int) -> List[OptimizerSpec]:
    del steps_per_epoch
    # Only the CAN's variables: NIMA's can never be updated.
    return [(keras.optimizers.Adam(self.learning_rate),
             model.trainable_variables)]

  def steps_per_epoch(self, global_batch_size: int) -> int:
    return max(1, -(-len(self.pairs) // global_batch_size))

  def examples_in_epoch(self) -> int:
    return len(self.pairs)

  def dataset(self, input_context, batch_size, start_example, seed):
    return fivek_pipeline.make_train_dataset(
        self.pairs, batch_size=batch_size, seed=seed,
        start_example=start_example, input_context=input_context)

  def per_example_loss(self, model, batch, training):
    source, reference = batch
    enhanced = model(source, training=training)
    loss, components = losses.perceptual_loss(
        reference, enhanced, nima_model=self.nima, gamma=self.gamma,
        fidelity=self.fidelity, huber_delta=self.huber_delta,
        nima_preprocessing=self.nima_preprocessing, return_components=True)
    return loss, components

  def image_summaries(self, model: keras.Model, batch) -> Dict[str, tf.Tensor]:
    source, reference = batch
    output = tf.clip_by_value(model(source, training=False), 0.0, 1.0)
    return {"input": source, "target": reference, "output": output}

  def model_spec(self) -> Dict[str, object]:
    return {"task": "enhancer", "spec_version": model_dir_lib.SPEC_VERSION,
            "build_can": (self.build_args or
                          model_dir_lib.recorded_arguments(can.build_can)),
            "nima_model_dir": self.nima_model_dir,
            "nima_input": self.nima_input,
            "target": self.target,
            "data_dir": os.path.abspath(self.data_dir),
            "split_file": (os.path.abspath(self.split_file) if self.split_file
                           else None),
            "gamma": self.gamma,
            "fidelity": self.fidelity,
            "huber_delta": self.huber_delta,
            "learning_rate": self.learning_rate}


class EnhancerTfdsTask(EnhancerTask):
  """EnhancerTask reading the TFDS `mit_adobe_fivek_pairs/<target>` records.

  Same model, loss, optimizer, gin settings and input steps
  (`fivek_pipeline.make_train_dataset`: resize, crops, shuffle, resume);
  only the pairs come from the records `build-tfds` wrote instead of loose
  files. The train/test split is the one the records were built with.
  """

  def __init__(self, tfds_data_dir: str, target: str,
               nima_model_dir: Optional[str] = None, **kwargs):
    pairs = readers.fivek_train_pairs(tfds_data_dir, target)
    super().__init__(tfds_data_dir, target, nima_model_dir=nima_model_dir,
                     pairs=pairs, **kwargs)
    self.skipped_at_build = readers.fivek_skipped_at_build(tfds_data_dir,
                                                          target)

  def model_spec(self) -> Dict[str, object]:
    spec = super().model_spec()
    spec.update(data_source="tfds", data_dir=None,
                tfds_data_dir=_absolute(self.data_dir))
    return spec


def _absolute(path: str) -> str:
  return path if "://" in path else os.path.abspath(path)
