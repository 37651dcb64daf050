"""The training step: optimizers, loss scaling and the distributed step function.

One part of the training loop (`nima_enhance.train.loop`): given a Task's model
and optimizers, `make_train_step` returns the `tf.function` that runs one
optimizer step on every replica. The loss is averaged over the *global* batch
so gradients are the same for any number of replicas, and the Keras optimizers
are applied inside the replica function.

Mixed precision: under `mixed_float16` every optimizer is wrapped in a
`keras.optimizers.LossScaleOptimizer`; the step scales the loss once and keeps
the optimizers' dynamic scales in lockstep (see `LossScaling`).
`mixed_bfloat16` needs no loss scaling.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from absl import logging
import keras
import tensorflow as tf

from nima_enhance.train.task import OptimizerSpec, Task


class LossScaling:
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


def build_optimizers(task: Task, model: keras.Model, steps_per_epoch: int
                    ) -> Tuple[List[OptimizerSpec], Optional[LossScaling]]:
  """The task's optimizers, built, and wrapped for loss scaling if needed.

  Called inside the strategy scope, so the optimizer slots are replicated.
  """
  specs = task.build_optimizers(model, steps_per_epoch)
  loss_scaling = None
  if keras.mixed_precision.global_policy().name == "mixed_float16":
    wrapped = []
    for optimizer, variables in specs:
      if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      wrapped.append((optimizer, variables))
    logging.info("mixed_float16: dynamic loss scaling for %d optimizer(s)",
                 len(wrapped))
    specs, loss_scaling = wrapped, LossScaling([o for o, _ in wrapped])
  for optimizer, variables in specs:
    optimizer.build(list(variables))
  return specs, loss_scaling


def make_train_step(task: Task, model: keras.Model,
                    optimizer_specs: Sequence[OptimizerSpec],
                    loss_scaling: Optional[LossScaling],
                    strategy: tf.distribute.Strategy, global_batch_size: int,
                    step: tf.Variable, agree_on_stop: bool,
                    jit_compile: bool = False) -> Callable:
  """The step function: `train_step(iterator, stop) -> (loss, metrics, stop)`.

  Args:
    task: gives the per-example loss.
    model, optimizer_specs, loss_scaling: from the strategy scope.
    strategy: runs the replica function.
    global_batch_size: the loss is averaged over it.
    step: the global step variable, incremented once per call.
    agree_on_stop: all-reduce the stop flag (multi-worker: one worker's
      SIGTERM becomes every worker's decision for this step).
    jit_compile: XLA-compile the replica function (forward, backward and the
      optimizer update); the iterator's GetNext and the cross-replica
      reductions stay outside it, as in Keras' own trainer.

  Returns:
    a tf.function; `loss` is the global-batch mean, `metrics` the task's
    scalars (replica mean), `stop` the (agreed) stop flag.
  """
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
      # (identity: placed on this replica's device, which the collective
      # needs; the function argument itself has no device.)
      stop = tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, tf.identity(stop))
    return loss, metrics, stop

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

  return train_step
