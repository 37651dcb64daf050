"""CAN enhancer inference benchmark: GFLOP/s versus a plain 3x3 conv, peak memory.

    python tools/benchmarks/can_inference.py [--rounds 3] [--sizes 1200x1600,3000x4000]
        [--ratio_only] [--layer_profile]

The CAN is `build_can()` with the paper's defaults (width 32, ten layers,
dilations 1..256 and a final 1x1; identity initialisation), run the way the
enhance binaries run it: `EnhancerBundle` with its defaults (the band
schedule of `models/can_streaming.py`: normalization folded into the convs,
oneDNN convolutions with fused bias and leaky ReLU, band from the default
memory budget), float32 [h, w, 3] in, clipped numpy out, on one image of 2 MP
and 12 MP. The same bundle serves `enhance`, `enhance-eval` and the exported
SavedModel, so this is the product path. The one-piece pass (`--tile_size
0`: the Keras model in one XLA-compiled `tf.function`) is timed beside it
and gives the one-piece peak memory. The reference is one plain 32->32 3x3
`tf.nn.conv2d` (SAME) on a [1, h, w, 32] tensor of the same size (no XLA;
the same conv under XLA is reported too). All are timed alternately, each
round, and the best time of each is kept (the CPU is shared and noisy).

FLOPs are counted analytically, 2 * h * w * (k * k * cin * cout) per
convolution (padding, normalization, bias and activations not counted).
Targets (docs/architecture.md, "Benchmarks"; issue 8):
  * CAN GFLOP/s (the product path) >= 0.7x the plain conv's GFLOP/s at the
    same resolution (also printed "per layer": plain conv time / (CAN time /
    3x3 layers));
  * a 12 MP image enhanced in one piece within 6 GB peak memory (growth of the
    process's peak resident set during the one-piece pass, on CPU; the
    device's peak on GPU).

`--layer_profile` prints where the CAN's time goes: CPU seconds of each
dilated layer (conv + bias + leaky ReLU on its padded input, with oneDNN as
the band schedule runs it, and under XLA) and of the SymmetricPad2D gather,
against the plain conv (docs/can_streaming.md, "Speed").

Bounded memory (issue 12), `--bounded`:

    python tools/benchmarks/can_inference.py --bounded [--bounded_mp 2,12,24,48]
        [--band_curve 32,64,128,256,512] [--one_piece_max_mp 12] [--end_to_end]

Each row runs in its own subprocess (so its peak resident memory, VmHWM, is
its own): `enhance`'s default bounded-memory band schedule
(`EnhancerBundle`, band from --memory_budget_gb and the short side) at each
size, the one-piece XLA pass (`--tile_size 0`) up to --one_piece_max_mp, and
the band-size curve (time and memory per band size) at 12 MP. Images are
skimage's astronaut photo upscaled to the size (real content, nothing
committed). `--end_to_end` also runs the `enhance` binary on a 24 MP and a 48
MP JPEG and the exported SavedModel's `enhance_image_bytes` on the same JPEG
bytes (peak resident memory of that process, from wait4's rusage).
Targets: 12 MP bands <= 1.3x the one-piece time; 24 and 48 MP under 4 GB peak.

bfloat16, `--precision_compare`: the band schedule in bfloat16 vs float32
at 2 MP (time) and on five real photos (max abs difference, PSNR), and NIMA
restored with `load_nima(precision=...)` (`nima_precision`: MobileNet at
224x224, random weights with a scaled head, on 128 real-photo crops: |mean
score| difference and the time of a batch of 32).

The full run (no flags; what `run_all.py` runs) records, besides the GFLOP/s
rows, the issue-12 figures in its JSON record: `figures.bounded` (the 12 MP
one-piece and default-band rows, `ratio_12mp_wall` / `ratio_12mp_cpu`, and
`end_to_end`: enhance and SavedModel peak RSS at 24 and 48 MP, one row each
with `peak_gb`) and `figures.precision` (`--precision_compare`'s figures),
and puts them in the summary the README's Performance table shows.
"""

import argparse
import os
import json
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from nima_enhance import model_dir as model_dir_lib  # noqa: E402
from nima_enhance.enhance import inference  # noqa: E402
from nima_enhance.models import can  # noqa: E402

