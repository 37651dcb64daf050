"""The one training loop, shared by every model and every strategy.

`train_loop` is a short driver (docs/architecture.md, "Training"): the step
function comes from `train/step.py`, and each finished step goes to the
actions of `train/actions.py` (summaries, progress, periodic evaluation,
checkpointing, preemption), so a new hook is a new action, not an edit in the
middle of the loop.

`strategy.run` over `strategy.distribute_datasets_from_function` (per-replica
batch from the input context), the loss averaged over the *global* batch so
gradients are the same for any number of replicas, Keras optimizers applied
inside the replica function, `tf.train.CheckpointManager` with resume from the
latest checkpoint (the input pipeline skips what earlier steps consumed),
TensorBoard scalars and images, a progress line with throughput and ETA,
checkpoint on SIGTERM, and `operative_config.gin` written by the chief.

Scale-out rules kept here (docs/scaling.md explains the commands):

* Multi-worker: every worker runs this loop; only the chief writes into
  model_dir, the others write into a throw-away `distribute.worker_dir` because
  saving is a collective that every worker must join. A SIGTERM seen by any
  worker is all-reduced inside the step so that all workers save and stop at the
  same step (a lone worker leaving the collective would hang the others).
* TPU: every input element must have a fully static shape (checked before the
  first step, with an error naming the offending component).
* Mixed precision: under `mixed_float16` every optimizer is wrapped in a
  `keras.optimizers.LossScaleOptimizer`; the loop scales the loss once and
  keeps the optimizers' dynamic scales in lockstep (`step.LossScaling`).
  `mixed_bfloat16` needs no loss scaling.

Keras 3's `model.fit` is not used: it is broken under
MultiWorkerMirroredStrategy, and one loop for all strategies is easier to trust.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

from absl import logging
import gin
import keras
import tensorflow as tf

from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data import image_write
from nima_enhance.train import actions
from nima_enhance.train import distribute
from nima_enhance.train import step as step_lib
from nima_enhance.train.actions import Progress
from nima_enhance.train.task import Task

# Older names of the parts (tests/test_distribute.py, tools/benchmarks).
_LossScaling = step_lib.LossScaling
__all__ = ["Progress", "train_loop"]


@gin.configurable(denylist=["task", "model_dir", "strategy"])
def train_loop(task: Task, model_dir: str,
               strategy: Optional[tf.distribute.Strategy] = None,
               num_steps: int = gin.REQUIRED, global_batch_size: int = 64,
               checkpoint_every: int = 1000, log_every: int = 50,
               image_summary_every: int = 0, max_checkpoints_to_keep: int = 3,
               seed: int = 0, jit_compile: bool = False,
               require_static_shapes: Optional[bool] = None,
               progress: bool = True, eval_every: int = 0) -> Dict[str, object]:
  """Trains `task` until `num_steps`, resuming from model_dir if it holds a run.

  Args:
    task: the model, data and loss.
    model_dir: checkpoints, TensorBoard events, operative_config.gin and
      model_spec.json go here (written by the chief only).
    strategy: a tf.distribute strategy (default: one device).
    num_steps: total optimizer steps of the whole run (not of this call).
    global_batch_size: examples per step over all replicas.
    checkpoint_every: steps between checkpoints (plus the last step, SIGTERM).
    log_every, image_summary_every: steps between scalar summaries and
      progress lines; between image summaries (0: never).
    max_checkpoints_to_keep: CheckpointManager's max_to_keep.
    seed: seeds the input pipeline and TF's, Keras', numpy's and Python's
      generators (two runs with one seed start from the same weights).
    jit_compile: XLA-compile the per-replica step (see step.make_train_step).
    require_static_shapes: check every input element's shape is fully defined
      before training; None: only under a TPU strategy, which needs it.
    progress: print the progress line. eval_every: steps between
      `task.evaluate(model)` on the chief (0: never).

  Returns:
    dict: "step", "loss", "steps_per_sec", "examples_per_sec", "preempted",
    "checkpoint" (latest path), "model", "eval" (the last evaluation).

  Raises:
    ValueError: a global batch the replicas cannot split; (TPU) an input
      element without a static shape.
  """
  strategy, chief, write_dir = _prepare(strategy, model_dir, global_batch_size,
                                        seed)
  with strategy.scope():
    model = task.build_model()
    optimizer_specs, loss_scaling = step_lib.build_optimizers(
        task, model, task.steps_per_epoch(global_batch_size))
    checkpoints = actions.Checkpointing(model, optimizer_specs, model_dir,
                                        write_dir, checkpoint_every,
                                        max_checkpoints_to_keep)
  start = current = checkpoints.restore()
  if chief:
    _write_model_spec(model_dir, task)
  preemption = actions.Preemption(agree=actions.num_workers(strategy) > 1)
  train_step = step_lib.make_train_step(
      task, model, optimizer_specs, loss_scaling, strategy, global_batch_size,
      checkpoints.step, preemption.agree, jit_compile)
  iterator = iter(strategy.distribute_datasets_from_function(_dataset_fn(
      task, strategy, global_batch_size, start, seed, require_static_shapes)))
  summaries = actions.Summaries(write_dir, task, model, optimizer_specs,
                                global_batch_size,
                                image_summary_every if chief else 0, seed)
  evaluation = actions.PeriodicEvaluation(task, model, eval_every if chief else 0)
  bar = Progress(num_steps, start, global_batch_size, enabled=progress)
  loss_value, stopping = float("nan"), False
  with preemption, summaries:
    while current < num_steps and not stopping:
      loss, metrics, stop = train_step(iterator, preemption.flag())
      current += 1
      stopping = preemption.stopping(stop)
      if chief and current == start + 1:
        # After the first step every configurable has been called once.
        _write_operative_config(model_dir)
      if current % log_every == 0 or current == num_steps or stopping:
        loss_value = float(loss.numpy())
        summaries.scalars(current, loss_value, metrics, bar.rates(current)[0])
        bar.update(current, loss_value)
      summaries.images(current)
      evaluation.after_step(current)
      checkpoints.after_step(current, last=current == num_steps or stopping)
  if stopping:
    logging.warning("SIGTERM: checkpoint saved at step %d, stopping.", current)
  if chief and current == start:
    _write_operative_config(model_dir)
  distribute.cleanup_worker_dir(model_dir, strategy)
  steps_per_sec = bar.rates(current)[0]
  return {"step": current, "loss": loss_value, "steps_per_sec": steps_per_sec,
          "examples_per_sec": steps_per_sec * global_batch_size,
          "preempted": stopping, "model": model, "eval": evaluation.last,
          "checkpoint": tf.train.latest_checkpoint(model_dir)}


def _prepare(strategy: Optional[tf.distribute.Strategy], model_dir: str,
             global_batch_size: int, seed: int):
  """(strategy, is chief, write dir): checks the batch, seeds, makes the dir."""
  strategy = strategy or distribute.get_strategy("one_device")
  if global_batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"train_loop.global_batch_size={global_batch_size} is not "
                     f"divisible by {strategy.num_replicas_in_sync} replicas")
  keras.utils.set_random_seed(seed)
  write_dir = distribute.worker_dir(model_dir, strategy)
  os.makedirs(write_dir, exist_ok=True)
  return strategy, distribute.is_chief(strategy), write_dir


def _dataset_fn(task: Task, strategy: tf.distribute.Strategy,
                global_batch_size: int, start_step: int, seed: int,
                require_static_shapes: Optional[bool]):
  """The per-pipeline dataset function, resuming after `start_step` steps."""
  static_shapes = (distribute.is_tpu(strategy) if require_static_shapes is None
                   else require_static_shapes)

  def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
    per_replica = ctx.get_per_replica_batch_size(global_batch_size)
    # Each pipeline feeds num_replicas / num_pipelines replicas per step.
    per_pipeline_step = global_batch_size // max(1, ctx.num_input_pipelines)
    data = task.dataset(ctx, per_replica, start_step * per_pipeline_step, seed)
    if static_shapes:
      distribute.assert_static_shapes(data, f"the {task.name} training input")
    return data

  return dataset_fn


def _write_operative_config(model_dir: str) -> None:
  """The gin configuration as called (gin.tf's hook, without gin.tf)."""
  image_write.atomic_write_bytes(
      os.path.join(model_dir, "operative_config.gin"),
      gin.operative_config_str().encode("utf-8"))


def _write_model_spec(model_dir: str, task: Task) -> None:
  """model_spec.json lets scoring/export rebuild the model without gin."""
  spec = dict(task.model_spec())
  image_write.atomic_write_bytes(
      os.path.join(model_dir, model_dir_lib.SPEC_NAME),
      json.dumps(spec, indent=2).encode("utf-8"))
