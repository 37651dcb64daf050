"""TFLite scorer files: size, latency per image and agreement with the checkpoint.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tools/benchmarks/tflite.py
        [--backbones small_cnn,mobilenet] [--rounds 30] [--small_steps 200]
        [--mobilenet_size 96x128] [--mobilenet_steps 200] [--mobilenet_lr 1e-3]
        [--quantizations none,float16,int8] [--quick] [--json_out out.json]

For each backbone and each --quantize (none, float16, int8) this runs
`nima-export --format tflite` (the library call behind it) and measures, in
one run, side by side:

* file size (and its ratio to the float file);
* latency per image of the interpreter on preprocessed pixels at 1 and 2
  threads (best of --rounds after one warm-up), beside the checkpoint's own
  Keras model on the same pixels (batch 1, TensorFlow's default threads);
* agreement with the checkpoint on held-out images (the synthetic AVA test
  split, never in the int8 calibration): max |mean difference| and the SRCC
  of the means, both scored through `scoring.score_files` (the exact
  nima-score path for --model_dir and --tflite);
* whether the checkpoint itself ranks those images: the spread of its means
  and their SRCC with the synthetic ratings (an agreement figure means
  nothing for a checkpoint that predicts a constant).
* for int8, what its two unavoidable roundings alone cost the checkpoint,
  in float on the same images (`tflite_quantize.int8_floor`): integer
  pixels (the uint8 input) and kernels rounded to int8 per channel
  (int8_floor_pixels, int8_floor_weights). A checkpoint whose means already
  move past 0.1 under these is too sensitive for int8, whatever the
  quantizer does.

Every figure of the table goes in the record's rows (--json_out;
render_readme.py's `tflite` block).

Models (ImageNet weights cannot be downloaded here), both trained by
nima-train on a synthetic AVA folder (gin/nima/from_scratch_small.gin: Adam,
batch 32, weights=None):
* small_cnn at 96x128, --small_steps steps;
* mobilenet at --mobilenet_size, --mobilenet_steps steps at --mobilenet_lr,
  then "precise BN": its batch-norm moving statistics recomputed on 64
  training images (`recalibrate_model_dir`). Without that step a from-scratch
  MobileNet of a few hundred steps predicts one constant in evaluation mode
  (means spread 4e-7; the moving averages trail the fast-changing weights)
  though its training-mode outputs vary. With --mobilenet_steps 0 (for sizes
  too large to train here, e.g. 480x640) it is weights=None as built with
  recalibrated statistics, untrained: size and latency only.

int8 keeps small_cnn's statistics head (mean/std pooling, concatenation,
LayerNorm) and every model's output tail in float (the file's
tflite_metadata.json lists them); MobileNet's network is full-integer.
The from-scratch MobileNet is such a sensitive checkpoint: integer pixels
alone and int8 kernels alone each moved its means by 0.3-0.5 in the runs
measured (the int8 row's int8_floor_* figures; after 500 steps instead of
200, 0.25 and 0.11 with the int8 file at 0.46), while TFLite's
QuantizationDebugger put every layer's own int8 error at the rounding level
(about 0.25 of a step rms): no calibration or rescaling of its int8 file can
bring it within 0.1; see docs/serving.md.

Full mode: about 6 minutes on a quiet 2-core machine (two trainings of
~2 minutes). --quick: small_cnn, float only, 5 steps (~30 s).

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

from nima_enhance import metrics  # noqa: E402
from nima_enhance import scoring  # noqa: E402
from nima_enhance.data import ava  # noqa: E402
from nima_enhance.data import synthetic  # noqa: E402
from nima_enhance.models import nima as nima_lib  # noqa: E402
from nima_enhance.serving import tflite  # noqa: E402
from nima_enhance.serving import tflite_convert  # noqa: E402


def train_small(ava_dir, model_dir, steps, bindings=()):
  """nima-train (the real trainer) on the synthetic folder.

  Seeded (nima-train's seed 0) with TensorFlow's op determinism on, so a
  rerun trains the same checkpoint: the int8 agreement of these from-scratch
  models moved from 0.06 to 0.12 (small_cnn) between non-deterministic
  trainings of one recipe.
  """
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_DETERMINISTIC_OPS="1")
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


def _bn_pixels(paths, preprocessing, size):
  """Training pixels for one batch-norm pass, bounded by pixel count.

  64 images at 224x224; fewer at larger sizes so the one training-mode
  batch keeps the same pixel count (64 at 480x640 needed 17 GB).
  """
  count = max(8, min(64, 64 * 224 * 224 // (size[0] * size[1])))
  return np.concatenate(list(tflite_convert.eval_pixels_of_files(
      paths[:count], preprocessing)))


def recalibrate_batch_norm(model, pixels):
  """Sets every batch norm's moving mean/variance to `pixels`' statistics.

  With momentum 0 one training-mode pass sets each layer's moving
  statistics to the batch statistics of its input (layer after layer, each
  seeing inputs normalized by the statistics just set): "precise BN".
  """
  norms = [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
           if isinstance(layer, keras.layers.BatchNormalization)]
  for layer in norms:
    # load_nima freezes the model, and a frozen Keras 3 batch norm runs in
    # inference mode even when called with training=True.
    layer.trainable, layer.momentum = True, 0.0
  model(pixels, training=True)
  for layer in norms:
    layer.trainable = False
  return len(norms)


def recalibrate_model_dir(model_dir, ava_dir):
  """Precise BN on a nima-train model dir, saved over its last checkpoint.

  From random weights, the moving statistics (momentum 0.99) trail weights
  that change fast: after 200-300 steps MobileNet's evaluation-mode output
  was one constant (means spread 4e-7) while its training-mode output
  varied; recomputed on 64 training images, the means spread ~0.5-1.
  """
  bundle = scoring.load_nima(model_dir)
  size = bundle.preprocessing["image_size"]
  paths = [ava.image_path(ava_dir, i)
           for i in bundle.spec["training_images"]["image_ids"]]
  count = recalibrate_batch_norm(
      bundle.model, _bn_pixels(paths, bundle.preprocessing, size))
  step = int(bundle.checkpoint.rsplit("-", 1)[1])
  tf.train.CheckpointManager(
      tf.train.Checkpoint(model=bundle.model), model_dir, max_to_keep=None,
      checkpoint_name="ckpt").save(checkpoint_number=step)
  return count


def make_mobilenet(ava_dir, model_dir, size, training_images):
  """MobileNet NIMA, weights=None as built, batch-norm statistics from
  training images (no training: size and latency only)."""
  keras.utils.set_random_seed(0)
  model = nima_lib.build_nima(backbone="mobilenet", weights=None, dropout=0.1)
  preprocessing = {"mode": "paper", "image_size": list(size),
                   "resize_size": 256, "random_flip": True}
  paths = [ava.image_path(ava_dir, i) for i in training_images["image_ids"]]
  recalibrate_batch_norm(model, _bn_pixels(paths, preprocessing, size))
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


def bench_backbone(name, model_dir, export_root, held_out, ratings, rounds,
                   quantizations, train_s):
  bundle = scoring.load_nima(model_dir)
  height, width = bundle.preprocessing["image_size"]
  pixels = next(tflite_convert.eval_pixels_of_files(held_out,
                                                    bundle.preprocessing))
  keras_ms = 1e3 * best_latency(
      lambda x: bundle.predict(tf.constant(x)).numpy(), pixels, rounds)
  scored = [s for s in scoring.score_files(bundle, held_out, 8)
            if s.error is None]
  checkpoint_means = [s.mean for s in scored]
  # Did the checkpoint learn to rank (the synthetic ratings' means)?
  rated = [metrics.mean_score(ratings.distributions[
      ratings.image_ids.index(os.path.splitext(os.path.basename(s.path))[0])])
           for s in scored]
  checkpoint_srcc = float(metrics.srcc(np.array(rated),
                                       np.array(checkpoint_means)))
  if not np.isfinite(checkpoint_srcc):
    checkpoint_srcc = None  # constant means (JSON has no NaN)
  # What int8's two unavoidable roundings (uint8 pixels, int8 kernels per
  # channel) cost this checkpoint alone, in float on the same images.
  floor = (tflite.tflite_quantize.int8_floor(bundle, held_out,
                                             tflite_convert.scorer_agreement)
           if "int8" in quantizations else None)
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
    agreement = tflite_convert.scorer_agreement(
        bundle, tflite.load_tflite(path), held_out)
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
                 "checkpoint_mean_spread": float(np.std(checkpoint_means)),
                 "checkpoint_srcc_vs_ratings": checkpoint_srcc,
                 "train_s": train_s})
    if quantize == "int8":
      rows[-1].update(
          int8_floor_pixels=floor["pixels_rounded"]["max_abs_mean_diff"],
          int8_floor_weights=floor["weights_rounded"]["max_abs_mean_diff"])
    print(json.dumps(rows[-1]), file=sys.stderr)
  float_size = rows[0]["size_bytes"]
  for row in rows:
    row["size_vs_float"] = row["size_bytes"] / float_size
  return rows


# int8 alternatives to the shipped choice, measured beside it (same model,
# calibration and held-out images): which ops stay float32 (a regex on
# TFLite tensor names; "" = full integer).
INT8_VARIANTS = {
    "small_cnn": (
        ("full integer", ""),
        ("only the 16 std ops (sqrt(mean((x - mean)^2) + eps)) float",
         r"small_pool\d+(_\d+)?/(\S*Square\S*|Mean_1|add|Sqrt)$"),
    ),
}


def int8_variants(name, model_dir, export_root, held_out, shipped_row):
  """Agreement of the INT8_VARIANTS of a backbone, beside the shipped int8."""
  bundle = scoring.load_nima(model_dir)
  rows = [{"backbone": name, "variant": "shipped: "
           + tflite.tflite_quantize.FLOAT_IN_INT8_WHY.split(":")[0]
           + " + output tail float",
           "size_bytes": shipped_row["size_bytes"],
           "float_ops": shipped_row["float_ops"],
           "max_abs_mean_diff": shipped_row["max_abs_mean_diff"],
           "srcc_means": shipped_row["srcc_means"]}]
  for label, pattern in INT8_VARIANTS.get(name, ()):
    path = tflite.export_tflite(
        model_dir, os.path.join(export_root, name, "int8_variant"),
        quantize="int8", int8_float_ops=pattern)
    agreement = tflite_convert.scorer_agreement(
        bundle, tflite.load_tflite(path), held_out)
    rows.append({"backbone": name, "variant": label,
                 "size_bytes": os.path.getsize(path),
                 "float_ops": len(tflite.read_metadata(path)["float_ops"]),
                 "max_abs_mean_diff": agreement["max_abs_mean_diff"],
                 "srcc_means": agreement["srcc_means"]})
    print(json.dumps(rows[-1]), file=sys.stderr)
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
  parser.add_argument("--small_steps", type=int, default=200)
  parser.add_argument("--mobilenet_size", default="96x128",
                      help="HxW, e.g. 480x640 (the paper's size)")
  parser.add_argument("--mobilenet_steps", type=int, default=200,
                      help="nima-train steps from random weights; 0: no "
                      "training, batch-norm statistics recalibrated only")
  parser.add_argument("--mobilenet_lr", type=float, default=1e-3,
                      help="Adam learning rate of the MobileNet run")
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
  train_s = {}
  if "small_cnn" in backbones:
    start = time.perf_counter()
    train_small(ava_dir, small_dir, args.small_steps)
    train_s["small_cnn"] = time.perf_counter() - start
    print(f"trained small_cnn {args.small_steps} steps in "
          f"{train_s['small_cnn']:.0f} s", file=sys.stderr)
    with open(os.path.join(small_dir, "model_spec.json")) as f:
      training_images = json.load(f)["training_images"]
  rows, variants = [], []
  for name in backbones:
    model_dir = small_dir
    if name == "mobilenet":
      model_dir = os.path.join(root, "mobilenet")
      size = tuple(int(v) for v in args.mobilenet_size.lower().split("x"))
      if args.mobilenet_steps > 0:
        start = time.perf_counter()
        # from_scratch_small.gin's recipe (weights=None, Adam, batch 32) on
        # the MobileNet backbone at the given size, then precise BN.
        train_small(ava_dir, model_dir, args.mobilenet_steps, (
            'build_nima.backbone = "mobilenet"',
            f"preprocessing_config.image_size = {size}",
            f"nima_optimizers.backbone_learning_rate = {args.mobilenet_lr}",
            f"nima_optimizers.head_learning_rate = {args.mobilenet_lr}"))
        recalibrate_model_dir(model_dir, ava_dir)
        train_s["mobilenet"] = time.perf_counter() - start
        print(f"trained mobilenet {args.mobilenet_steps} steps in "
              f"{train_s['mobilenet']:.0f} s", file=sys.stderr)
      else:
        make_mobilenet(ava_dir, model_dir, size, training_images)
    rows += bench_backbone(name, model_dir, os.path.join(root, "exports"),
                           held_out, ratings, args.rounds,
                           args.quantizations.split(","), train_s.get(name))
    shipped = [r for r in rows if r["backbone"] == name
               and r["quantize"] == "int8"]
    if shipped and name in INT8_VARIANTS:
      variants += int8_variants(name, model_dir,
                                os.path.join(root, "exports"), held_out,
                                shipped[0])
  print(markdown(rows))
  result = {"rows": rows, "held_out_images": len(held_out),
            "small_steps": args.small_steps,
            "mobilenet_steps": args.mobilenet_steps,
            "tensorflow_version": tf.__version__}
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=2)
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  checks = []
  for r in rows:
    if r["checkpoint_mean_spread"] < 1e-3:
      continue  # a constant checkpoint: agreement says nothing
    if r["quantize"] == "none":
      checks.append(r["max_abs_mean_diff"] <= 0.01)
    if r["quantize"] == "int8":
      checks += [r["size_vs_float"] <= 0.35, r["max_abs_mean_diff"] <= 0.1]
  record.write_record(
      args, "tflite", {"held_out_images": len(held_out),
                       "int8_variants": variants},
      "float32 max |mean diff| <= 0.01; int8 <= 35% of the float file and "
      "max |mean diff| <= 0.1 (held-out images)",
      ("PASS" if all(checks) else "MISS") if checks else "-", "; ".join(
          f"{r['backbone']} ({r['input']}) {r['quantize']}: "
          f"{r['size_bytes'] / 1e6:.2f} MB, {r['ms_1_thread']:.2f} ms/image "
          f"(1 thread) vs Keras checkpoint {r['keras_checkpoint_ms']:.2f} ms, "
          f"max abs mean diff {r['max_abs_mean_diff']:.4f}" for r in rows),
      rows=rows)

if __name__ == "__main__":
  main()