TARGET_RATIO = 0.7
TARGET_PEAK_GB = 6.0
TARGET_BOUNDED_TIME_RATIO = 1.3
TARGET_BOUNDED_PEAK_GB = 4.0
# Sizes (h x w) of the bounded-memory rows, by megapixels.
SHAPES = {2: (1200, 1600), 12: (3000, 4000), 24: (4000, 6000),
          48: (6000, 8000)}


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
  """(wall seconds, process CPU seconds) of fn(x), result copied out.

  Starts after a short pause: thread pools spin for a while after their
  work ends (the previous run's would take CPU from this one: the band
  schedule timed right after the XLA pass measured 8% more CPU seconds).
  """
  time.sleep(0.3)
  start, start_cpu = time.perf_counter(), time.process_time()
  out = fn(x)
  if hasattr(out, "numpy"):
    out.numpy()  # waits for the result (and copies it out, as enhance does)
  return time.perf_counter() - start, time.process_time() - start_cpu


def _photo(height, width):
  """skimage's astronaut upscaled to height x width, float32 [0, 1]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  pixels = Image.fromarray(data.astronaut()).resize((width, height),
                                                   Image.BILINEAR)
  return np.asarray(pixels, np.float32) / 255.0


def _child(job):
  """One bounded-memory row in this (fresh) process; prints a JSON line."""
  from nima_enhance.enhance import inference  # pylint: disable=g-import-not-at-top
  from nima_enhance.models import can_streaming  # pylint: disable=g-import-not-at-top
  model = can.build_can()
  bundle = inference.EnhancerBundle(
      model, {}, "", jit_compile=True, tile_size=job["tile"],
      memory_budget_gb=job["budget"], precision=job["precision"])
  bundle(np.zeros((64, 96, 3), np.float32))  # tracing
  height, width = job["shape"]
  image = _photo(height, width)
  rss_before = _status_kb("VmRSS") * 1024
  best = (float("inf"), float("inf"))
  for _ in range(job["rounds"]):
    start, start_cpu = time.perf_counter(), time.process_time()
    bundle(image)
    best = min(best, (time.perf_counter() - start,
                      time.process_time() - start_cpu))
  band = job["tile"]
  if band is None:
    band = int(can_streaming.band_rows_for(min(height, width), job["budget"]))
  print(json.dumps({"wall": best[0], "cpu": best[1], "band": band,
                    "peak": _status_kb("VmHWM") * 1024,
                    "rss_before": rss_before}))


def _run_child(args, job):
  out = subprocess.run([sys.executable, os.path.abspath(__file__),
                        "--child", json.dumps(job)],
                       capture_output=True, text=True, check=False)
  lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
  if out.returncode or not lines:
    return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
  return json.loads(lines[-1])


# Runs argv[1:] and prints its exit code and peak RSS (wait4). A child's
# ru_maxrss counts the memory of the process it was forked from until exec,
# so the command is started from this small, fresh interpreter, never from
# the benchmark's (large) process.
_WAIT4 = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def _peak_of(cmd, env=None):
  """(exit code, wall seconds, peak resident bytes) of a command."""
  start = time.perf_counter()
  out = subprocess.run([sys.executable, "-c", _WAIT4] + list(cmd),
                       capture_output=True, text=True, env=env, check=False)
  code, peak = out.stdout.split()[-2:]
  return int(code), time.perf_counter() - start, int(peak)


_SERVE = """
import sys, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
data = open(sys.argv[2], 'rb').read()
png = loaded.signatures['enhance_image_bytes'](image=tf.constant(data))
assert len(png['image'].numpy()) > 1000
"""


def _end_to_end(mps, budget):
  """enhance binary and SavedModel bytes signature on big JPEGs: peak RSS."""
  from nima_enhance.data import image_write  # pylint: disable=g-import-not-at-top
  from nima_enhance.serving import export  # pylint: disable=g-import-not-at-top
  work = tempfile.mkdtemp(prefix="can_bench_")
  model_dir = os.path.join(work, "can")
  os.makedirs(model_dir)
  model = can.build_can()
  tf.train.Checkpoint(model=model, step=tf.Variable(1, dtype=tf.int64)).save(
      os.path.join(model_dir, "ckpt"))
  with open(os.path.join(model_dir, "model_spec.json"), "w",
            encoding="utf-8") as f:
    json.dump({"task": "enhancer",
               "build_can": model_dir_lib.recorded_arguments(can.build_can),
               "target": "benchmark", "gamma": 0.0}, f)
  saved = export.export_model(model_dir, os.path.join(work, "export"))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  rows = []
  for mp in mps:
    height, width = SHAPES[mp]
    path = os.path.join(work, f"photo_{mp}mp.jpg")
    image_write.write_image(path, _photo(height, width))
    code, wall, peak = _peak_of(
        [sys.executable, "-m", "nima_enhance.bin.enhance", "--model_dir",
         model_dir, "--output_dir", os.path.join(work, "out"), path,
         f"--memory_budget_gb={budget}"], env)
    rows.append((f"enhance binary, {mp} MP JPEG -> PNG", code, wall, peak))
    code, wall, peak = _peak_of([sys.executable, "-c", _SERVE, saved, path],
                                env)
    rows.append((f"SavedModel enhance_image_bytes, {mp} MP", code, wall, peak))
    os.remove(path)
  print("\nEnd to end (whole process: load, decode, CAN, encode, write):")
  records = []
  for name, code, wall, peak in rows:
    verdict = ("PASS" if code == 0 and peak < TARGET_BOUNDED_PEAK_GB * 1e9
               else "MISS")
    print(f"  {name:42s} exit {code}, {wall:6.1f} s, peak RSS "
          f"{peak / 1e9:5.2f} GB (target < {TARGET_BOUNDED_PEAK_GB:.0f} GB): "
          f"{verdict}", flush=True)
    records.append({"name": name, "exit": code, "wall_s": round(wall, 1),
                    "peak_gb": round(peak / 1e9, 3), "verdict": verdict})
  return records


def bounded(args):
  """The bounded-memory rows: one subprocess per row (own peak memory)."""
  mps = [int(v) for v in args.bounded_mp.split(",")]
  model = can.build_can()
  job = dict(budget=args.memory_budget_gb, precision=args.precision,
             rounds=args.rounds)
  print(f"Bounded-memory CAN (build_can() defaults), CPU, "
        f"{os.cpu_count()} cores shared with other jobs, budget "
        f"{args.memory_budget_gb} GB, {args.precision}, best of "
        f"{args.rounds}; one subprocess per row; peak = VmHWM of the whole "
        "process (TF runtime, input and output images included)")
  print(f"{'MP':>3} {'size':>9} {'mode':>15} {'band':>5} {'s':>7} "
        f"{'CPU s':>7} {'GFLOP/s':>8} {'peak GB':>8} {'before GB':>9}")
  results = {}

  def row(mp, mode, tile):
    height, width = SHAPES[mp]
    result = _run_child(args, dict(job, shape=[height, width], tile=tile))
    results[(mp, mode, tile)] = result
    if "error" in result:
      print(f"{mp:>3} {height}x{width} {mode:>15} failed: {result['error']}")
      return
    gflops = can_flops(model, height, width) / result["wall"] / 1e9
    print(f"{mp:>3} {height}x{width:<4} {mode:>15} {result['band']:>5} "
          f"{result['wall']:7.2f} {result['cpu']:7.2f} {gflops:8.1f} "
          f"{result['peak'] / 1e9:8.2f} {result['rss_before'] / 1e9:9.2f}",
          flush=True)

  for mp in mps:
    if mp > args.in_process_max_mp:
      continue  # measured end to end only (--end_to_end)
    if mp <= args.one_piece_max_mp:
      row(mp, "one piece (XLA)", 0)
    row(mp, "bands, default", None)
  for band in ([int(v) for v in args.band_curve.split(",")]
               if args.band_curve else []):
    row(12, "bands, curve", band)
  one = results.get((12, "one piece (XLA)", 0), {})
  default = results.get((12, "bands, default", None), {})
  if "wall" in one and "wall" in default:
    ratio = default["wall"] / one["wall"]
    cpu_ratio = default["cpu"] / one["cpu"]
    verdict = "PASS" if ratio <= TARGET_BOUNDED_TIME_RATIO else "MISS"
    print(f"12 MP bands / one piece: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
          f"s (target <= {TARGET_BOUNDED_TIME_RATIO}): {verdict}")
  for mp in (24, 48):
    result = results.get((mp, "bands, default", None), {})
    if "peak" in result:
      verdict = ("PASS" if result["peak"] < TARGET_BOUNDED_PEAK_GB * 1e9
                 else "MISS")
      print(f"{mp} MP bands peak {result['peak'] / 1e9:.2f} GB (target < "
            f"{TARGET_BOUNDED_PEAK_GB:.0f} GB): {verdict}")
  summary = {"rows": [dict(r, mp=mp, mode=mode) for (mp, mode, _), r
                      in results.items()]}
  if "wall" in one and "wall" in default:
    summary.update(ratio_12mp_wall=ratio, ratio_12mp_cpu=cpu_ratio)
  if args.end_to_end:
    summary["end_to_end"] = _end_to_end(
        [mp for mp in (24, 48) if mp in mps], args.memory_budget_gb)
  return summary


def layer_profile(args):
  """CPU seconds of each 3x3 layer's convolution vs the plain conv.

  Per dilation d of build_can(): conv + bias + leaky ReLU on the input
  padded by d (VALID, as the band schedule runs it: oneDNN, fused by
  grappler), the same under XLA, and the whole-image SymmetricPad2D. Best of
  --rounds, at the first of --sizes.
  """
  from nima_enhance.models.layers import SymmetricPad2D  # pylint: disable=g-import-not-at-top
  height, width = (int(v) for v in args.sizes.split(",")[0].split("x"))
  rng = np.random.default_rng(0)

  def best_cpu(fn, x):
    fn(x).numpy()
    best = float("inf")
    for _ in range(max(2, args.rounds)):
      start = time.process_time()
      fn(x).numpy()
      best = min(best, time.process_time() - start)
    return best

  kernel = tf.constant(rng.normal(0, 0.1, (3, 3, 32, 32)).astype(np.float32))
  bias = tf.constant(rng.normal(0, 0.1, 32).astype(np.float32))
  maps = tf.constant(rng.random((1, height, width, 32), np.float32))
  plain = best_cpu(tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME")),
                   maps)
  print(f"Per-layer CPU seconds at {height}x{width} (32 -> 32 maps; plain "
        f"3x3 conv {plain:.3f} s): conv + bias + leaky ReLU on the padded "
        "input, without and with XLA, and the SymmetricPad2D gather")
  rows = []
  for d in can.paper_dilations():
    padded = tf.constant(rng.random((1, height + 2 * d, width + 2 * d, 32),
                                    np.float32))
    layer = lambda x, d=d: tf.nn.leaky_relu(tf.nn.bias_add(
        tf.nn.conv2d(x, kernel, 1, "VALID", dilations=d), bias), 0.2)
    onednn = best_cpu(tf.function(layer), padded)
    xla = best_cpu(tf.function(layer, jit_compile=True), padded)
    pad = best_cpu(tf.function(lambda x, d=d: SymmetricPad2D(d)(x)), maps)
    del padded
    rows.append({"dilation": d, "onednn_cpu_s": onednn, "xla_cpu_s": xla,
                 "pad_cpu_s": pad})
    print(f"  d={d:3d}: oneDNN {onednn:.3f} s ({onednn / plain:.2f}x plain), "
          f"XLA {xla:.3f} s ({xla / plain:.2f}x), pad {pad:.3f} s",
          flush=True)
  return {"plain_cpu_s": plain, "layers": rows}


def _mixing_can():
  """build_can() with weights far from the identity (no trained CAN here)."""
  model = can.build_can(init_noise=0.02, seed=1)
  rng = np.random.default_rng(1)
  for layer in model.layers:
    norm = getattr(layer, "batch_norm", None)
    if norm is not None:
      c = int(norm.moving_mean.shape[0])
      norm.moving_mean.assign(rng.normal(0, 0.05, c).astype(np.float32))
      norm.moving_variance.assign(rng.uniform(0.8, 1.2, c).astype(np.float32))
      layer.mu.assign(0.3)
  return model


def precision_compare(args):
  """bfloat16 vs float32 band schedule: time at 2 MP, error on real photos."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  from nima_enhance.models import can_streaming  # pylint: disable=g-import-not-at-top
  model = _mixing_can()
  runs = {p: can_streaming.StreamingEnhancer(
      model, memory_budget_gb=args.memory_budget_gb, precision=p)
          for p in can_streaming.PRECISIONS}
  image = _photo(*SHAPES[2])
  best = {p: (float("inf"), float("inf")) for p in runs}
  for p, run in runs.items():
    run(image[:64, :96])  # tracing
  for _ in range(args.rounds):
    for p, run in runs.items():
      start, cpu = time.perf_counter(), time.process_time()
      run(image)
      best[p] = min(best[p], (time.perf_counter() - start,
                              time.process_time() - cpu))
  print("bfloat16 vs float32 (band schedule, default band, "
        f"{SHAPES[2][0]}x{SHAPES[2][1]}, best of {args.rounds}):")
  for p, (wall, cpu) in best.items():
    print(f"  {p:9s} {wall:6.2f} s wall, {cpu:6.2f} CPU s")
  print(f"  speed-up bfloat16: {best['float32'][0] / best['bfloat16'][0]:.2f}x"
        f" wall, {best['float32'][1] / best['bfloat16'][1]:.2f}x CPU s")
  worst = 0.0
  for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
    photo = np.asarray(getattr(data, name)(), np.float32)[..., :3] / 255.0
    f32, bf16 = runs["float32"](photo), runs["bfloat16"](photo)
    diff = np.abs(bf16.astype(np.float64) - f32)
    mse = float(np.mean(diff ** 2))
    psnr = 10 * np.log10(1.0 / mse) if mse else float("inf")
    change = float(np.abs(f32 - photo).mean())
    worst = max(worst, float(diff.max()))
    print(f"  {name:22s} {photo.shape[0]}x{photo.shape[1]}: max |bf16 - f32| "
          f"{diff.max():.4f} ({diff.max() * 255:.2f}/255), mean "
          f"{diff.mean():.5f}, PSNR {psnr:.1f} dB (CAN changes the photo by "
          f"{change:.3f} on average)")
  verdict = "within" if worst <= 1 / 255 else "NOT within"
  print(f"  worst max abs {worst:.4f}: {verdict} 1/255 of float32")
  result = {"can_mp": SHAPES[2][0] * SHAPES[2][1] / 1e6,
            "can_f32_wall": best["float32"][0],
            "can_bf16_wall": best["bfloat16"][0],
            "can_f32_cpu": best["float32"][1],
            "can_bf16_cpu": best["bfloat16"][1],
            "can_speedup_wall": best["float32"][0] / best["bfloat16"][0],
            "can_speedup_cpu": best["float32"][1] / best["bfloat16"][1],
            "can_worst_max_abs": worst}
  result.update(nima_precision(args.rounds))
  return result


