"""nima-score throughput: a folder of JPEGs versus the model alone.

    python tools/benchmarks/nima_scoring.py [--backbone mobilenet|small_cnn]
        [--images 112] [--batch_size 32] [--rounds 3] [--large_images 16]
        [--large_rounds 5] [--score_crops 300]

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

Large photos (issue 12), `--large_images N` (0 skips): a folder of 24 MP
JPEGs (4000x6000 and 6000x4000, skimage photos upscaled), scored by
`score_files` (reduced-scale JPEG decode + the project's resize rule) against
other reading paths through the same pipeline (`scoring.score_pixels`: the
same reader threads, read-ahead and model calls; only the reading differs):
(a) the full decode + the same resize rule, (b) the previous path: full
decode + antialiased bilinear (`tf.image.resize(antialias=True)`), (c) the
JPEG decoded one scale step less reduced + the rule; also `score_files` with
the model on whole batches (the call size before issue 12). Target: the
median over `--large_rounds` rounds (sides in alternating order) of (b)'s
time / `score_files`' time >= 5. Before the timed rounds it times each stage
of one image alone (no overlap): file read, header parse, `decode_jpeg` full
and at 1/2, 1/4, 1/8 (the floor: every byte is still Huffman-decoded), the
old reading and resize, the two-step reduced reading (`read_image` to
float, then the rule) and nima-score's one-call reading
(`scoring.file_pixels_fn`), the model per image per call size (weights
frozen into constants, as `NimaBundle.predict` runs it, and read from
variables), a CSV row; and the speed-up those stages allow when run one
after another.

Score agreement, `--score_crops N` (0 skips): a small NIMA is trained by the
training loop (`gin/nima/from_scratch_small.gin`, `--train_steps`, synthetic
AVA), then N crops of real photos saved as JPEGs of 200-2400 px per side
(decode ratios 1/1 to 1/8 at its 96x128 input) are scored by `score_files`,
by (c) and by the previous path (b); it prints max, mean and p99 |mean score
difference|.
"""

import argparse
import csv
import io
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
from nima_enhance.data import ava_pipeline  # noqa: E402
from nima_enhance.data import image_headers  # noqa: E402
from nima_enhance.data import image_write  # noqa: E402
from nima_enhance.data import images  # noqa: E402
from nima_enhance.models import nima as nima_lib  # noqa: E402

TARGET_RATIO = 0.9
# nima-score's reading of one file: decode and resize in one graph call.
NEW_READING = "new reading: file_pixels_fn (one graph call)"
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
      f.write(image_write.encode_image(image, "jpeg", jpeg_quality=90))
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


def photos_and_model(tmp, name, write, count, backbone):
  """`count` JPEGs by `write` in tmp/<name> and a fresh NIMA model dir.

  Returns:
    (folder, paths, loaded NimaBundle).
  """
  folder = os.path.join(tmp, name)
  model_dir = os.path.join(tmp, name + "_model")
  os.makedirs(folder)
  os.makedirs(model_dir)
  paths = write(folder, count)
  make_model_dir(model_dir, backbone)
  return folder, paths, scoring.load_nima(model_dir)


def write_large_jpegs(folder, count):
  """`count` 24 MP JPEGs (quality 90), both orientations; their paths."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  photos = [getattr(data, n)()[..., :3] for n in ("astronaut", "coffee",
                                                    "chelsea", "rocket")]
  paths = []
  for i in range(count):
    h, w = (4000, 6000) if i % 2 == 0 else (6000, 4000)
    pil = Image.fromarray(photos[i % len(photos)]).resize((w, h),
                                                          Image.BICUBIC)
    path = os.path.join(folder, f"large_{i:03d}.jpg")
    pil.save(path, "JPEG", quality=90)
    paths.append(path)
  return paths


def write_crops(folder, count, seed=0):
  """`count` JPEG crops of real photos, resized to 200-2400 px per side."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import synthetic  # pylint: disable=g-import-not-at-top
  photos = [p for p in synthetic.bundled_photos().values()
            if min(p.shape[:2]) >= 256]
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(count):
    photo = photos[i % len(photos)]
    h, w = photo.shape[:2]
    ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = (photo[top:top + ch, left:left + cw] * 255 + 0.5).astype(np.uint8)
    scale = np.exp(rng.uniform(np.log(200), np.log(2400))) / max(ch, cw)
    size = (max(1, int(cw * scale)), max(1, int(ch * scale)))
    path = os.path.join(folder, f"crop_{i:04d}.jpg")
    Image.fromarray(crop).resize(size, Image.BICUBIC).save(path, "JPEG",
                                                           quality=90)
    paths.append(path)
  return paths


