"""NIMA scores under candidate filters for the resize rule's factors in [1.5, 2).

    python tools/resize_filters.py [--crops 150] [--seed 0]
        [--train_steps 150] [--json_out PATH]

The evidence for the rule's [1.5, 2) filter (docs/architecture.md, "The
resize rule"). A small NIMA is trained (as `nima_scoring.py`'s score
agreement does), JPEG crops of real photos at 200-2400 px are decoded at
the reduced scale the readers use, and the factor left is resized by each
candidate: the rule itself (`image_resize.resize_tf`: 2-tap means, then
bilinear), the rule's previous filter (bilinear to twice the size along
the axes in [1.5, 2), then pair means), plain bilinear, and the triangle
filter; factors of 2 and more go through the rule in every candidate.
Printed: |mean score| difference of each to the full decode + triangle
filter (the reference the issue names), over all crops and over the crops
whose factor left is in [1.5, 2) ("band"), and the mean |pixel
difference|. Not timed (the speed is `tools/benchmarks/input_pipeline.py`'s);
not a benchmark of `run_all.py` (an analysis, ~1 min on 2 cores).
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "tools", "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import nima_scoring  # noqa: E402  (tools/benchmarks/)
from nima_enhance import scoring  # noqa: E402
from nima_enhance.data import images  # noqa: E402


def _band(n, size):
  return [2 * a >= 3 * b for a, b in zip(n, size)]


def previous_pairs(image, size):
  """The rule's filter for [1.5, 2) before issue 12: bilinear to twice the
  size along those axes, then the mean of each pair."""
  ks = [2 if b else 1 for b in _band(image.shape[:2], size)]
  up = tf.image.resize(image, [k * s for k, s in zip(ks, size)])
  return tf.reduce_mean(tf.reshape(
      up, [size[0], ks[0], size[1], ks[1], 3]), axis=(1, 3))


CANDIDATES = {
    "rule (2-tap means + bilinear)": images.resize_tf,
    "previous (bilinear 2x + pair means)": previous_pairs,
    "plain bilinear": lambda x, s: tf.image.resize(x, s),
    "triangle": lambda x, s: tf.image.resize(x, s, antialias=True),
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--crops", type=int, default=150)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--train_steps", type=int, default=150)
  parser.add_argument("--json_out", default=None)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory(prefix="resize_filters_") as tmp:
    bundle = scoring.load_nima(nima_scoring.train_small_nima(
        tmp, args.train_steps))
    size = tuple(bundle.preprocessing["image_size"])
    folder = os.path.join(tmp, "crops")
    os.makedirs(folder)
    paths = nima_scoring.write_crops(folder, args.crops, seed=args.seed)
    pixels = {k: {} for k in ["reference"] + list(CANDIDATES)}
    band = []
    for path in paths:
      full = images.read_image(path)
      pixels["reference"][path] = np.clip(tf.image.resize(
          full, size, antialias=True).numpy(), 0, 1) * 255
      reduced = tf.constant(images.read_image(path, target_size=size))
      small = all(n < 2 * s for n, s in zip(reduced.shape[:2], size))
      band.append(small and any(_band(reduced.shape[:2], size)))
      for name, resize in CANDIDATES.items():
        out = resize(reduced, size) if small else images.resize_tf(
            reduced, size)
        pixels[name][path] = np.clip(np.asarray(out), 0, 1) * 255
    band = np.array(band)
    scores = {k: nima_scoring.means_of(scoring.score_pixels(
        bundle, paths, lambda p, k=k: pixels[k][p], 32)) for k in pixels}
  print(f"{len(paths)} crops (seed {args.seed}), {int(band.sum())} with the "
        f"factor left in [1.5, 2); small NIMA ({args.train_steps} steps, "
        f"input {list(size)}), scores {scores['reference'].min():.2f}-"
        f"{scores['reference'].max():.2f} (std "
        f"{scores['reference'].std():.3f})")
  rows = {}
  for name in CANDIDATES:
    diff = np.abs(scores[name] - scores["reference"])
    rows[name] = {
        "max": float(diff.max()), "mean": float(diff.mean()),
        "p99": float(np.percentile(diff, 99)),
        "band_max": float(diff[band].max()) if band.any() else None,
        "band_mean": float(diff[band].mean()) if band.any() else None,
        "pixel_mean": float(np.mean([np.abs(
            pixels[name][p] - pixels["reference"][p]).mean() for p in paths]))}
    r = rows[name]
    print(f"{name:36s} |mean score| difference: max {r['max']:.4f}, mean "
          f"{r['mean']:.4f}, p99 {r['p99']:.4f}; band: max "
          f"{r['band_max']:.4f}, mean {r['band_mean']:.4f}; mean |pixel "
          f"difference| {r['pixel_mean']:.2f} / 255")
  if args.json_out:
    with open(args.json_out, "w", encoding="utf-8") as f:
      json.dump({"crops": len(paths), "band": int(band.sum()),
                 "seed": args.seed, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
