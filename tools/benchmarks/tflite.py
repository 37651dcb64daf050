"""TFLite scorer files: size, latency per image and agreement with the checkpoint.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tools/benchmarks/tflite.py
        [--backbones small_cnn,mobilenet] [--rounds 30] [--small_steps 300]
        [--mobilenet_size 96x128] [--mobilenet_steps 300]
        [--quantizations none,float16,int8]
        [--json out.json]

For each backbone and each --quantize (none, float16, int8) this runs
`nima-export --format tflite` (the library call behind it) and measures, in
one run, side by side:

* file size (and its ratio to the float file);
* latency per image of the interpreter on preprocessed pixels at 1 and 2
  threads (best of --rounds after one warm-up), beside the checkpoint's own
  Keras model on the same pixels (batch 1, TensorFlow's default threads);
* agreement with the checkpoint on held-out images (the synthetic AVA test
  split, never in the int8 calibration sample): max |mean difference| and the
  SRCC of the means, both scored through `scoring.score_files` (the exact
  nima-score path for --model_dir and --tflite).

Models (ImageNet weights cannot be downloaded here):
* small_cnn: trained from scratch by nima-train on a synthetic AVA folder
  (gin/nima/from_scratch_small.gin at 96x128, --small_steps steps);
* mobilenet: trained from random weights (weights=None) by nima-train with
  the same recipe at --mobilenet_size (default 96x128) for --mobilenet_steps
  steps, so its means vary and its int8 agreement means something. With
  --mobilenet_steps 0 (for sizes too large to train here, e.g. 480x640) it
  is weights=None as built, batch-norm statistics recalibrated on 64 training
  images (fewer at larger sizes), untrained: size and latency only.

int8 of small_cnn keeps its 16 standard-deviation pooling ops in float (the
file's tflite_metadata.json lists them); MobileNet's int8 is full-integer.

The machine's 2 cores are shared with other jobs: absolute latencies are
noisy; the float/float16/int8 figures of one backbone come from the same run.
"""

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from nima_enhance import scoring  # noqa: E402
from nima_enhance.data import ava  # noqa: E402
from nima_enhance.data import synthetic  # noqa: E402
from nima_enhance.models import nima as nima_lib  # noqa: E402
from nima_enhance.serving import tflite  # noqa: E402


def train_small(ava_dir, model_dir, steps, bindings=()):
  """nima-train (the real trainer) on the synthetic folder."""
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  extra = [arg for b in bindings for arg in ("--gin_bindings", b)]
  proc = subprocess.run(
      [sys.executable, "-m", "nima_enhance.bin.nima_train", "--ava_dir",
       ava_dir, "--model_dir", model_dir, "--gin_file",
       "nima/from_scratch_small.gin", "--gin_bindings",
       f"train_loop.num_steps = {steps}", "--gin_bindings",
       f"train_loop.checkpoint_every = {steps}", *extra],
      capture_output=True, text=True, env=env, check=False)
  if proc.returncode not in (0, 1):  # 1: some inputs skipped
    raise RuntimeError(proc.stderr[-3000:])


def make_mobilenet(ava_dir, model_dir, size, training_images):
  """MobileNet NIMA, weights=None, batch-norm statistics from training images.

  With momentum 0 one training-mode pass sets every moving mean/variance to
  the batch statistics of its input (layer after layer, each seeing inputs
  normalized by the statistics just set).
  """
  keras.utils.set_random_seed(0)
  model = nima_lib.build_nima(backbone="mobilenet", weights=None, dropout=0.1)
  preprocessing = {"mode": "paper", "image_size": list(size),
                   "resize_size": 256, "random_flip": True}
  # 64 images at 224x224; fewer at larger sizes so the one training-mode
  # batch keeps the same pixel count (64 at 480x640 needed 17 GB).
  count = max(8, min(64, 64 * 224 * 224 // (size[0] * size[1])))
  paths = [ava.image_path(ava_dir, i)
           for i in training_images["image_ids"][:count]]
  pixels = tf.stack([scoring.eval_pixels_tf(ava.load_image_tf(p),
                                            preprocessing) for p in paths])
  norms = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
           if isinstance(layer, keras.layers.BatchNormalization)]
  for layer in norms:
    layer.momentum = 0.0
  model(pixels, training=True)
  os.makedirs(model_dir, exist_ok=True)
  tf.train.Checkpoint(model=model, step=tf.Variable(0, dtype=tf.int64)).save(
      os.path.join(model_dir, "ckpt"))
  spec = {"task": "nima", "preprocessing": preprocessing,
          "build_nima": {"backbone": "mobilenet", "dropout": 0.1},
          "training_images": training_images}
  with open(os.path.join(model_dir, "model_spec.json"), "w") as f:
    json.dump(spec, f)


def best_latency(fn, x, rounds):
  """Best of `rounds` after a warm-up (the least disturbed by shared cores)."""
  fn(x)
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - start)
  return float(np.min(times))


