"""Peak memory and time of the data_prep operators on 12/24/48 MP photos.

    python tools/benchmarks/peak_memory.py [--operators local_laplacian,nonlocal_dehaze]
        [--sizes 12,24,48] [--modes operator,prep_targets] [--quick]
        [--json_out record.json]

--quick: 1 MP, the operators alone (a smoke pass; no memory figure at 24/48 MP).

Every measurement runs in its own fresh process (the peak resident set size,
ru_maxrss, of that process), one after the other, never two at once:

* `operator`: the operator called on a float32 RGB image already in memory
  (the image, 12 bytes per pixel, is included in the peak; the "input" column
  is the process's peak before the call);
* `prep_targets`: `prepare_targets` on a folder holding one 8-bit PNG of that
  size, as `prep-targets` runs it: decoding, the operator, the 16-bit PNG
  written (TensorFlow, imported by the image I/O, included).

The photo is a real one (scikit-image's coffee, hazy with the depth of the
motorcycle stereo pair, as in `dehaze.py`) tiled to the size: the memory of
both operators depends on the size, not on the content. Settings: the
operators' defaults (detail preset, K from `default_num_samples`; dehazing
with its air-light estimated).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, _ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OPERATORS = ("local_laplacian", "nonlocal_dehaze")
TARGET_PEAK_GB = 4.0


def _peak_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB -> GB


def hazy_tile() -> np.ndarray:
  """A 400x600 hazy real photo: coffee, depth from the motorcycle disparity."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  from skimage import transform  # pylint: disable=g-import-not-at-top
  _, _, disparity = data.stereo_motorcycle()
  finite = np.isfinite(disparity)
  disparity = np.where(finite, disparity, disparity[finite].max())
  depth = 1.0 / np.maximum(disparity, 1.0)
  depth = (depth - depth.min()) / (depth.max() - depth.min())
  depth = transform.resize(depth, (400, 600), order=1, anti_aliasing=True)
  t = np.exp(-2.5 * depth).astype(np.float32)[..., None]
  clear = data.coffee().astype(np.float32) / 255.0
  return clear * t + np.float32([0.8, 0.82, 0.85]) * (1.0 - t)


def photo(megapixels: float) -> np.ndarray:
  """The hazy tile repeated to ~megapixels at 3:2, without a second copy."""
  tile = hazy_tile()
  height = int(round(np.sqrt(megapixels * 1e6 / 1.5)))
  width = int(round(height * 1.5))
  image = np.empty((height, width, 3), np.float32)
  th, tw = tile.shape[:2]
  for y in range(0, height, th):
    for x in range(0, width, tw):
      block = image[y:y + th, x:x + tw]
      block[...] = tile[:block.shape[0], :block.shape[1]]
  return image


def _child(operator: str, megapixels: float, mode: str) -> dict:
  """Runs one operator measurement in this (fresh) process."""
  if mode == "operator":
    import data_prep  # pylint: disable=g-import-not-at-top
    image = photo(megapixels)
    before = _peak_gb()
    start = time.perf_counter()
    if operator == "local_laplacian":
      data_prep.local_laplacian(image, **data_prep.llf_params())
    else:
      data_prep.nonlocal_dehaze(image)
    seconds = time.perf_counter() - start
    return dict(shape=list(image.shape[:2]), seconds=seconds,
                input_gb=before, peak_gb=_peak_gb())
  raise ValueError(f"unknown mode {mode!r}")


def _write_png(megapixels: float, path: str) -> list:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = photo(megapixels)
  pixels = (image * 255.0 + 0.5).astype(np.uint8)
  Image.fromarray(pixels).save(path, compress_level=1)
  return list(pixels.shape[:2])


def _prep_targets(operator: str, in_dir: str, out_dir: str) -> dict:
  from data_prep import targets  # pylint: disable=g-import-not-at-top
  before = _peak_gb()
  start = time.perf_counter()
  summary = targets.prepare_targets(in_dir, out_dir, operator, workers=1,
                                    progress=False, log=lambda line: None)
  if summary.get("written") != 1:
    raise RuntimeError(f"prepare_targets wrote no target: {summary}")
  return dict(seconds=time.perf_counter() - start, input_gb=before,
              peak_gb=_peak_gb())


def _run(*args) -> dict:
  """Runs this script with `args` in a fresh process; its JSON result."""
  done = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                        capture_output=True, text=True, check=False)
  if done.returncode != 0:
    raise RuntimeError(f"{args}: exit {done.returncode}\n{done.stderr[-2000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def measure(operator: str, megapixels: float, mode: str) -> dict:
  if mode == "operator":
    return _run("--child", operator, str(megapixels), mode)
  with tempfile.TemporaryDirectory() as tmp:
    in_dir, out_dir = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    os.makedirs(in_dir)
    shape = _run("--write_png", str(megapixels),
                 os.path.join(in_dir, "photo.png"))["shape"]
    result = _run("--prep_targets", operator, in_dir, out_dir)
    result["shape"] = shape
    return result


def main():
  if sys.argv[1:2] == ["--child"]:
    operator, megapixels, mode = sys.argv[2], float(sys.argv[3]), sys.argv[4]
    print(json.dumps(_child(operator, megapixels, mode)))
    return
  if sys.argv[1:2] == ["--write_png"]:
    print(json.dumps(dict(shape=_write_png(float(sys.argv[2]), sys.argv[3]))))
    return
  if sys.argv[1:2] == ["--prep_targets"]:
    print(json.dumps(_prep_targets(*sys.argv[2:5])))
    return
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--operators", default=",".join(OPERATORS))
  parser.add_argument("--sizes", default="12,24,48",
                      help="megapixels, comma-separated")
  parser.add_argument("--modes", default="operator,prep_targets")
  import record  # pylint: disable=import-outside-toplevel  (beside this file)
  record.add_flags(parser)
  args = parser.parse_args()
  if args.quick:
    args.sizes, args.modes = "1", "operator"
  rows = []
  print("| operator | MP | size | mode | seconds | MP/s | input GB | "
        "peak GB |")
  print("|---|---|---|---|---|---|---|---|")
  for operator in args.operators.split(","):
    for mode in args.modes.split(","):
      for size in args.sizes.split(","):
        r = measure(operator, float(size), mode)
        h, w = r["shape"]
        print(f"| {operator} | {h * w / 1e6:.1f} | {w}x{h} | {mode} | "
              f"{r['seconds']:.1f} | {h * w / 1e6 / r['seconds']:.2f} | "
              f"{r['input_gb']:.2f} | {r['peak_gb']:.2f} |", flush=True)
        rows.append(dict(operator=operator, mode=mode, megapixels=h * w / 1e6,
                         seconds=r["seconds"], input_gb=r["input_gb"],
                         peak_gb=r["peak_gb"]))
  worst = max(r["peak_gb"] for r in rows)
  summary = "; ".join(
      f"{op} {mode}: " + " / ".join(f"{r['peak_gb']:.2f}" for r in rows
                                    if r["operator"] == op and r["mode"] == mode)
      + " GB" for op in args.operators.split(",")
      for mode in args.modes.split(","))
  record.write_record(
      args, "peak_memory", {"worst_peak_gb": worst}, target="peak RSS < 4 GB",
      verdict="PASS" if worst < TARGET_PEAK_GB else "MISS",
      summary=f"peak RSS at {args.sizes.replace(',', ' / ')} MP: {summary}",
      rows=rows)


if __name__ == "__main__":
  main()
