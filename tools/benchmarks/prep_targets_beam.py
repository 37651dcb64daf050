"""prep-targets throughput: the local process pool against Beam's DirectRunner.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python tools/benchmarks/prep_targets_beam.py [--images 12] [--side 512]
        [--workers 2] [--operator local_laplacian] [--quick]
        [--json_out record.json]

--quick: 3 images at 256 px, one worker (a smoke pass).

Writes --images real photos (scikit-image's, resized so the long side is
--side) into a temporary folder, then runs the same job on them with each
engine into its own empty output folder, side by side in one run:

  pool-1     targets.prepare_targets, workers=1 (in this process)
  beam-1     beam_pipeline.prepare_targets_beam, DirectRunner in memory
  pool-N     targets.prepare_targets, workers=N (spawned processes)
  beam-N     DirectRunner, direct_num_workers=N, multi_processing

After an untimed warm-up of both engines in this process, each line: wall
seconds (everything: planning, worker start-up, the pipeline,
the report), images/s, MP/s of input, and the Beam overhead against the pool
with the same number of workers (seconds and %). The outputs of all runs are
checked byte-identical. Needs the `beam` extra.
"""

import argparse
import logging
import os
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, _ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from data_prep import beam_pipeline  # noqa: E402
from data_prep import targets  # noqa: E402
from nima_enhance.data import image_write  # noqa: E402
from nima_enhance.data import images  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina", "brick")


def _write_inputs(folder, count, side):
  from skimage import data  # pylint: disable=g-import-not-at-top
  megapixels = 0.0
  for i in range(count):
    name = PHOTOS[i % len(PHOTOS)]
    photo = images.to_float_rgb(np.asarray(getattr(data, name)()), name)
    photo = images.resize_max_side(photo, side, upscale=True)
    image_write.write_image(os.path.join(folder, f"{i:03d}_{name}.png"), photo)
    megapixels += photo.shape[0] * photo.shape[1] / 1e6
  return megapixels


def _outputs(folder):
  out = {}
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), "rb") as f:
      out[name] = f.read()
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=12)
  parser.add_argument("--side", type=int, default=512)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--operator", default="local_laplacian",
                      choices=targets.OPERATORS)
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  record.add_flags(parser)
  args = parser.parse_args()
  if args.quick:
    args.images, args.side, args.workers = 3, 256, 1
  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  try:
    beam_pipeline.require_beam()
  except Exception as err:  # pylint: disable=broad-except  (ConfigError)
    # No Beam here (it is an optional extra): recorded as skipped, not an
    # error, so run_all.py works without it; CI installs it.
    print(f"skipped: {err}")
    record.write_record(args, "prep_targets_beam", {}, "- (measurement)",
                        "skipped", f"not run: {str(err).splitlines()[0]}")
    return
  quiet = lambda _: None  # noqa: E731
  with tempfile.TemporaryDirectory() as tmp:
    inputs = os.path.join(tmp, "in")
    os.makedirs(inputs)
    megapixels = _write_inputs(inputs, args.images, args.side)
    print(f"{args.images} images, {megapixels:.2f} MP in all, operator "
          f"{args.operator} (default settings), {os.cpu_count()} CPUs")
    # Warm-up (untimed): the first image in a process pays TensorFlow's
    # one-off start (kernels, graph caches); in-process runs would otherwise
    # charge it to whichever engine goes first. Spawned workers pay it in
    # both engines, and that cost is part of what is measured.
    warm = os.path.join(tmp, "warm")
    os.makedirs(warm)
    first_input = sorted(os.listdir(inputs))[0]
    os.link(os.path.join(inputs, first_input), os.path.join(warm, first_input))
    targets.prepare_targets(warm, os.path.join(tmp, "warm_out"),
                            args.operator, progress=False, log=quiet)
    beam_pipeline.prepare_targets_beam(warm, os.path.join(tmp, "warm_beam"),
                                       args.operator, "DirectRunner",
                                       log=quiet)
    runs = [("pool-1", "pool", 1), ("beam-1", "beam", 1)]
    if args.workers > 1:
      runs += [(f"pool-{args.workers}", "pool", args.workers),
               (f"beam-{args.workers}", "beam", args.workers)]
    seconds, outputs = {}, {}
    for label, engine, workers in runs:
      out = os.path.join(tmp, label)
      start = time.perf_counter()
      if engine == "pool":
        counts = targets.prepare_targets(inputs, out, args.operator,
                                         workers=workers, progress=False,
                                         log=quiet)
      else:
        counts = beam_pipeline.prepare_targets_beam(
            inputs, out, args.operator, "DirectRunner", workers=workers,
            log=quiet)
      seconds[label] = time.perf_counter() - start
      assert counts["written"] == args.images, counts
      outputs[label] = _outputs(os.path.join(out, args.operator))
      line = (f"{label:8s} {seconds[label]:7.2f} s  "
              f"{args.images / seconds[label]:6.3f} images/s  "
              f"{megapixels / seconds[label]:6.3f} MP/s")
      if engine == "beam":
        pool = seconds[f"pool-{workers}"]
        line += (f"  Beam overhead {seconds[label] - pool:+.2f} s "
                 f"({100 * (seconds[label] / pool - 1):+.0f}%)")
      print(line, flush=True)
    first = next(iter(outputs.values()))
    assert all(o == first for o in outputs.values()), "outputs differ"
    print("all engines wrote byte-identical targets")
  figures = {f"{label}_mps": megapixels / s for label, s in seconds.items()}
  figures.update({f"{label}_seconds": s for label, s in seconds.items()})
  record.write_record(
      args, "prep_targets_beam", figures, target="- (measurement)",
      verdict="-",
      summary=(f"{args.images} photos at {args.side} px, {args.operator}: "
               + ", ".join(f"{label} {megapixels / s:.2f} MP/s"
                           for label, s in seconds.items())
               + "; outputs byte-identical"))


if __name__ == "__main__":
  main()