def bench_backbone(name, model_dir, export_root, held_out, rounds,
                   quantizations):
  bundle = scoring.load_nima(model_dir)
  height, width = bundle.preprocessing["image_size"]
  pixels = next(iter(
      tf.data.Dataset.from_tensor_slices(held_out[:1]).map(
          lambda p: scoring.eval_pixels_tf(ava.load_image_tf(p),
                                           bundle.preprocessing)))).numpy()[None]
  keras_ms = 1e3 * best_latency(
      lambda x: bundle.predict(tf.constant(x)).numpy(), pixels, rounds)
  checkpoint_means = [s.mean for s in scoring.score_files(bundle, held_out, 8)
                      if s.error is None]
  rows = []
  for quantize in quantizations:
    start = time.perf_counter()
    path = tflite.export_tflite(model_dir, os.path.join(export_root, name,
                                                        quantize),
                                quantize=quantize)
    export_s = time.perf_counter() - start
    latency = {}
    for threads in (1, 2):
      model = tflite.load_tflite(path, num_threads=threads)
      latency[threads] = 1e3 * best_latency(model.run, pixels, rounds)
      del model  # one interpreter (and its activation arena) at a time
      gc.collect()
    agreement = tflite.scorer_agreement(bundle, tflite.load_tflite(path),
                                        held_out)
    float_ops = tflite.read_metadata(path).get("float_ops")
    gc.collect()
    rows.append({"backbone": name, "input": f"{height}x{width}",
                 "quantize": quantize, "size_bytes": os.path.getsize(path),
                 "ms_1_thread": latency[1], "ms_2_threads": latency[2],
                 "keras_checkpoint_ms": keras_ms, "export_s": export_s,
                 "held_out_images": agreement["images"],
                 "max_abs_mean_diff": agreement["max_abs_mean_diff"],
                 "srcc_means": agreement["srcc_means"],
                 "float_ops": len(float_ops or []),
                 "checkpoint_mean_spread": float(np.std(checkpoint_means))})
    print(json.dumps(rows[-1]), file=sys.stderr)
  float_size = rows[0]["size_bytes"]
  for row in rows:
    row["size_vs_float"] = row["size_bytes"] / float_size
  return rows


def _float_ops(row):
  if row["quantize"] != "int8":
    return "all"
  count = row["float_ops"]
  return f"{count} (rest int8)" if count else "none (full int8)"


