"""The one training loop, shared by every model and every strategy.

`strategy.run` over `strategy.distribute_datasets_from_function` (per-replica
batch from the input context), the loss averaged over the *global* batch so
gradients are the same for any number of replicas, Keras optimizers applied
inside the replica function, `tf.train.CheckpointManager` with resume from the
latest checkpoint (the input pipeline skips what earlier steps consumed),
TensorBoard scalars and images, a progress line with throughput and ETA,
checkpoint on SIGTERM, and `operative_config.gin` written by the chief.

Keras 3's `model.fit` is not used: it is broken under
MultiWorkerMirroredStrategy, and one loop for all strategies is easier to trust.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Dict, Optional

from absl import logging
import gin
import keras
import tensorflow as tf

from nima_enhance import config
from nima_enhance.data import images
from nima_enhance.train import distribute
from nima_enhance.train.task import Task


class Progress:
  """A one-line progress display: step, loss, throughput and ETA."""

  def __init__(self, total_steps: int, start_step: int, batch_size: int,
               stream=None, enabled: bool = True):
    self.total = total_steps
    self.start_step = start_step
    self.batch_size = batch_size
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.start_time = time.perf_counter()
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

  def rates(self, step: int) -> tuple[float, float]:
    """(steps per second, seconds left) since this run started."""
    elapsed = max(time.perf_counter() - self.start_time, 1e-9)
    steps_per_sec = (step - self.start_step) / elapsed
    eta = (self.total - step) / steps_per_sec if steps_per_sec > 0 else 0.0
    return steps_per_sec, eta

  def update(self, step: int, loss: float, extra: str = "") -> str:
    steps_per_sec, eta = self.rates(step)
    width = 24
    filled = int(width * step / max(self.total, 1))
    bar = "#" * filled + "." * (width - filled)
    line = (f"step {step}/{self.total} [{bar}] loss {loss:.4f} "
            f"{steps_per_sec:.2f} steps/s {steps_per_sec * self.batch_size:.1f} "
            f"ex/s ETA {_format_seconds(eta)}{extra}")
    if self.enabled:
      end = "" if self._tty and step < self.total else "\n"
      self.stream.write(("\r" if self._tty else "") + line + end)
      self.stream.flush()
    return line


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class _SigtermFlag:
  """Turns SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
    return False


def _learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
  lr = optimizer.learning_rate
  return float(lr.numpy() if hasattr(lr, "numpy") else lr)


