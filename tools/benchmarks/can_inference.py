"""CAN enhancer inference benchmark: GFLOP/s versus a plain 3x3 conv, peak memory.

    python tools/benchmarks/can_inference.py [--rounds 2] [--sizes 1200x1600,3000x4000]

The CAN is `build_can()` with the paper's defaults (width 32, ten layers,
dilations 1..256 and a final 1x1; identity initialisation), run the way the
enhance binaries run it (`EnhancerBundle`: one `tf.function` over
`model(x, training=False)` with a dynamic [1, h, w, 3] signature), on one
image (batch 1) of 2 MP and 12 MP. The reference is one plain 32->32 3x3
`tf.nn.conv2d` (SAME) on a [1, h, w, 32] tensor of the same size, timed in the
same run: the two are timed alternately, each round, and the best time of each
is kept (the CPU is shared and noisy).

FLOPs are counted analytically, 2 * h * w * (k * k * cin * cout) per
convolution (padding, normalization, bias and activations not counted).
Targets (DESIGN.md section 6, issue 8):
  * CAN GFLOP/s >= 0.7x the plain conv's GFLOP/s at the same resolution
    (also printed "per layer": plain conv time / (CAN time / 3x3 layers));
  * a 12 MP image enhanced in one piece within 6 GB peak memory (growth of the
    process's peak resident set during the forward pass, on CPU; the device's
    peak on GPU).
"""

import argparse
import os
import re
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from nima_enhance.models import can  # noqa: E402

TARGET_RATIO = 0.7
TARGET_PEAK_GB = 6.0


def _status_kb(field):
  with open("/proc/self/status", "r", encoding="ascii") as f:
    match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
  return int(match.group(1)) if match else None


class PeakMemory:
  """Peak memory growth (bytes) of the code run inside the `with` block.

  GPU: tf.config.experimental peak memory info. CPU: the process's VmHWM,
  reset first through /proc/self/clear_refs (exact), or else a thread sampling
  VmRSS every millisecond.
  """

  def __init__(self):
    gpus = tf.config.list_logical_devices("GPU")
    self.gpu = gpus[0].name if gpus else None
    self.peak = 0
    self._stop = None

  def __enter__(self):
    if self.gpu:
      tf.config.experimental.reset_memory_stats(self.gpu)
      self._base = tf.config.experimental.get_memory_info(self.gpu)["current"]
      return self
    self._base = _status_kb("VmRSS") * 1024
    self._hwm = False
    try:
      with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
      self._hwm = _status_kb("VmHWM") is not None
    except OSError:
      pass
    if not self._hwm:
      self._sampled = self._base
      self._stop = threading.Event()

      def sample():
        while not self._stop.is_set():
          self._sampled = max(self._sampled, _status_kb("VmRSS") * 1024)
          time.sleep(0.001)

      self._thread = threading.Thread(target=sample, daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *exc):
    if self.gpu:
      peak = tf.config.experimental.get_memory_info(self.gpu)["peak"]
    elif self._hwm:
      peak = _status_kb("VmHWM") * 1024
    else:
      self._stop.set()
      self._thread.join()
      peak = self._sampled
    self.peak = max(0, peak - self._base)
    return False

  @property
  def method(self):
    if self.gpu:
      return "GPU peak memory"
    return "VmHWM reset" if self._hwm else "VmRSS sampling"


def can_flops(model, height, width):
  """2 * h * w * k * k * cin * cout summed over the CAN's convolutions."""
  total = 0
  for layer in can.conv_layers(model):
    kh, kw, cin, cout = (int(s) for s in layer.kernel.shape)
    total += 2 * height * width * kh * kw * cin * cout
  return total