def train_small_nima(work_dir, steps):
  """A small NIMA trained by the training loop on a synthetic AVA."""
  import gin  # pylint: disable=g-import-not-at-top
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import ava  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import synthetic  # pylint: disable=g-import-not-at-top
  from nima_enhance.train import loop  # pylint: disable=g-import-not-at-top
  from nima_enhance.train import nima_task  # pylint: disable=g-import-not-at-top
  ava_dir = os.path.join(work_dir, "ava")
  model_dir = os.path.join(work_dir, "small_nima")
  synthetic.make_synthetic_ava(ava_dir, num_images=128)
  gin.clear_config()
  config.parse_gin(["nima/from_scratch_small.gin"],
                   [f"train_loop.num_steps={steps}",
                    "train_loop.progress=False"], finalize=False)
  ratings, _ = ava.load_split(ava_dir, "train", cache_dir=model_dir)
  loop.train_loop(nima_task.NimaTask(ava_dir, ratings), model_dir)
  gin.clear_config()
  return model_dir


_OLD_RULES = {}


def old_pixels_fn(prep, antialias=True):
  """path -> pixels the previous way: full decode, antialiased bilinear.

  `antialias=False` keeps the full decode but uses the project's resize rule
  (`eval_pixels_tf`). The resize is traced once per process (as score_files'
  preprocessing), never inside a timed round.
  """
  key = (json.dumps(prep, sort_keys=True), antialias)
  if key not in _OLD_RULES:
    _OLD_RULES[key] = (_old_rule(prep) if antialias
                       else scoring._pixels_fn(prep))  # pylint: disable=protected-access
  rule = _OLD_RULES[key]
  return lambda path: rule(images.read_image(path)).numpy()


def _old_rule(prep):
  """The previous preprocessing: antialiased bilinear (traced function)."""
  height, width = prep["image_size"]

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)],
               autograph=False)
  def old_rule(image):
    if prep["mode"] == "paper":
      x = tf.image.resize(image, [height, width], antialias=True)
    else:
      side = prep["resize_size"]
      x = tf.image.resize(image, [side, side], antialias=True)
      top, left = (side - height) // 2, (side - width) // 2
      x = x[top:top + height, left:left + width]
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0
  return old_rule


def less_reduced_pixels_fn(prep):
  """path -> pixels with the JPEG decoded one scale step less reduced.

  The reduced decode aimed at twice the size (ratio 8 -> 4, 4 -> 2, 2 -> 1),
  then the project's resize rule: the alternative weighed against the rule.
  """
  height, width = ava_pipeline.decode_size(prep)
  to_pixels = scoring._pixels_fn(prep)  # pylint: disable=protected-access
  return lambda path: to_pixels(images.read_image(
      path, target_size=(2 * height, 2 * width))).numpy()


def score_legacy(bundle, paths, batch_size, antialias=True):
  """Mean scores the previous way: full decode, then antialiased bilinear.

  Through nima-score's own pipeline (`scoring.score_pixels`: the same reader
  threads, read-ahead and model calls as `score_files`); only the reading
  differs. `antialias=False`: full decode + the project's resize rule.
  """
  return means_of(scoring.score_pixels(
      bundle, paths, old_pixels_fn(bundle.preprocessing, antialias),
      batch_size))