@gin.configurable(denylist=["task", "model_dir", "strategy"])
def train_loop(task: Task,
               model_dir: str,
               strategy: Optional[tf.distribute.Strategy] = None,
               num_steps: int = gin.REQUIRED,
               global_batch_size: int = 64,
               checkpoint_every: int = 1000,
               log_every: int = 50,
               image_summary_every: int = 0,
               max_checkpoints_to_keep: int = 3,
               seed: int = 0,
               jit_compile: bool = False,
               progress: bool = True) -> Dict[str, object]:
  """Trains `task` until `num_steps`, resuming from model_dir if it holds a run.

  Args:
    task: the model, data and loss.
    model_dir: checkpoints, TensorBoard events, operative_config.gin and
      model_spec.json go here (written by the chief only).
    strategy: a tf.distribute strategy (default: one device).
    num_steps: total optimizer steps of the whole run (not of this call).
    global_batch_size: examples per step over all replicas.
    checkpoint_every: steps between checkpoints (plus one at the end and one at
      SIGTERM).
    log_every: steps between scalar summaries and progress lines.
    image_summary_every: steps between image summaries (0: never).
    max_checkpoints_to_keep: CheckpointManager's max_to_keep.
    seed: seeds the input pipeline and TF's global generator.
    jit_compile: XLA-compile the step function.
    progress: print the progress line.

  Returns:
    dict with "step", "loss", "steps_per_sec", "examples_per_sec",
    "preempted" and "checkpoint" (the latest checkpoint path).
  """
  strategy = strategy or distribute.get_strategy("one_device")
  if global_batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"train_loop.global_batch_size={global_batch_size} is not "
                     f"divisible by {strategy.num_replicas_in_sync} replicas")
  tf.random.set_seed(seed)
  chief = distribute.is_chief(strategy)
  write_dir = distribute.worker_dir(model_dir, strategy)
  os.makedirs(write_dir, exist_ok=True)
  steps_per_epoch = task.steps_per_epoch(global_batch_size)

  with strategy.scope():
    model = task.build_model()
    optimizer_specs = task.build_optimizers(model, steps_per_epoch)
    for optimizer, variables in optimizer_specs:
      optimizer.build(list(variables))
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = tf.train.Checkpoint(
        model=model, step=step,
        **{f"optimizer_{i}": opt for i, (opt, _) in enumerate(optimizer_specs)})
  manager = tf.train.CheckpointManager(checkpoint, write_dir,
                                       max_to_keep=max_checkpoints_to_keep)
  latest = tf.train.latest_checkpoint(model_dir)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
    logging.info("Resumed from %s at step %d", latest, int(step.numpy()))
  start_step = int(step.numpy())
  if chief:
    _write_model_spec(model_dir, task)

  def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
    per_replica = ctx.get_per_replica_batch_size(global_batch_size)
    # Each pipeline feeds num_replicas / num_pipelines replicas per step.
    per_pipeline_step = global_batch_size // max(1, ctx.num_input_pipelines)
    return task.dataset(ctx, per_replica, start_step * per_pipeline_step, seed)

  dataset = strategy.distribute_datasets_from_function(dataset_fn)
  iterator = iter(dataset)
  var_lists = [list(v) for _, v in optimizer_specs]
  all_vars = [v for vs in var_lists for v in vs]

  def replica_step(batch):
    with tf.GradientTape() as tape:
      per_example, metrics = task.per_example_loss(model, batch, training=True)
      loss = tf.nn.compute_average_loss(per_example,
                                        global_batch_size=global_batch_size)
      if model.losses:
        loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
    grads = tape.gradient(loss, all_vars)
    offset = 0
    for (optimizer, _), variables in zip(optimizer_specs, var_lists):
      pairs = list(zip(grads[offset:offset + len(variables)], variables))
      optimizer.apply_gradients([(g, v) for g, v in pairs if g is not None])
      offset += len(variables)
    return loss, metrics

  @tf.function(jit_compile=jit_compile or None)
  def train_step(iterator):
    loss, metrics = strategy.run(replica_step, args=(next(iterator),))
    loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
    metrics = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
               for k, v in metrics.items()}
    step.assign_add(1)
    return loss, metrics

  summary_dir = os.path.join(write_dir, "train")
  writer = tf.summary.create_file_writer(summary_dir)
  summary_batch = None
  if image_summary_every and chief:
    summary_batch = next(iter(task.dataset(
        tf.distribute.InputContext(), min(global_batch_size, 4), 0, seed)))
  bar = Progress(num_steps, start_step, global_batch_size, enabled=progress)
  loss_value = float("nan")
  current = start_step
  preempted = False
  wrote_config = False
  with _SigtermFlag() as sigterm, writer.as_default():
    while current < num_steps:
      loss, metrics = train_step(iterator)
      current += 1
      if chief and not wrote_config:
        # After the first step every configurable has been called once, so the
        # operative config is complete.
        config.write_operative_config(model_dir)
        wrote_config = True
      if current % log_every == 0 or current == num_steps or sigterm.raised:
        loss_value = float(loss.numpy())
        steps_per_sec, _ = bar.rates(current)
        tf.summary.scalar("loss", loss_value, step=current)
        tf.summary.scalar("steps_per_sec", steps_per_sec, step=current)
        tf.summary.scalar("examples_per_sec",
                          steps_per_sec * global_batch_size, step=current)
        for name, value in metrics.items():
          tf.summary.scalar(name, float(value.numpy()), step=current)
        for i, (optimizer, _) in enumerate(optimizer_specs):
          tf.summary.scalar(f"learning_rate_{i}", _learning_rate(optimizer),
                            step=current)
        bar.update(current, loss_value)
      if summary_batch is not None and current % image_summary_every == 0:
        for name, value in task.image_summaries(model, summary_batch).items():
          tf.summary.image(name, value, step=current, max_outputs=4)
      if current % checkpoint_every == 0 or current == num_steps:
        manager.save(checkpoint_number=current)
      if sigterm.raised:
        manager.save(checkpoint_number=current)
        logging.warning("SIGTERM: checkpoint saved at step %d, stopping.",
                        current)
        preempted = True
        break
  writer.flush()
  steps_per_sec, _ = bar.rates(current)
  if chief and not wrote_config:
    config.write_operative_config(model_dir)
  distribute.cleanup_worker_dir(model_dir, strategy)
  result = {
      "step": current,
      "loss": loss_value,
      "steps_per_sec": steps_per_sec,
      "examples_per_sec": steps_per_sec * global_batch_size,
      "preempted": preempted,
      "checkpoint": tf.train.latest_checkpoint(model_dir),
      "model": model,
  }
  return result


def _write_model_spec(model_dir: str, task: Task) -> None:
  """model_spec.json lets scoring/export rebuild the model without gin."""
  spec = dict(task.model_spec())
  images.atomic_write_bytes(os.path.join(model_dir, "model_spec.json"),
                            json.dumps(spec, indent=2).encode("utf-8"))