def _run(fn, x):
  """(wall seconds, process CPU seconds) of fn(x), result copied out."""
  start, start_cpu = time.perf_counter(), time.process_time()
  fn(x).numpy()  # waits for the result (and copies it out, as enhance does)
  return time.perf_counter() - start, time.process_time() - start_cpu


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="1200x1600,3000x4000",
                      help="HxW sizes, comma-separated")
  parser.add_argument("--rounds", type=int, default=2,
                      help="alternating CAN / plain conv rounds per size")
  parser.add_argument("--jit_compile", default=True,
                      action=argparse.BooleanOptionalAction,
                      help="XLA-compile the CAN as enhance does by default")
  args = parser.parse_args()
  sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

  model = can.build_can()
  three_by_three = [l for l in can.conv_layers(model)
                    if tuple(l.kernel.shape[:2]) == (3, 3)]
  n3 = len(three_by_three)
  # The enhance path (nima_enhance.enhancement.EnhancerBundle: XLA-compiled
  # by default, `enhance --nojit_compile` for plain graph mode), unclipped.
  enhance = tf.function(lambda x: model(x, training=False),
                        input_signature=[tf.TensorSpec([1, None, None, 3],
                                                       tf.float32)],
                        jit_compile=args.jit_compile)
  kernel = tf.random.normal([3, 3, 32, 32], stddev=0.1, seed=0)
  plain = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"),
                      input_signature=[tf.TensorSpec([1, None, None, 32],
                                                     tf.float32)])
  rng = np.random.default_rng(0)
  # Warm-up (tracing, oneDNN primitives) on a small image.
  enhance(tf.constant(rng.random((1, 64, 96, 3), np.float32))).numpy()
  plain(tf.constant(rng.random((1, 64, 96, 32), np.float32))).numpy()

  print(f"CAN: build_can() defaults, {len(can.conv_layers(model))} convs "
        f"({n3} 3x3, dilations {[int(l.dilation_rate[0]) for l in three_by_three]}"
        f" + 1x1), XLA {'on' if args.jit_compile else 'off'}, batch 1, float32, {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads, "
        f"device {'GPU' if tf.config.list_logical_devices('GPU') else 'CPU'}")
  rows = []
  for height, width in sizes:
    mp = height * width / 1e6
    image = tf.constant(rng.random((1, height, width, 3), np.float32))
    maps = tf.constant(rng.random((1, height, width, 32), np.float32))
    flops = can_flops(model, height, width)
    plain_flops = 2 * height * width * 9 * 32 * 32
    # Warm-up at this size: the plain conv only. The CAN's first round counts
    # toward peak memory (with XLA it also compiles for this size; best-of
    # rounds keep the steady-state time).
    plain(maps).numpy()
    best_can = best_plain = (float("inf"), float("inf"))
    peak = 0
    for _ in range(args.rounds):
      with PeakMemory() as memory:
        best_can = np.minimum(best_can, _run(enhance, image))
      peak = max(peak, memory.peak)
      best_plain = np.minimum(best_plain, _run(plain, maps))
    (best_can, can_cpu), (best_plain, plain_cpu) = best_can, best_plain
    del image, maps
    can_gflops = flops / best_can / 1e9
    plain_gflops = plain_flops / best_plain / 1e9
    rows.append(dict(size=f"{height}x{width}", mp=mp, flops=flops,
                     can_s=best_can, plain_s=best_plain,
                     can_gflops=can_gflops, plain_gflops=plain_gflops,
                     ratio=can_gflops / plain_gflops,
                     per_layer=best_plain / (best_can / n3),
                     cpu_ratio=(flops / can_cpu) / (plain_flops / plain_cpu),
                     peak=peak, method=memory.method))
    print(f"  {height}x{width} ({mp:.1f} MP): CAN {flops / 1e9:.1f} GFLOP in "
          f"{best_can:.2f} s, plain conv {plain_flops / 1e9:.1f} GFLOP in "
          f"{best_plain:.3f} s, CAN peak memory +{peak / 2**30:.2f} GiB",
          flush=True)

  print()
  print(f"{'size':>10} {'MP':>5} {'GFLOP':>7} {'CAN s':>7} {'CAN GF/s':>9} "
        f"{'conv s':>7} {'conv GF/s':>9} {'ratio':>6} {'per-layer':>9} "
        f"{'peak GiB':>8} {'CPU-s ratio':>11}  verdict (target ratio >= "
        f"{TARGET_RATIO})")
  for r in rows:
    verdict = "PASS" if r["ratio"] >= TARGET_RATIO else "MISS"
    print(f"{r['size']:>10} {r['mp']:5.1f} {r['flops'] / 1e9:7.1f} "
          f"{r['can_s']:7.2f} {r['can_gflops']:9.1f} {r['plain_s']:7.3f} "
          f"{r['plain_gflops']:9.1f} {r['ratio']:6.2f} {r['per_layer']:9.2f} "
          f"{r['peak'] / 2**30:8.2f} {r['cpu_ratio']:11.2f}  {verdict}")
  big = max(rows, key=lambda r: r["mp"])
  verdict = "PASS" if big["peak"] <= TARGET_PEAK_GB * 1e9 else "MISS"
  print(f"peak memory at {big['size']} ({big['mp']:.1f} MP, one piece): "
        f"{big['peak'] / 1e9:.2f} GB ({big['method']}), target <= "
        f"{TARGET_PEAK_GB:.0f} GB: {verdict}")
  print("ratio = CAN GFLOP/s / plain conv GFLOP/s (wall time, best of "
        f"{args.rounds}); per-layer = plain conv time / (CAN time / {n3} 3x3 "
        "layers); CPU-s ratio = the GFLOP/s ratio in process CPU seconds, "
        "robust to other processes' load on a shared CPU")


if __name__ == "__main__":
  main()