def means_of(scored):
  """Mean scores of ScoredImages (every file must have been read)."""
  scored = list(scored)
  bad = [s.error for s in scored if s.error]
  if bad:
    raise RuntimeError(f"scoring failed: {bad[:3]}")
  return np.array([s.mean for s in scored])


def best_ms(fn, reps=3):
  """Median (wall, CPU) milliseconds of `reps` calls after an untimed one.

  CPU is this process's time on every core (`time.process_time`): what the
  call takes from a machine whose cores are all busy.
  """
  fn()
  times = []
  for _ in range(reps):
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    times.append((time.perf_counter() - start, time.process_time() - cpu))
  return tuple(1000 * float(np.median(t)) for t in zip(*times))


def stage_times(bundle, paths, batch_size):
  """Per-image (wall, CPU) milliseconds of each stage, no overlap.

  The median over the first two files (both orientations) of each stage's
  median of 3 calls; the model per image at nima-score's call size and at a
  call of the whole batch.
  """
  prep = bundle.preprocessing
  height, width = prep["image_size"]
  target = ava_pipeline.decode_size(prep)
  to_pixels = scoring._pixels_fn(prep)  # pylint: disable=protected-access
  load = scoring.file_pixels_fn(prep)
  rows = {}
  for path in paths[:2]:
    with open(path, "rb") as f:
      data = f.read()
    full = images.read_image(path)
    reduced = images.read_image(path, target_size=target)
    stages = {
        "file read": lambda: open(path, "rb").read(),  # pylint: disable=consider-using-with
        "header parse (Python, EXIF)":
            lambda: image_headers.read_header(data),
        "decode_jpeg full (uint8, floor of the old)":
            lambda: tf.io.decode_jpeg(data, channels=3),
    }
    for r in (2, 4, 8):
      stages[f"decode_jpeg ratio {r} (uint8)"] = (
          lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r))
    stages.update({
        "old read: read_image full (float)": lambda: images.read_image(path),
        "old resize: antialiased, from full":
            lambda: old_resize(full, height, width),
        "new read: read_image reduced (float)":
            lambda: images.read_image(path, target_size=target),
        "new resize: the rule, from reduced":
            lambda: to_pixels(reduced).numpy(),
        NEW_READING: lambda: load(path),
    })
    for name, fn in stages.items():
      rows.setdefault(name, []).append(best_ms(fn))
  call = scoring.model_call_size(batch_size, height, width)
  for n in sorted({call, min(batch_size, max(len(paths), call))}):
    x = tf.random.uniform([n, height, width, 3], 0, 255)
    rows[f"model forward, call of {n} (per image)"] = [tuple(
        ms / n for ms in best_ms(lambda x=x: bundle.predict(x).numpy(), 2))]
  # The same call through the tf.function that reads the variables (what
  # `NimaBundle.predict` ran before it froze them into constants).
  x = tf.random.uniform([call, height, width, 3], 0, 255)
  rows[f"model forward, variables unfrozen, call of {call} (per image)"] = [
      tuple(ms / call for ms in best_ms(
          lambda: bundle._predict(x).numpy(), 2))]  # pylint: disable=protected-access
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  dist = np.full(10, 0.1)
  rows["CSV row"] = [best_ms(lambda: writer.writerow(
      ["x.jpg", "5.0000", "1.0000"] + [f"{p:.6f}" for p in dist]))]
  wall = {k: float(np.median([w for w, _ in v])) for k, v in rows.items()}
  cpu = {k: float(np.median([c for _, c in v])) for k, v in rows.items()}
  return wall, cpu, call


def old_resize(image, height, width):
  """The previous resize alone (antialiased bilinear) of a decoded image."""
  return (tf.clip_by_value(tf.image.resize(image, [height, width],
                                           antialias=True), 0.0, 1.0)
          * 255.0).numpy()


