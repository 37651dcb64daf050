"""Training-loop overhead: `train_loop` time per step versus a bare step.

    python tools/benchmarks/train_step.py [--backbone small_cnn] [--height 96]
        [--width 128] [--batch_size 32] [--segment 25] [--rounds 6]
        [--quick] [--json_out record.json]

The model is NIMA (random weights) with the paper's optimizer recipe
(`nima_optimizers`: momentum SGD, separate learning rates for backbone and
head) and the EMD loss; the Task's dataset is one in-memory batch repeated, so
the input pipeline is not what is measured. The bare step is one
`tf.function` doing the same forward, loss, gradient and the two optimizers'
updates on the same batch tensors.

Method: one `train_loop` run (one device, summaries and logging every
`--segment` steps, no progress line) with its progress display replaced by a
timer. Each time the loop logs, the timer closes a loop segment of `--segment`
steps, runs `--segment` bare steps and times them, and opens the next loop
segment. So both sides are timed in one process on the same data, alternating,
and the loop's figure is its own steps, not a difference of two whole runs.
The first segment (tracing), the first pair (settling) and the last
segment (end-of-run checkpoint) are dropped.
The loop does everything the bare step does plus its bookkeeping, so loop
time / bare time is >= 1 up to timing noise; the median of the per-pair
ratios is printed beside the total's ratio.

Target (docs/architecture.md, "Benchmarks"; issue 8, as a time ratio): loop time / bare
time <= 1.1 (i.e. loop steps/s >= ~0.9x bare).
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
import record  # noqa: E402  (tools/benchmarks/record.py, beside this script)

TARGET_RATIO = 1.1


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
  parser.add_argument("--segment", type=int, default=25,
                      help="steps per timed segment (= the loop's log_every)")
  parser.add_argument("--rounds", type=int, default=6,
                      help="timed segment pairs (loop, bare), alternating")
  record.add_flags(parser)
  args = parser.parse_args()
  if args.quick:
    args.height, args.width, args.batch_size = 48, 64, 8
    args.segment, args.rounds = 5, 5
  logging.set_verbosity(logging.WARNING)

  rng = np.random.default_rng(0)
  pixels = tf.constant(rng.uniform(
      0, 255, (args.batch_size, args.height, args.width, 3)).astype(np.float32))
  distribution = tf.constant(
      rng.dirichlet(np.ones(10), args.batch_size).astype(np.float32))
  task = InMemoryNimaTask(args.backbone, pixels, distribution)
  n = args.segment
  step = bare_step_fn(task, args.batch_size)
  for _ in range(3):  # trace (and settle) before any timing
    step(pixels, distribution).numpy()

  def bare_segment():
    start = time.perf_counter()
    for _ in range(n):
      loss = step(pixels, distribution)
    loss.numpy()
    return time.perf_counter() - start

  loop_times, bare_times = [], []

  class SegmentTimer(loop.Progress):
    """The loop's progress display, used as a hook every `n` loop steps.

    At each log step (after the loop's own loss fetch and summary writes) it
    closes the loop segment, then runs and times `n` bare steps, then opens
    the next loop segment: the two sides alternate in one process on the
    same batch, and the bare steps' time is never inside a loop segment.
    """

    mark = None

    def update(self, step_number, loss, extra=""):
      now = time.perf_counter()
      if self.mark is not None:  # the first segment holds tracing: dropped
        loop_times.append(now - self.mark)
        bare_times.append(bare_segment())
      SegmentTimer.mark = time.perf_counter()
      return super().update(step_number, loss, extra)

  original = loop.Progress
  loop.Progress = SegmentTimer
  try:
    with tempfile.TemporaryDirectory(prefix="train_step_bench_") as model_dir:
      loop.train_loop(task, model_dir, num_steps=n * (args.rounds + 3),
                      global_batch_size=args.batch_size, log_every=n,
                      checkpoint_every=10 ** 9, progress=False)
  finally:
    loop.Progress = original
  # The first pair settles both sides (thread pools, allocator: its bare
  # segment ran ~3x slow in trials); the final loop segment also holds the
  # end-of-run checkpoint save (inside the loop, but once per run, not per
  # step). Both pairs are excluded.
  loop_times, bare_times = loop_times[1:-1], bare_times[1:-1]
  if not loop_times:
    # The timer rides on train_loop building `loop.Progress`; if the loop
    # stops doing so the method is void: fail loudly, never report 0 steps.
    raise SystemExit("train_step.py: the loop never called the segment timer "
                     "(nima_enhance.train.loop.Progress no longer used?)")
  print("per pair (loop, bare) s:", [(round(l, 3), round(b, 3)) for l, b in zip(loop_times, bare_times)])
  loop_total, bare_total = sum(loop_times), sum(bare_times)
  steps = n * len(loop_times)
  ratio = loop_total / bare_total
  pair_ratios = sorted(l / b for l, b in zip(loop_times, bare_times))
  median_pair = pair_ratios[len(pair_ratios) // 2]
  print(f"NIMA {args.backbone} (random weights) {args.height}x{args.width}, "
        f"batch {args.batch_size}, paper optimizers (2x momentum SGD), EMD "
        f"loss, in-memory batch; {len(loop_times)} alternating pairs of "
        f"{n}-step segments in one process, {os.cpu_count()} CPUs")
  print(f"{'path':<40} {'seconds':>8} {'ms/step':>8}")
  print(f"{'train_loop (log_every = segment)':<40} {loop_total:8.2f} "
        f"{1000 * loop_total / steps:8.1f}")
  print(f"{'bare tf.function step':<40} {bare_total:8.2f} "
        f"{1000 * bare_total / steps:8.1f}")
  verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
  print(f"time ratio loop / bare = {ratio:.3f} (median of pairs "
        f"{median_pair:.3f}; target <= {TARGET_RATIO}): {verdict}")
  record.write_record(
      args, "train_step",
      figures={"loop_ms_per_step": 1000 * loop_total / steps,
               "bare_ms_per_step": 1000 * bare_total / steps,
               "time_ratio": ratio, "median_pair_ratio": median_pair,
               "timed_steps_per_side": steps},
      target=f"loop time / bare time <= {TARGET_RATIO}",
      verdict=verdict,
      summary=(f"`train_loop` {1000 * loop_total / steps:.1f} ms/step vs bare "
               f"`tf.function` step {1000 * bare_total / steps:.1f} ms/step "
               f"({args.backbone} {args.height}x{args.width}, batch "
               f"{args.batch_size}, {steps} steps each side, alternating): "
               f"time ratio {ratio:.3f}"))


if __name__ == "__main__":
  main()
