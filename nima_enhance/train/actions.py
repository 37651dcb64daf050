"""The training loop's actions: what happens around the step function.

In the spirit of Orbit's controller and actions, `train_loop`
(`nima_enhance.train.loop`) is a short driver that runs the step function and
hands each finished step to these parts, each one concern:

* `Checkpointing`: the checkpoint, restore from the latest one, periodic saves.
* `Summaries`: TensorBoard scalars (loss, throughput, epoch, learning rates,
  the task's metrics) and optional image summaries.
* `Progress`: the one-line progress display with throughput and ETA.
* `Preemption`: SIGTERM turned into a stop flag, agreed by all workers.
* `PeriodicEvaluation`: the task's optional `evaluate(model)`, every N steps.

Multi-worker rule kept by them: every worker takes part in each save (a
collective), so save decisions must be the same on all workers; only the chief
writes summaries and evaluations into model_dir.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Dict, Optional, Sequence

from absl import logging
import keras
import tensorflow as tf

from nima_enhance.train.task import OptimizerSpec, Task


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
            f"ex/s ETA {format_seconds(eta)}{extra}")
    if self.enabled:
      end = "" if self._tty and step < self.total else "\n"
      self.stream.write(("\r" if self._tty else "") + line + end)
      self.stream.flush()
    return line


def format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Preemption:
  """SIGTERM as a flag the loop checks between steps; a context manager.

  With `agree` (multi-worker) the flag goes into the step function, which
  all-reduces it, and only that agreed value may decide: a SIGTERM arriving
  after the step would be seen by this worker alone, and a lone worker leaving
  the collectives would hang the others.
  """

  def __init__(self, agree: bool):
    self.agree = agree
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

  def flag(self) -> tf.Tensor:
    """This worker's vote, passed into the step function."""
    return tf.constant(1.0 if self.raised else 0.0)

  def stopping(self, agreed: tf.Tensor) -> bool:
    """Whether to save and stop after this step."""
    return float(agreed.numpy()) > 0 if self.agree else self.raised


class Checkpointing:
  """The run's checkpoint: model, step and optimizers; restore and save.

  Built inside the strategy scope. Saves into the worker's write dir (the
  chief's is model_dir); restores from model_dir's latest checkpoint.
  """

  def __init__(self, model: keras.Model,
               optimizer_specs: Sequence[OptimizerSpec], model_dir: str,
               write_dir: str, every: int, max_to_keep: int):
    self.model_dir = model_dir
    self.every = every
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False,
                            name="global_step")
    self.checkpoint = tf.train.Checkpoint(
        model=model, step=self.step,
        **{f"optimizer_{i}": opt for i, (opt, _) in enumerate(optimizer_specs)})
    self.manager = tf.train.CheckpointManager(self.checkpoint, write_dir,
                                              max_to_keep=max_to_keep)

  def restore(self) -> int:
    """Restores the latest checkpoint of model_dir, if any; the start step."""
    latest = tf.train.latest_checkpoint(self.model_dir)
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("Resumed from %s at step %d", latest,
                   int(self.step.numpy()))
    return int(self.step.numpy())

  def after_step(self, step: int, last: bool) -> None:
    """Saves every `every` steps and at the last step (or a stop)."""
    if step % self.every == 0 or last:
      self.manager.save(checkpoint_number=step)


class Summaries:
  """TensorBoard summaries into <write dir>/train; a context manager."""

  def __init__(self, write_dir: str, task: Task, model: keras.Model,
               optimizer_specs: Sequence[OptimizerSpec],
               global_batch_size: int, image_every: int, seed: int):
    self.task = task
    self.model = model
    self.optimizers = [o for o, _ in optimizer_specs]
    self.global_batch_size = global_batch_size
    self.image_every = image_every
    self.writer = tf.summary.create_file_writer(os.path.join(write_dir,
                                                             "train"))
    self.examples_in_epoch = task.examples_in_epoch()
    self.image_batch = None
    if image_every:
      self.image_batch = next(iter(task.dataset(
          tf.distribute.InputContext(), min(global_batch_size, 4), 0, seed)))

  def __enter__(self):
    self._context = self.writer.as_default()
    self._context.__enter__()
    return self

  def __exit__(self, *exc):
    self._context.__exit__(*exc)
    self.writer.flush()
    return False

  def scalars(self, step: int, loss: float, metrics: Dict[str, tf.Tensor],
              steps_per_sec: float) -> None:
    tf.summary.scalar("loss", loss, step=step)
    tf.summary.scalar("steps_per_sec", steps_per_sec, step=step)
    tf.summary.scalar("examples_per_sec",
                      steps_per_sec * self.global_batch_size, step=step)
    if self.examples_in_epoch:
      tf.summary.scalar("epoch", step * self.global_batch_size /
                        self.examples_in_epoch, step=step)
    for name, value in metrics.items():
      tf.summary.scalar(name, float(value.numpy()), step=step)
    for i, optimizer in enumerate(self.optimizers):
      tf.summary.scalar(f"learning_rate_{i}", learning_rate(optimizer),
                        step=step)

  def images(self, step: int) -> None:
    if self.image_batch is not None and step % self.image_every == 0:
      for name, value in self.task.image_summaries(
          self.model, self.image_batch).items():
        tf.summary.image(name, value, step=step, max_outputs=4)


class PeriodicEvaluation:
  """Runs `task.evaluate(model)` every `every` steps (0: never).

  The values go to TensorBoard under "eval/" and are kept as `last`. The
  chief alone evaluates (the loop passes every=0 elsewhere), so a Task's
  evaluation must not join collectives.
  """

  def __init__(self, task: Task, model: keras.Model, every: int):
    self.task = task
    self.model = model
    self.every = every
    self.last: Optional[Dict[str, float]] = None

  def after_step(self, step: int) -> None:
    if self.every and step % self.every == 0:
      self.last = {k: float(v) for k, v in
                   (self.task.evaluate(self.model) or {}).items()}
      for name, value in self.last.items():
        tf.summary.scalar(f"eval/{name}", value, step=step)


def learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
  lr = optimizer.learning_rate
  return float(lr.numpy() if hasattr(lr, "numpy") else lr)


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """Hosts taking part in every step (1 unless multi-worker)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver else {}
    return max(1, sum(len(spec.get(kind, ())) for kind in ("chief", "worker")))
  return 1