def markdown(rows):
  lines = ["| backbone (input) | quantize | size | vs float | ms/image 1 thr "
           "| ms/image 2 thr | max abs mean diff | SRCC of means "
           "| float ops |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    srcc = "n/a" if r["srcc_means"] is None else f"{r['srcc_means']:.3f}"
    lines.append(
        f"| {r['backbone']} ({r['input']}) | {r['quantize']} | "
        f"{r['size_bytes'] / 1e6:.2f} MB | {r['size_vs_float']:.0%} | "
        f"{r['ms_1_thread']:.2f} | {r['ms_2_threads']:.2f} | "
        f"{r['max_abs_mean_diff']:.4f} | {srcc} | "
        f"{_float_ops(r)} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--backbones", default="small_cnn,mobilenet")
  parser.add_argument("--rounds", type=int, default=30)
  parser.add_argument("--small_steps", type=int, default=300)
  parser.add_argument("--mobilenet_size", default="96x128",
                      help="HxW, e.g. 480x640 (the paper's size)")
  parser.add_argument("--mobilenet_steps", type=int, default=300,
                      help="nima-train steps from random weights; 0: no "
                      "training, batch-norm statistics recalibrated only")
  parser.add_argument("--images", type=int, default=200)
  parser.add_argument("--quantizations", default="none,float16,int8",
                      help="the first is the size reference; int8 "
                      "calibration of MobileNet at 480x640 needs about 6 GB")
  parser.add_argument("--json", default=None)
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  record.add_flags(parser)
  args = parser.parse_args()
  if args.quick:  # a smoke pass: small_cnn, float only, few images and steps
    args.backbones, args.rounds, args.small_steps = "small_cnn", 3, 5
    args.images, args.quantizations = 24, "none"
  root = tempfile.mkdtemp(prefix="tflite_bench_")
  try:
    run(args, root)
  finally:
    shutil.rmtree(root, ignore_errors=True)


def run(args, root):
  ava_dir = os.path.join(root, "ava")
  synthetic.make_synthetic_ava(ava_dir, num_images=args.images,
                               image_size=(240, 320), seed=0, bad_files=False)
  ratings = ava.parse_ava_txt(os.path.join(ava_dir, "AVA.txt"))
  held_out = [ava.image_path(ava_dir, i)
              for i in ava.split_ids(ava_dir, ratings.image_ids, "test")]
  backbones = args.backbones.split(",")
  small_dir = os.path.join(root, "small_cnn")
  # The training split (nima-train's own sample when small_cnn is trained).
  train_ids = sorted(ava.split_ids(ava_dir, ratings.image_ids, "train"))
  training_images = {"ava_dir": ava_dir, "image_ids": train_ids[:256]}
  if "small_cnn" in backbones:
    start = time.perf_counter()
    train_small(ava_dir, small_dir, args.small_steps)
    print(f"trained small_cnn {args.small_steps} steps in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    with open(os.path.join(small_dir, "model_spec.json")) as f:
      training_images = json.load(f)["training_images"]
  rows = []
  for name in backbones:
    model_dir = small_dir
    if name == "mobilenet":
      model_dir = os.path.join(root, "mobilenet")
      size = tuple(int(v) for v in args.mobilenet_size.lower().split("x"))
      if args.mobilenet_steps > 0:
        start = time.perf_counter()
        # from_scratch_small.gin's recipe (weights=None, Adam 1e-3, batch
        # 32) on the MobileNet backbone at the given size.
        train_small(ava_dir, model_dir, args.mobilenet_steps, (
            'build_nima.backbone = "mobilenet"',
            f"preprocessing_config.image_size = {size}"))
        print(f"trained mobilenet {args.mobilenet_steps} steps in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
      else:
        make_mobilenet(ava_dir, model_dir, size, training_images)
    rows += bench_backbone(name, model_dir, os.path.join(root, "exports"),
                           held_out, args.rounds,
                           args.quantizations.split(","))
  print(markdown(rows))
  result = {"rows": rows, "held_out_images": len(held_out),
            "small_steps": args.small_steps,
            "mobilenet_steps": args.mobilenet_steps,
            "tensorflow_version": tf.__version__}
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=2)
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  record.write_record(
      args, "tflite", {"held_out_images": len(held_out)}, "- (measurement)",
      "-", "; ".join(
          f"{r['backbone']} ({r['input']}) {r['quantize']}: "
          f"{r['size_bytes'] / 1e6:.2f} MB, {r['ms_1_thread']:.2f} ms/image "
          f"(1 thread) vs Keras checkpoint {r['keras_checkpoint_ms']:.2f} ms, "
          f"max abs mean diff {r['max_abs_mean_diff']:.4f}" for r in rows),
      rows=rows)


if __name__ == "__main__":
  main()