def large_photos(args, tmp):
  """images/s on 24 MP JPEGs: reduced decode vs full decode (two resizes)."""
  _, paths, bundle = photos_and_model(tmp, "large", write_large_jpegs,
                                      args.large_images, args.backbone)
  prep = bundle.preprocessing
  stages, cpu, call = stage_times(bundle, paths, args.batch_size)

  def per_batch_calls(ps):
    # nima-score before the per-call cap: the model on whole batches.
    saved = scoring.CPU_CALL_PIXELS
    scoring.CPU_CALL_PIXELS = 1 << 40
    try:
      return means_of(scoring.score_files(bundle, ps, args.batch_size))
    finally:
      scoring.CPU_CALL_PIXELS = saved

  new_name = "score_files (reduced decode)"
  old_name = "full decode + antialiased (before)"
  sides = {
      new_name: lambda ps: means_of(scoring.score_files(bundle, ps,
                                                        args.batch_size)),
      "score_files, model on whole batches": per_batch_calls,
      "one step less reduced + rule": lambda ps: means_of(
          scoring.score_pixels(bundle, ps, less_reduced_pixels_fn(prep),
                               args.batch_size)),
      "full decode + resize rule":
          lambda ps: score_legacy(bundle, ps, args.batch_size,
                                  antialias=False),
      old_name: lambda ps: score_legacy(bundle, ps, args.batch_size),
  }
  times = {k: [] for k in sides}
  cpu_times = {k: [] for k in sides}
  for fn in sides.values():
    fn(paths[:2])  # warm-up (tracing)
  order = list(sides)
  for _ in range(max(1, args.large_rounds)):
    # Every other round in reverse order: no side always runs right after
    # the slowest one (its freed memory, its threads winding down).
    for name in order:
      start, cpu_start = time.perf_counter(), time.process_time()
      sides[name](paths)
      times[name].append(time.perf_counter() - start)
      cpu_times[name].append(time.process_time() - cpu_start)
    order.reverse()
  # Every image size went through one trace of each function (no
  # retracing per size or per last, smaller call).
  traces = {
      "preprocess": scoring._pixels_fn(prep).experimental_get_tracing_count(),  # pylint: disable=protected-access
      "reader": scoring._planned_fn(prep).experimental_get_tracing_count(),  # pylint: disable=protected-access
      "model": bundle._predict.experimental_get_tracing_count()}  # pylint: disable=protected-access
  n = len(paths)
  rounds = len(times[new_name])
  print(f"\n{n} JPEGs of 24 MP (4000x6000 / 6000x4000), NIMA {args.backbone} "
        f"at {HEIGHT}x{WIDTH}, batch {args.batch_size} (model calls of "
        f"{call} on this CPU), median of {rounds} alternating rounds, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
  print("per-image stages (no overlap), ms wall / ms CPU (all cores):")
  for name, ms in stages.items():
    print(f"  {name:<46} {ms:8.2f} {cpu[name]:8.2f}")
  model_key = f"model forward, call of {call} (per image)"
  old_keys = ("old read: read_image full (float)",
              "old resize: antialiased, from full")
  new_keys = (NEW_READING,)
  model_ms = stages[model_key]
  old_ms = sum(stages[k] for k in old_keys)
  new_ms = sum(stages[k] for k in new_keys)
  floor = (stages["decode_jpeg full (uint8, floor of the old)"]
           / stages["decode_jpeg ratio 8 (uint8)"])
  bound = (old_ms + model_ms) / (new_ms + model_ms)
  # With every core busy, images/s is cores / CPU time per image: the
  # speed-up the pipeline can reach, and (new reading free) its ceiling.
  old_cpu = sum(cpu[k] for k in old_keys) + cpu[model_key]
  new_cpu = sum(cpu[k] for k in new_keys) + cpu[model_key]
  floor_cpu = cpu["decode_jpeg ratio 8 (uint8)"] + cpu[model_key]
  cpu_bound, floor_bound, free_bound = (
      old_cpu / new_cpu, old_cpu / floor_cpu, old_cpu / cpu[model_key])
  print(f"reading alone: old {old_ms:.0f} ms, new {new_ms:.0f} ms per image "
        f"({old_ms / new_ms:.1f}x); decode alone full / ratio 8: {floor:.1f}x "
        f"(Huffman decoding of all the data is the floor); with the model "
        f"({model_ms:.0f} ms per image) run one after the other: "
        f"{bound:.1f}x")
  print(f"CPU per image (every core busy): old {old_cpu:.0f} ms, new "
        f"{new_cpu:.0f} ms ({cpu_bound:.1f}x); new reading at the ratio-8 "
        f"decode alone: {floor_bound:.1f}x; new reading free (the model's "
        f"{cpu[model_key]:.0f} CPU ms only): {free_bound:.1f}x")
  unfrozen_key = f"model forward, variables unfrozen, call of {call} (per image)"
  print(f"model per image, weights frozen into constants (NimaBundle.predict)"
        f" vs read from variables: {cpu[model_key]:.1f} vs "
        f"{cpu[unfrozen_key]:.1f} CPU ms ({cpu[unfrozen_key] / cpu[model_key]:.2f}x)")
  print(f"traces after scoring both orientations: {traces}")
  median = {k: float(np.median(v)) for k, v in times.items()}
  for name, seconds in median.items():
    print(f"{name:<40} {seconds:8.2f} s {n / seconds:7.2f} images/s")
  # Per round (the sides of one round ran back to back), then the median.
  per_round = [old / new for old, new in zip(times[old_name], times[new_name])]
  ratio = float(np.median(per_round))
  over_full = float(np.median([f / r for f, r in zip(
      times["full decode + resize rule"], times[new_name])]))
  cpu_ratio = float(np.median([o / n_ for o, n_ in zip(cpu_times[old_name],
                                                      cpu_times[new_name])]))
  print(f"in CPU time (this process, every core): previous "
        f"{1000 * np.median(cpu_times[old_name]) / n:.0f} ms, score_files "
        f"{1000 * np.median(cpu_times[new_name]) / n:.0f} ms per image: "
        f"{cpu_ratio:.1f}x")
  print(f"speed-up over the previous full decode + antialiased resize: median "
        f"{ratio:.1f}x (rounds: {', '.join(f'{r:.1f}' for r in per_round)}; "
        f"target: median >= 5): {'PASS' if ratio >= 5 else 'MISS'}; over "
        f"the full decode + resize rule: {over_full:.1f}x")
  return {"large_images": n, "large_megapixels": 24, "rounds": rounds,
          "model_call_size": call,
          "large_images_per_sec": {k: n / v for k, v in median.items()},
          "large_speedup": ratio, "large_speedup_min": float(min(per_round)),
          "large_speedup_rounds": per_round,
          "large_speedup_over_full_decode": over_full,
          "large_cpu_speedup": cpu_ratio,
          "stage_ms": stages, "reading_speedup": old_ms / new_ms,
          "decode_floor_speedup": floor, "serial_bound_speedup": bound,
          "stage_cpu_ms": cpu, "cpu_bound_speedup": cpu_bound,
          "cpu_bound_at_decode_floor": floor_bound,
          "cpu_bound_reading_free": free_bound,
          "model_freeze_cpu_speedup": cpu[unfrozen_key] / cpu[model_key],
          "traces": traces}


def score_agreement(args, tmp):
  """|mean score| differences, new reading vs full decode + antialiased."""
  model_dir = train_small_nima(tmp, args.train_steps)
  bundle = scoring.load_nima(model_dir)
  folder = os.path.join(tmp, "crops")
  os.makedirs(folder)
  paths = write_crops(folder, args.score_crops)
  new = np.array([float(s.mean) for s in scoring.score_files(
      bundle, paths, args.batch_size)])
  old = score_legacy(bundle, paths, args.batch_size)
  full_new_rule = score_legacy(bundle, paths, args.batch_size,
                               antialias=False)
  less = means_of(scoring.score_pixels(
      bundle, paths, less_reduced_pixels_fn(bundle.preprocessing),
      args.batch_size))
  diff = np.abs(new - old)
  less_diff = np.abs(less - old)
  print(f"\nscore agreement: small NIMA ({args.train_steps} training steps, "
        f"input {bundle.preprocessing['image_size']}), {len(paths)} crops of "
        f"real photos, 200-2400 px; mean scores {old.min():.2f}-{old.max():.2f}"
        f" (std {old.std():.3f})")
  print(f"|mean difference| reduced decode + resize rule vs full decode + "
        f"antialiased: max {diff.max():.4f}, mean {diff.mean():.4f}, p99 "
        f"{np.percentile(diff, 99):.4f}")
  print(f"|mean difference| one scale step less reduced + resize rule vs "
        f"full decode + antialiased: max {less_diff.max():.4f}, mean "
        f"{less_diff.mean():.4f}, p99 {np.percentile(less_diff, 99):.4f}")
  rule = np.abs(full_new_rule - old)
  print(f"|mean difference| full decode + resize rule vs full decode + "
        f"antialiased: max {rule.max():.4f}, mean {rule.mean():.4f}")
  return {"crops": len(paths), "train_steps": args.train_steps,
          "input_size": list(bundle.preprocessing["image_size"]),
          "score_min": float(old.min()), "score_max": float(old.max()),
          "score_std": float(old.std()),
          "diff_max": float(diff.max()), "diff_mean": float(diff.mean()),
          "diff_p99": float(np.percentile(diff, 99)),
          "less_reduced_diff_max": float(less_diff.max()),
          "less_reduced_diff_mean": float(less_diff.mean()),
          "less_reduced_diff_p99": float(np.percentile(less_diff, 99)),
          "rule_diff_max": float(rule.max()),
          "rule_diff_mean": float(rule.mean())}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--backbone", default="mobilenet",
                      help="mobilenet (the paper's) or small_cnn")
  parser.add_argument("--images", type=int, default=112,
                      help="JPEGs in the folder (112 with batch 32: three "
                      "full batches and one of 16, as a real folder has; "
                      "0 skips)")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--large_images", type=int, default=16,
                      help="24 MP JPEGs for the reduced-decode speed-up "
                      "(0 skips)")
  parser.add_argument("--large_rounds", type=int, default=5,
                      help="alternating rounds of the 24 MP part (the "
                      "speed-up is the median of the rounds' ratios; one "
                      "round of 16 images takes ~10 s on 2 cores)")
  parser.add_argument("--score_crops", type=int, default=300,
                      help="crops for the score agreement (0 skips)")
  parser.add_argument("--train_steps", type=int, default=150,
                      help="training steps of the small NIMA (agreement)")
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  record.add_flags(parser)
  args = parser.parse_args()
  if args.quick:  # a smoke pass: the folder-vs-model ratio only, tiny
    args.backbone, args.images, args.batch_size, args.rounds = (
        "small_cnn", 16, 8, 2)
    args.large_images = args.score_crops = 0
  r = model_vs_folder(args) if args.images else None
  # One record at the end, holding every part that ran (the README's Input
  # images figures come from the large-photo and agreement parts).
  figures = dict(r or {})
  with tempfile.TemporaryDirectory(prefix="nima_scoring_large_") as tmp:
    if args.large_images:
      figures["large"] = large_photos(args, tmp)
    if args.score_crops:
      figures["agreement"] = score_agreement(args, tmp)
  if r is not None:
    summary = (f"`nima-score` {r['folder_images_per_sec']:.1f} images/s vs "
               f"model alone {r['model_images_per_sec']:.1f} ({args.backbone}"
               f", {HEIGHT}x{WIDTH}, {r['images']} JPEGs): ratio "
               f"{r['ratio']:.2f} (in CPU per image {r['cpu_ratio']:.2f})")
    if "large" in figures:
      summary += (f"; 24 MP JPEGs: reduced decode "
                  f"{figures['large']['large_speedup']:.1f}x the previous "
                  "full decode + antialiased resize")
    passed = r["ratio"] >= TARGET_RATIO and (
        "large" not in figures or figures["large"]["large_speedup"] >= 5)
    record.write_record(
        args, "nima_scoring", figures,
        target=(f"folder images/s >= {TARGET_RATIO}x model alone"
                + ("; 24 MP >= 5x the previous path" if "large" in figures
                   else "")),
        verdict="PASS" if passed else "MISS", summary=summary)


