"""nima-score throughput: a folder of JPEGs versus the model alone.

    python tools/benchmarks/nima_scoring.py [--backbone mobilenet|small_cnn]
        [--images 112] [--batch_size 32] [--rounds 3]

Writes JPEGs of 480x640 (crops and flips of skimage's bundled photos) into a
temporary folder and a model dir with NIMA (random weights, the paper's
preprocessing: every image resized to 480x640), then times
`scoring.score_files` -- the exact nima-score path: the strict reading
contract and preprocessing in reader threads, batch, model -- against the same model on in-memory tensors of the
same size (the same batches, score_files' `tf.function`,
`NimaBundle.predict`). The two are
timed alternately, each round, and the best of each is kept (shared, noisy
CPU). Each side gets one untimed warm-up call first (tracing).

Target (docs/architecture.md, "Benchmarks"; issue 8): folder images/s >= 0.9x model-alone
images/s (the input pipeline never the bottleneck).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from nima_enhance import scoring  # noqa: E402
from nima_enhance.data import images  # noqa: E402
from nima_enhance.models import nima as nima_lib  # noqa: E402

TARGET_RATIO = 0.9
HEIGHT, WIDTH = 480, 640
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "retina", "colorwheel", "cat")


def write_jpegs(folder, count):
  """`count` 480x640 JPEGs from skimage's bundled colour photos."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  sources = []
  for name in PHOTOS:
    try:
      photo = getattr(data, name)()
    except Exception:  # pylint: disable=broad-except
      continue  # not bundled in this skimage version
    if photo.ndim == 3 and photo.shape[-1] >= 3:
      sources.append(photo[..., :3].astype(np.float32) / 255.0)
  rng = np.random.default_rng(0)
  paths = []
  for i in range(count):
    photo = sources[i % len(sources)]
    h, w = photo.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = photo[top:top + ch, left:left + cw]
    if i % 2:
      crop = crop[:, ::-1]
    image = images.resize(np.ascontiguousarray(crop), (HEIGHT, WIDTH))
    path = os.path.join(folder, f"img_{i:04d}.jpg")
    with open(path, "wb") as f:
      f.write(images.encode_image(image, "jpeg", jpeg_quality=90))
    paths.append(path)
  return paths


def make_model_dir(model_dir, backbone):
  """model_spec.json + a checkpoint, as the training loop writes them."""
  build_args = {"backbone": backbone, "dropout": 0.75}
  model = nima_lib.build_nima(weights=None, **build_args)
  tf.train.Checkpoint(model=model, step=tf.Variable(1, dtype=tf.int64)).save(
      os.path.join(model_dir, "ckpt"))
  spec = {"task": "nima", "build_nima": build_args,
          "preprocessing": {"mode": "paper", "image_size": [HEIGHT, WIDTH],
                            "resize_size": 256, "random_flip": True}}
  with open(os.path.join(model_dir, "model_spec.json"), "w") as f:
    json.dump(spec, f)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--backbone", default="mobilenet",
                      help="mobilenet (the paper's) or small_cnn")
  parser.add_argument("--images", type=int, default=112,
                      help="JPEGs in the folder (112 with batch 32: three "
                      "full batches and one of 16, as a real folder has)")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()

  with tempfile.TemporaryDirectory(prefix="nima_scoring_bench_") as tmp:
    folder = os.path.join(tmp, "photos")
    model_dir = os.path.join(tmp, "model")
    os.makedirs(folder)
    os.makedirs(model_dir)
    paths = write_jpegs(folder, args.images)
    make_model_dir(model_dir, args.backbone)
    bundle = scoring.load_nima(model_dir)
    paths = images.list_images([folder])  # what nima-score does with a folder

    # Model alone: the same batches, already decoded and preprocessed, in
    # memory; the same tf.function.
    rng = np.random.default_rng(1)
    batches = []
    for start in range(0, len(paths), args.batch_size):
      n = min(args.batch_size, len(paths) - start)
      batches.append(tf.constant(
          rng.uniform(0, 255, (n, HEIGHT, WIDTH, 3)).astype(np.float32)))
    predict = bundle.predict  # the tf.function score_files runs

    def model_alone():
      start = time.perf_counter()
      for batch in batches:
        predict(batch).numpy()
      return time.perf_counter() - start

    def folder_pass():
      start = time.perf_counter()
      scored = list(scoring.score_files(bundle, paths, args.batch_size))
      elapsed = time.perf_counter() - start
      bad = [s.error for s in scored if s.error]
      if bad or len(scored) != len(paths):
        raise RuntimeError(f"score_files failed: {bad[:3]}")
      return elapsed

    first_folder = folder_pass()  # warm-up (tracing); also timed, reported
    model_alone()  # warm-up (tracing both batch sizes)
    best_folder = best_model = float("inf")
    for _ in range(args.rounds):
      best_folder = min(best_folder, folder_pass())
      best_model = min(best_model, model_alone())

  n = len(paths)
  folder_ips, model_ips = n / best_folder, n / best_model
  ratio = folder_ips / model_ips
  print(f"NIMA backbone {args.backbone} (random weights), input "
        f"{HEIGHT}x{WIDTH} (paper preprocessing), batch {args.batch_size}, "
        f"{n} JPEGs of {HEIGHT}x{WIDTH}, best of {args.rounds} alternating "
        f"rounds, {os.cpu_count()} CPUs")
  print(f"{'path':<34} {'seconds':>8} {'images/s':>9}")
  print(f"{'nima-score first call (tracing)':<34} {first_folder:8.2f} "
        f"{n / first_folder:9.1f}")
  print(f"{'nima-score (score_files, folder)':<34} {best_folder:8.2f} "
        f"{folder_ips:9.1f}")
  print(f"{'model alone (in-memory tensors)':<34} {best_model:8.2f} "
        f"{model_ips:9.1f}")
  verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
  print(f"ratio folder / model alone = {ratio:.2f} (target >= {TARGET_RATIO}):"
        f" {verdict}")


if __name__ == "__main__":
  main()