def nima_precision(rounds, crops_per_photo=16):
  """NIMA (MobileNet, 224x224 input) restored with --precision float32 and
  bfloat16 (`load_nima`): |mean score| difference on real-photo crops, and
  the time of a batch of 32.

  No trained NIMA can be downloaded here: the model is build_nima's MobileNet
  with random weights (weights=None; the head scaled so the scores spread),
  saved and restored as nima-score restores a model dir, so the difference
  shows bfloat16's rounding through this network, not a trained model's
  exact figure.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  from nima_enhance import metrics  # pylint: disable=g-import-not-at-top
  from nima_enhance.models import nima  # pylint: disable=g-import-not-at-top
  work = tempfile.mkdtemp(prefix="nima_precision_")
  keras.utils.set_random_seed(0)
  preprocessing = {"mode": "paper", "image_size": [224, 224],
                   "resize_size": 256, "random_flip": False}
  rng = np.random.default_rng(0)
  pixels = []
  for name in ("astronaut", "coffee", "chelsea", "rocket",
               "immunohistochemistry", "hubble_deep_field", "cat",
               "retina"):
    photo = np.asarray(getattr(data, name)(), np.float32)[..., :3] / 255.0
    for _ in range(crops_per_photo):
      y = rng.integers(0, photo.shape[0] - 224 + 1)
      x = rng.integers(0, photo.shape[1] - 224 + 1)
      # Already the network's input size: the crop itself, in [0, 255].
      pixels.append(photo[y:y + 224, x:x + 224] * 255.0)
  pixels = tf.constant(np.stack(pixels))
  model = nima.build_nima("mobilenet", weights=None)
  # A random head on random features gives ~equal logits (every mean score
  # 5.50): scale it so the logits spread (std ~2) and the scores vary from
  # crop to crop, as a trained model's do.
  features = keras.Model(model.input, model.get_layer("head_dropout").output)(
      pixels, training=False).numpy()
  head = model.get_layer(nima.HEAD_NAME)
  kernel = rng.normal(0.0, 1.0, head.kernel.shape) / (
      features.std(axis=0).mean() * np.sqrt(features.shape[1])) * 2.0
  head.kernel.assign(kernel.astype(np.float32))
  tf.train.Checkpoint(model=model, step=tf.Variable(1, dtype=tf.int64)).save(
      os.path.join(work, "ckpt"))
  with open(os.path.join(work, "model_spec.json"), "w",
            encoding="utf-8") as f:
    json.dump({"task": "nima", "preprocessing": preprocessing,
               "build_nima": {"backbone": "mobilenet"}}, f)
  bundles = {p: nima.load_nima(work, precision=p) for p in nima.PRECISIONS}
  means = {p: metrics.mean_score(b.predict(pixels)).numpy()
           for p, b in bundles.items()}
  diff = np.abs(means["bfloat16"] - means["float32"])
  batch = pixels[:32]
  best = {p: float("inf") for p in bundles}
  for _ in range(max(2, rounds)):
    for p, b in bundles.items():
      start = time.perf_counter()
      b.predict(batch).numpy()
      best[p] = min(best[p], time.perf_counter() - start)
  print(f"NIMA (MobileNet 224x224, random weights) bfloat16 vs float32 on "
        f"{len(pixels)} real-photo crops: max |mean score difference| "
        f"{diff.max():.4f}, mean {diff.mean():.4f} (float32 means "
        f"{means['float32'].min():.2f}..{means['float32'].max():.2f}); batch "
        f"of 32: {best['float32']:.3f} s float32, {best['bfloat16']:.3f} s "
        f"bfloat16 ({best['float32'] / best['bfloat16']:.2f}x)", flush=True)
  return {"nima_crops": int(len(pixels)),
          "nima_max_abs_mean_diff": float(diff.max()),
          "nima_mean_abs_mean_diff": float(diff.mean()),
          "nima_f32_batch32_s": best["float32"],
          "nima_bf16_batch32_s": best["bfloat16"],
          "nima_speedup": best["float32"] / best["bfloat16"]}


def main():
  if len(sys.argv) == 3 and sys.argv[1] == "--child":
    _child(json.loads(sys.argv[2]))
    return
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="1200x1600,3000x4000",
                      help="HxW sizes, comma-separated")
  parser.add_argument("--rounds", type=int, default=3,
                      help="alternating CAN / plain conv rounds per size")
  parser.add_argument("--jit_compile", default=True,
                      action=argparse.BooleanOptionalAction,
                      help="XLA-compile the CAN as enhance does by default")
  parser.add_argument("--bounded", action="store_true",
                      help="the bounded-memory rows (see module docstring)")
  parser.add_argument("--bounded_mp", default="2,12,24,48")
  parser.add_argument("--band_curve", default="",
                      help="band sizes timed at 12 MP, e.g. 64,128,256,512")
  parser.add_argument("--one_piece_max_mp", type=int, default=12)
  parser.add_argument("--in_process_max_mp", type=int, default=48,
                      help="--bounded: sizes above this only end to end")
  parser.add_argument("--memory_budget_gb", type=float, default=1.5)
  parser.add_argument("--precision", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--end_to_end", action="store_true")
  parser.add_argument("--ratio_only", action="store_true",
                      help="the GFLOP/s rows at --sizes only (no issue-12 "
                           "figures; for iterating on the CAN's speed)")
  parser.add_argument("--layer_profile", action="store_true",
                      help="CPU seconds per 3x3 layer (oneDNN vs XLA, pad) "
                           "at the first of --sizes")
  parser.add_argument("--precision_compare", action="store_true",
                      help="bfloat16 vs float32: speed and error on photos")
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  record.add_flags(parser)
  args = parser.parse_args()
  if args.quick:  # a smoke pass: one small size, the ratio rows only
    args.sizes, args.rounds = "240x320", 2
    args.bounded = args.precision_compare = args.layer_profile = False
  if args.precision_compare:
    precision_compare(args)
    return
  if args.layer_profile:
    layer_profile(args)
    return
  if args.bounded:
    bounded(args)
    return
  sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

  model = can.build_can()
  three_by_three = [l for l in can.conv_layers(model)
                    if tuple(l.kernel.shape[:2]) == (3, 3)]
  n3 = len(three_by_three)
  # The product path: what enhance, enhance-eval and the SavedModel run by
  # default (the folded band schedule). The one-piece pass (--tile_size 0,
  # XLA-compiled unless --nojit_compile) for its peak memory and as a
  # reference.
  product = inference.EnhancerBundle(model, {}, "")
  one_piece = inference.EnhancerBundle(model, {}, "", tile_size=0,
                                       jit_compile=args.jit_compile)
  kernel = tf.random.normal([3, 3, 32, 32], stddev=0.1, seed=0)
  plain = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"),
                      input_signature=[tf.TensorSpec([1, None, None, 32],
                                                     tf.float32)])
  # The same conv XLA-compiled: with --jit_compile the CAN runs under XLA and
  # the plain conv does not, so the ratio against this one is reported too
  # (a ratio across compile modes says so).
  plain_xla = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"),
                          input_signature=[tf.TensorSpec([1, None, None, 32],
                                                         tf.float32)],
                          jit_compile=True)
  rng = np.random.default_rng(0)
  # Warm-up (tracing, oneDNN primitives) on a small image.
  warm = rng.random((64, 96, 3)).astype(np.float32)
  product(warm)
  one_piece(warm)
  plain(tf.constant(rng.random((1, 64, 96, 32), np.float32))).numpy()

  threads = (tf.config.threading.get_intra_op_parallelism_threads()
             or os.cpu_count())
  dilations = [int(l.dilation_rate[0]) for l in three_by_three]
  print(f"CAN: build_can() defaults, {len(can.conv_layers(model))} convs "
        f"({n3} 3x3, dilations {dilations} + 1x1), enhance's default path "
        f"(folded band schedule); one piece with XLA "
        f"{'on' if args.jit_compile else 'off'}; batch 1, float32, "
        f"{threads} threads, device "
        f"{'GPU' if tf.config.list_logical_devices('GPU') else 'CPU'}")
  rows = []
  # Largest size first, so its one-piece peak is measured before smaller
  # sizes (and the band schedule) have grown the allocator's pool; the rows
  # are listed in --sizes order.
  for height, width in sorted(sizes, key=lambda hw: -hw[0] * hw[1]):
    mp = height * width / 1e6
    image = tf.constant(rng.random((height, width, 3), np.float32))
    maps = tf.constant(rng.random((1, height, width, 32), np.float32))
    flops = can_flops(model, height, width)
    plain_flops = 2 * height * width * 9 * 32 * 32
    # Warm-up at this size: the plain conv only. The CAN's first round counts
    # toward peak memory (with XLA it also compiles for this size; best-of
    # rounds keep the steady-state time).
    plain(maps).numpy()
    plain_xla(maps).numpy()
    best_xla = best_one = (float("inf"), float("inf"))
    best_can = best_plain = (float("inf"), float("inf"))
    peak = bands_peak = 0
    for _ in range(args.rounds):
      with PeakMemory() as memory:
        best_one = np.minimum(best_one, _run(one_piece, image))
      peak = max(peak, memory.peak)
      with PeakMemory() as memory:
        best_can = np.minimum(best_can, _run(product, image))
      bands_peak = max(bands_peak, memory.peak)
      best_plain = np.minimum(best_plain, _run(plain, maps))
      best_xla = np.minimum(best_xla, _run(plain_xla, maps))
    (best_can, can_cpu), (best_plain, plain_cpu) = best_can, best_plain
    one_s, one_cpu = (float(v) for v in best_one)
    del image, maps
    can_gflops = flops / best_can / 1e9
    plain_gflops = plain_flops / best_plain / 1e9
    rows.append(dict(size=f"{height}x{width}", mp=mp, flops=flops,
                     can_s=best_can, plain_s=best_plain,
                     can_gflops=can_gflops, plain_gflops=plain_gflops,
                     ratio=can_gflops / plain_gflops,
                     per_layer=best_plain / (best_can / n3),
                     cpu_ratio=(flops / can_cpu) / (plain_flops / plain_cpu),
                     peak=peak, method=memory.method,
                     can_cpu_s=float(can_cpu), plain_cpu_s=float(plain_cpu),
                     one_piece_cpu_s=one_cpu,
                     bands_peak=bands_peak, one_piece_s=one_s,
                     one_piece_gflops=flops / one_s / 1e9,
                     one_piece_ratio=flops / one_s / 1e9 / plain_gflops,
                     one_piece_cpu_ratio=((flops / one_cpu)
                                          / (plain_flops / plain_cpu)),
                     plain_xla_s=float(best_xla[0]),
                     plain_xla_gflops=plain_flops / best_xla[0] / 1e9,
                     ratio_vs_xla_conv=can_gflops / (plain_flops / best_xla[0]
                                                     / 1e9)))
    print(f"  {height}x{width} ({mp:.1f} MP): CAN {flops / 1e9:.1f} GFLOP in "
          f"{best_can:.2f} s (one piece {one_s:.2f} s), plain conv "
          f"{plain_flops / 1e9:.1f} GFLOP in {best_plain:.3f} s, peak memory "
          f"+{bands_peak / 2**30:.2f} GiB (one piece +{peak / 2**30:.2f} GiB)",
          flush=True)

  rows.sort(key=lambda r: sizes.index(tuple(int(v) for v in
                                            r["size"].split("x"))))
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
  one_mode = "XLA" if args.jit_compile else "no XLA"
  for r in rows:
    print(f"{r['size']}: plain conv under XLA {r['plain_xla_gflops']:.1f} "
          f"GFLOP/s; CAN / XLA plain conv = {r['ratio_vs_xla_conv']:.2f}; "
          f"one piece ({one_mode}) {r['one_piece_gflops']:.1f} GFLOP/s, "
          f"ratio {r['one_piece_ratio']:.2f} (CPU-time ratio "
          f"{r['one_piece_cpu_ratio']:.2f})")
  figures = {"rows": [{k: (float(v) if isinstance(v, (np.floating,
                                                      np.integer))
                         else v) for k, v in r.items()} for r in rows]}
  issue12, issue12_ok = "", True
  if not (args.quick or args.ratio_only):
    # The full run (run_all.py) also records the issue-12 figures: 12 MP
    # bands vs one piece, enhance and the SavedModel bytes signature end to
    # end at 24 and 48 MP (peak RSS), bfloat16 vs float32 (CAN and NIMA).
    print()
    args.bounded_mp, args.in_process_max_mp = "12,24,48", 12
    args.end_to_end, args.band_curve, args.rounds = True, "", 1
    figures["bounded"] = bounded(args)
    print()
    figures["precision"] = precision_compare(args)
    issue12, issue12_ok = _issue12_summary(figures)
  first = rows[0]
  record.write_record(
      args, "can_inference", figures,
      target=f"CAN / plain conv GFLOP/s >= {TARGET_RATIO}, peak <= "
             f"{TARGET_PEAK_GB:.0f} GB in one piece"
             + ("" if args.quick or args.ratio_only else
                f"; 12 MP bands <= {TARGET_BOUNDED_TIME_RATIO}x one piece; "
                f"24/48 MP enhance and SavedModel < "
                f"{TARGET_BOUNDED_PEAK_GB:.0f} GB peak"),
      verdict=("PASS" if all(r["ratio"] >= TARGET_RATIO for r in rows)
               and big["peak"] <= TARGET_PEAK_GB * 1e9 and issue12_ok
               else "MISS"),
      summary=(f"{first['size']}: CAN (enhance's default band schedule) "
               f"{first['can_gflops']:.1f} GFLOP/s vs plain 3x3 conv (no "
               f"XLA) {first['plain_gflops']:.1f}: ratio "
               f"{first['ratio']:.2f} (CPU-time ratio "
               f"{first['cpu_ratio']:.2f}); vs plain conv under XLA "
               f"{first['plain_xla_gflops']:.1f}: ratio "
               f"{first['ratio_vs_xla_conv']:.2f}; one piece ({one_mode}) "
               f"{first['one_piece_gflops']:.1f} GFLOP/s (ratio "
               f"{first['one_piece_ratio']:.2f}); one-piece peak memory at "
               f"{big['size']} {big['peak'] / 1e9:.2f} GB" + issue12))


def _issue12_summary(figures):
  """(summary text, targets met) of the full run's issue-12 figures."""
  bounded_figs, precision = figures["bounded"], figures["precision"]
  ok = True
  text = ""
  if "ratio_12mp_wall" in bounded_figs:
    ratio = bounded_figs["ratio_12mp_wall"]
    ok &= ratio <= TARGET_BOUNDED_TIME_RATIO
    text += (f"; 12 MP bands / one piece {ratio:.2f}x wall "
             f"({bounded_figs['ratio_12mp_cpu']:.2f}x CPU s)")
  else:
    ok = False
  peaks = []
  for row in bounded_figs.get("end_to_end", []):
    ok &= row["verdict"] == "PASS"
    kind = "enhance" if row["name"].startswith("enhance") else "SavedModel"
    peaks.append(f"{kind} {row['name'].split(',')[1].split()[0]} MP "
                 f"{row['peak_gb']:.2f} GB")
  if peaks:
    text += "; peak RSS " + ", ".join(peaks)
  text += (f"; bfloat16: CAN {precision['can_speedup_cpu']:.2f}x CPU s, worst "
           f"pixel {precision['can_worst_max_abs'] * 255:.1f}/255; NIMA "
           f"{precision['nima_speedup']:.2f}x, max |mean score diff| "
           f"{precision['nima_max_abs_mean_diff']:.3f}")
  return text, ok


if __name__ == "__main__":
  main()