def model_vs_folder(args):
  """The folder of 480x640 JPEGs against the model alone (issue 8)."""

  with tempfile.TemporaryDirectory(prefix="nima_scoring_bench_") as tmp:
    folder, paths, bundle = photos_and_model(tmp, "photos", write_jpegs,
                                             args.images, args.backbone)
    paths = images.list_images([folder])  # what nima-score does with a folder

    # Model alone: the same batches, already decoded and preprocessed, in
    # memory; the same tf.function.
    # The model is called as score_files calls it: batches split into
    # calls of `model_call_size` images.
    rng = np.random.default_rng(1)
    call = scoring.model_call_size(args.batch_size, HEIGHT, WIDTH)
    batches = []
    for start in range(0, len(paths), args.batch_size):
      n = min(args.batch_size, len(paths) - start)
      for first in range(0, n, call):
        batches.append(tf.constant(rng.uniform(
            0, 255, (min(call, n - first), HEIGHT, WIDTH, 3)).astype(
                np.float32)))
    predict = bundle.predict  # the tf.function score_files runs

    # Each pass also returns this process's CPU seconds (every core): what
    # the pass costs a machine whose cores are all busy, less sensitive to
    # other jobs than the wall clock.
    def model_alone():
      start, cpu = time.perf_counter(), time.process_time()
      for batch in batches:
        predict(batch).numpy()
      return time.perf_counter() - start, time.process_time() - cpu

    def folder_pass():
      start, cpu = time.perf_counter(), time.process_time()
      scored = list(scoring.score_files(bundle, paths, args.batch_size))
      elapsed = time.perf_counter() - start, time.process_time() - cpu
      bad = [s.error for s in scored if s.error]
      if bad or len(scored) != len(paths):
        raise RuntimeError(f"score_files failed: {bad[:3]}")
      return elapsed

    first_folder = folder_pass()[0]  # warm-up (tracing); also reported
    model_alone()  # warm-up (tracing both batch sizes)
    folder_times, model_times = [], []
    for _ in range(args.rounds):
      folder_times.append(folder_pass())
      model_times.append(model_alone())
    best_folder = min(t for t, _ in folder_times)
    best_model = min(t for t, _ in model_times)
    folder_cpu = float(np.median([c for _, c in folder_times]))
    model_cpu = float(np.median([c for _, c in model_times]))

  n = len(paths)
  folder_ips, model_ips = n / best_folder, n / best_model
  ratio = folder_ips / model_ips
  print(f"NIMA backbone {args.backbone} (random weights), input "
        f"{HEIGHT}x{WIDTH} (paper preprocessing), batch {args.batch_size} "
        f"(model calls of {call}), "
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
  print(f"CPU per image (median of the rounds): folder "
        f"{1000 * folder_cpu / n:.1f} ms, model alone "
        f"{1000 * model_cpu / n:.1f} ms (ratio {model_cpu / folder_cpu:.2f})")
  return {"folder_images_per_sec": folder_ips, "model_images_per_sec":
          model_ips, "ratio": ratio, "images": n, "model_call_size": call,
          "folder_cpu_ms_per_image": 1000 * folder_cpu / n,
          "model_cpu_ms_per_image": 1000 * model_cpu / n,
          "cpu_ratio": model_cpu / folder_cpu}


if __name__ == "__main__":
  main()
