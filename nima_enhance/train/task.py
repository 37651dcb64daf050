"""The interface between a model and the one training loop.

A `Task` knows its model, optimizers, input pipeline and per-example loss; the
loop (`nima_enhance.train.loop.train_loop`, a short driver over the step
function in `train/step.py` and the actions in `train/actions.py`) knows
strategies, checkpoints, summaries, progress, preemption and periodic
evaluation. NIMA and the enhancer are both Tasks.
"""

from __future__ import annotations

import abc
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

# (optimizer, the variables it updates). Several pairs let one model use
# different learning rates per part (NIMA: backbone 3e-7, head 3e-6).
OptimizerSpec = Tuple[keras.optimizers.Optimizer, Sequence[tf.Variable]]


class Task(abc.ABC):
  """A trainable model with its data and loss."""

  #: Short name used in logs and summaries.
  name: str = "task"

  @abc.abstractmethod
  def build_model(self) -> keras.Model:
    """Builds the trainable model (called inside the strategy scope)."""

  @abc.abstractmethod
  def build_optimizers(self, model: keras.Model,
                       steps_per_epoch: int) -> List[OptimizerSpec]:
    """Optimizers with the variables each one updates (inside the scope)."""

  @abc.abstractmethod
  def dataset(self, input_context: tf.distribute.InputContext,
              batch_size: int, start_example: int,
              seed: int) -> tf.data.Dataset:
    """This input pipeline's training dataset: infinite, batched per replica.

    Args:
      input_context: this pipeline's shard (`input_pipeline_id` of
        `num_input_pipelines`); shard the file list by it.
      batch_size: the per-replica batch size.
      start_example: examples of this pipeline that earlier steps consumed;
        skip them (before decoding) so a resumed run sees the same data as an
        uninterrupted one.
      seed: the run's seed.
    """

  @abc.abstractmethod
  def per_example_loss(self, model: keras.Model, batch,
                       training: bool) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Returns (loss [per-replica batch], scalar metrics to log)."""

  def steps_per_epoch(self, global_batch_size: int) -> int:
    """Steps in one pass over the training set (for schedules and logs)."""
    return 1

  def examples_in_epoch(self) -> Optional[int]:
    """Training examples in one epoch (None: unknown); the loop logs epochs."""
    return None

  def evaluate(self, model: keras.Model) -> Optional[Dict[str, float]]:
    """Optional evaluation during training (train_loop.eval_every > 0).

    Runs on the chief only, between steps; returns scalars for TensorBoard
    ("eval/<name>"). The default does nothing.
    """
    del model
    return None

  def image_summaries(self, model: keras.Model, batch) -> Dict[str, tf.Tensor]:
    """Optional images for TensorBoard: name -> [n, h, w, 3] in [0, 1]."""
    del model, batch
    return {}

  def model_spec(self) -> Dict[str, object]:
    """JSON-able description written to model_dir/model_spec.json."""
    return {"task": self.name}
