"""Training-loop overhead: `train_loop` steps/s versus a bare tf.function step.

    python tools/benchmarks/train_step.py [--backbone small_cnn] [--height 96]
        [--width 128] [--batch_size 32] [--warmup 5] [--steps 40] [--rounds 2]

The model is NIMA (random weights) with the paper's optimizer recipe
(`nima_optimizers`: momentum SGD, separate learning rates for backbone and
head) and the EMD loss; the Task's dataset is one in-memory batch repeated, so
the input pipeline is not what is measured. The loop
(`nima_enhance.train.loop.train_loop`, one device, default summaries and
logging, no progress line) is timed by running it into fresh model dirs for
W and W + N steps and taking the difference (model build, tracing, the first
W steps and the final checkpoint cancel out). The bare step is one
`tf.function` doing the same forward, loss, gradient and the two optimizers'
updates on the same batch tensors, timed for N steps after W warm-up steps.
The sides are timed alternately, each round, and the best of each is kept
(shared, noisy CPU).

Target (DESIGN.md section 6, issue 8): loop steps/s >= 0.9x bare steps/s.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from nima_enhance import losses  # noqa: E402
from nima_enhance.models import nima as nima_lib  # noqa: E402
from nima_enhance.train import loop  # noqa: E402
from nima_enhance.train import nima_task  # noqa: E402
from nima_enhance.train import task as task_lib  # noqa: E402

TARGET_RATIO = 0.9


class InMemoryNimaTask(task_lib.Task):
  """NIMA with the paper's optimizers and EMD loss on one repeated batch."""

  name = "nima"

  def __init__(self, backbone, pixels, distribution):
    self.backbone = backbone
    self.pixels = pixels
    self.distribution = distribution

  def build_model(self):
    return nima_lib.build_nima(backbone=self.backbone, weights=None,
                               dropout=0.75)

  def build_optimizers(self, model, steps_per_epoch):
    return nima_task.nima_optimizers(model, steps_per_epoch)

  def dataset(self, input_context, batch_size, start_example, seed):
    del input_context, start_example, seed
    return tf.data.Dataset.from_tensors(
        (self.pixels[:batch_size], self.distribution[:batch_size])).repeat()

  def per_example_loss(self, model, batch, training):
    pixels, distribution = batch
    predicted = model(pixels, training=training)
    return losses.emd_loss(distribution, predicted), {}

  def model_spec(self):
    return {"task": "nima", "build_nima": {"backbone": self.backbone}}


def bare_step_fn(task, batch_size):
  """(step function, batch): the loop's step without the loop around it."""
  keras.utils.set_random_seed(0)
  model = task.build_model()
  specs = task.build_optimizers(model, 1)
  for optimizer, variables in specs:
    optimizer.build(list(variables))
  var_lists = [list(v) for _, v in specs]
  all_vars = [v for vs in var_lists for v in vs]

  @tf.function
  def step(pixels, distribution):
    with tf.GradientTape() as tape:
      per_example, _ = task.per_example_loss(model, (pixels, distribution),
                                             training=True)
      loss = tf.nn.compute_average_loss(per_example,
                                        global_batch_size=batch_size)
    grads = tape.gradient(loss, all_vars)
    offset = 0
    for (optimizer, _), variables in zip(specs, var_lists):
      optimizer.apply_gradients(zip(grads[offset:offset + len(variables)],
                                    variables))
      offset += len(variables)
    return loss

  return step


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--backbone", default="small_cnn",
                      help="small_cnn, or mobilenet (e.g. 224x224 batch 8)")
  parser.add_argument("--height", type=int, default=96)
  parser.add_argument("--width", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--steps", type=int, default=40)
  parser.add_argument("--rounds", type=int, default=2)
  args = parser.parse_args()
  logging.set_verbosity(logging.WARNING)

  rng = np.random.default_rng(0)
  pixels = tf.constant(rng.uniform(
      0, 255, (args.batch_size, args.height, args.width, 3)).astype(np.float32))
  distribution = tf.constant(
      rng.dirichlet(np.ones(10), args.batch_size).astype(np.float32))
  task = InMemoryNimaTask(args.backbone, pixels, distribution)
  w, n = args.warmup, args.steps

  def loop_seconds(num_steps):
    with tempfile.TemporaryDirectory(prefix="train_step_bench_") as model_dir:
      start = time.perf_counter()
      loop.train_loop(task, model_dir, num_steps=num_steps,
                      global_batch_size=args.batch_size,
                      checkpoint_every=10 ** 9, progress=False)
      return time.perf_counter() - start

  step = bare_step_fn(task, args.batch_size)

  def bare_seconds():
    for _ in range(w):
      step(pixels, distribution).numpy()
    start = time.perf_counter()
    for _ in range(n):
      loss = step(pixels, distribution)
    loss.numpy()
    return time.perf_counter() - start

  short = long = bare = float("inf")
  for _ in range(args.rounds):
    short = min(short, loop_seconds(w))
    bare = min(bare, bare_seconds())
    long = min(long, loop_seconds(w + n))
  loop_time = long - short
  loop_sps, bare_sps = n / loop_time, n / bare
  ratio = loop_sps / bare_sps
  print(f"NIMA {args.backbone} (random weights) {args.height}x{args.width}, "
        f"batch {args.batch_size}, paper optimizers (2x momentum SGD), EMD "
        f"loss, in-memory batch; {n} timed steps after {w} warm-up steps, "
        f"best of {args.rounds} alternating rounds, {os.cpu_count()} CPUs")
  print(f"{'path':<44} {'seconds':>8} {'steps/s':>8}")
  print(f"{f'train_loop, {w} steps (build, trace, save)':<44} {short:8.2f}")
  print(f"{f'train_loop, {w + n} steps':<44} {long:8.2f}")
  print(f"{f'train_loop, the {n} steps (difference)':<44} {loop_time:8.2f} "
        f"{loop_sps:8.2f}")
  print(f"{f'bare tf.function step, {n} steps':<44} {bare:8.2f} "
        f"{bare_sps:8.2f}")
  verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
  print(f"ratio loop / bare = {ratio:.2f} (target >= {TARGET_RATIO}): "
        f"{verdict}")


if __name__ == "__main__":
  main()
