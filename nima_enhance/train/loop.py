"""The one training loop, shared by every model and every strategy.

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
  keeps the optimizers' dynamic scales in lockstep (see `_LossScaling`).
  `mixed_bfloat16` needs no loss scaling.

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
from nima_enhance import model_dir as model_dir_lib
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


class _LossScaling:
  """Loss scaling for mixed_float16 with one or several optimizers.

  Each optimizer is a `keras.optimizers.LossScaleOptimizer` with its own dynamic
  scale. The loss is scaled once by the first optimizer's scale; gradients for
  optimizer i are multiplied by scale_i / scale_0 so that optimizer i's own
  unscaling yields the true gradient even if the scales ever differ. Whether the
  gradients are finite is decided globally (all variables, all replicas, all
  workers) and a non-finite step is turned into NaN gradients for every
  optimizer, so all of them skip the step and halve their scale together: the
  scales stay equal and no replica applies an update another one skipped.
  """

  def __init__(self, optimizers):
    self.optimizers = optimizers

  def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
    return self.optimizers[0].scale_loss(loss)

  def prepare(self, grads_per_optimizer):
    """Per-optimizer gradient lists, ready for each LossScaleOptimizer."""
    flat = [g for grads in grads_per_optimizer for g in grads if g is not None]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in flat])
    bad = tf.cast(tf.logical_not(finite), tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None:
      bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    all_finite = tf.equal(bad, 0.0)
    base = tf.cast(self.optimizers[0].dynamic_scale, tf.float32)
    prepared = []
    for optimizer, grads in zip(self.optimizers, grads_per_optimizer):
      ratio = tf.cast(optimizer.dynamic_scale, tf.float32) / base
      out = []
      for g in grads:
        if g is None:
          out.append(None)
          continue
        g = g * tf.cast(ratio, g.dtype)
        out.append(tf.where(all_finite, g, tf.fill(tf.shape(g),
                                                   tf.constant(float("nan"),
                                                               g.dtype))))
      prepared.append(out)
    return prepared


def _wrap_for_loss_scaling(optimizer_specs):
  """Wraps each optimizer in a LossScaleOptimizer under mixed_float16."""
  if keras.mixed_precision.global_policy().name != "mixed_float16":
    return optimizer_specs, None
  wrapped = []
  for optimizer, variables in optimizer_specs:
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    wrapped.append((optimizer, variables))
  logging.info("mixed_float16: dynamic loss scaling for %d optimizer(s)",
               len(wrapped))
  return wrapped, _LossScaling([o for o, _ in wrapped])


def _num_workers(strategy: tf.distribute.Strategy) -> int:
  """Hosts taking part in every step (1 unless multi-worker)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver else {}
    return max(1, sum(len(spec.get(kind, ())) for kind in ("chief", "worker")))
  return 1


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
               require_static_shapes: Optional[bool] = None,
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
    seed: seeds the input pipeline, TF's, Keras', numpy's and Python's global
      generators (so two runs with one seed start from the same weights).
    jit_compile: XLA-compile the per-replica step (forward, backward and the
      optimizer update).
    require_static_shapes: check that every input element has a fully defined
      shape before training; None: only under a TPU strategy, which needs it.
    progress: print the progress line.

  Returns:
    dict with "step", "loss", "steps_per_sec", "examples_per_sec",
    "preempted", "checkpoint" (the latest checkpoint path) and "model".

  Raises:
    ValueError: a global batch the replicas cannot split, or (TPU /
      require_static_shapes) an input element without a static shape.
  """
  strategy = strategy or distribute.get_strategy("one_device")
  if global_batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"train_loop.global_batch_size={global_batch_size} is not "
                     f"divisible by {strategy.num_replicas_in_sync} replicas")
  keras.utils.set_random_seed(seed)
  chief = distribute.is_chief(strategy)
  write_dir = distribute.worker_dir(model_dir, strategy)
  os.makedirs(write_dir, exist_ok=True)
  steps_per_epoch = task.steps_per_epoch(global_batch_size)

  with strategy.scope():
    model = task.build_model()
    optimizer_specs = task.build_optimizers(model, steps_per_epoch)
    optimizer_specs, loss_scaling = _wrap_for_loss_scaling(optimizer_specs)
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
    data = task.dataset(ctx, per_replica, start_step * per_pipeline_step, seed)
    if static_shapes:
      distribute.assert_static_shapes(data, f"the {task.name} training input")
    return data

  static_shapes = (distribute.is_tpu(strategy) if require_static_shapes is None
                   else require_static_shapes)
  # All workers must agree on stopping (see the module docstring).
  agree_on_stop = _num_workers(strategy) > 1

  dataset = strategy.distribute_datasets_from_function(dataset_fn)
  iterator = iter(dataset)
  var_lists = [list(v) for _, v in optimizer_specs]
  all_vars = [v for vs in var_lists for v in vs]

  def replica_step(batch, stop):
    with tf.GradientTape() as tape:
      per_example, metrics = task.per_example_loss(model, batch, training=True)
      # Float32 even when the model computes in float16/bfloat16.
      per_example = tf.cast(per_example, tf.float32)
      loss = tf.nn.compute_average_loss(per_example,
                                        global_batch_size=global_batch_size)
      if model.losses:
        loss += tf.nn.scale_regularization_loss(
            tf.add_n([tf.cast(l, tf.float32) for l in model.losses]))
      scaled = loss_scaling.scale_loss(loss) if loss_scaling else loss
    grads = tape.gradient(scaled, all_vars)
    per_optimizer, offset = [], 0
    for variables in var_lists:
      per_optimizer.append(grads[offset:offset + len(variables)])
      offset += len(variables)
    if loss_scaling:
      per_optimizer = loss_scaling.prepare(per_optimizer)
    for (optimizer, _), variables, opt_grads in zip(optimizer_specs, var_lists,
                                                    per_optimizer):
      optimizer.apply_gradients([(g, v) for g, v in zip(opt_grads, variables)
                                 if g is not None])
    if agree_on_stop:
      # One worker's SIGTERM becomes every worker's decision for this step.
      # (identity: placed on this replica's device, which the collective
      # needs; the function argument itself has no device.)
      stop = tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, tf.identity(stop))
    return loss, metrics, stop

  # XLA compiles the replica function (as Keras' own trainer does): the
  # iterator's GetNext and the cross-replica reductions stay outside it.
  replica_fn = (tf.function(replica_step, jit_compile=True) if jit_compile
                else replica_step)

  @tf.function
  def train_step(iterator, stop):
    loss, metrics, stop = strategy.run(replica_fn,
                                       args=(next(iterator), stop))
    loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
    metrics = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
               for k, v in metrics.items()}
    # Identical on every replica after the all-reduce: take the first.
    stop = strategy.experimental_local_results(stop)[0]
    step.assign_add(1)
    return loss, metrics, stop

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
      loss, metrics, stop = train_step(
          iterator, tf.constant(1.0 if sigterm.raised else 0.0))
      current += 1
      # Multi-worker: only the all-reduced flag may decide, since a SIGTERM
      # arriving now would be seen by this worker alone.
      stopping = (float(stop.numpy()) > 0 if agree_on_stop
                  else sigterm.raised)
      if chief and not wrote_config:
        # After the first step every configurable has been called once, so the
        # operative config is complete.
        config.write_operative_config(model_dir)
        wrote_config = True
      if current % log_every == 0 or current == num_steps or stopping:
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
      # Every worker takes part in each save (collective), so the condition
      # must be the same on all of them.
      if current % checkpoint_every == 0 or current == num_steps or stopping:
        manager.save(checkpoint_number=current)
      if stopping:
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
  images.atomic_write_bytes(os.path.join(model_dir, model_dir_lib.SPEC_NAME),
                            json.dumps(spec, indent=2).encode("utf-8"))
