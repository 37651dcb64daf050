"""Local Laplacian filter benchmark: MP/s at 0.25/1/4 MP, scaling, fast vs exact,
and the speed at pyramid depths 8-10 with K = 8 and K = 81, side by side with a
Halide peer.

    python tools/benchmarks/local_laplacian.py [--depth_only] [--quick]
        [--json_out record.json]

--quick: 0.06/0.25 MP, a 64x64 exact crop, no depth or large rows (a smoke
pass).

Large rows (4/12/24 MP, default depth, K = 8 and 81, MP/s of CPU time, best
of 2): the 4 MP image mirrored into 3:2 mosaics, so every size has the same
content per pixel; 12 MP and more at K = 81 go by strips of G_1 rows with
bounded memory (`llf_fast._streamed_levels`), and the verdict needs their
MP/s within 0.75x of the 4 MP figure. Peak memory at these sizes:
`peak_memory.py`.

One thread (the filter is numpy element-wise code; BLAS/OpenMP pools and
Halide's thread pool are pinned to one thread here). Run it as
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tools/benchmarks/...`.

Depth rows (4 MP, 8/9/10 levels, K = 8 and 81, the detail preset's curve):
the project's fast path and `_halide_llf.py`, a Halide pipeline of the same
filter written here from the algorithm (JIT-compiled once per depth, not
timed), fed the same remapping table; the runs alternate project / Halide so
both see the same load, and each side's figure is the best of 3 in CPU time
(this process's, one thread each) and in wall time, both clocks read around
the same runs. The verdict needs the
project >= Halide at every depth and K, >= 18 MP/s at K = 8 and >= 2.7 MP/s at
K = 81 (8 levels). Without the `halide` package (`pip install -e ".[bench]"`)
the Halide column says "not measured" and the comparison is left out of the
verdict. For reference, issue 17 measured Halide's own app (upstream CPU
schedule, one thread, 4 MP, 8 levels) at 18.0 MP/s (K = 8) and 2.68 (K = 81),
on another occasion. Peak memory at 12/24/48 MP (prep-targets, both
operators): `peak_memory.py`.

Uses the default "detail_enhancement" preset (K from `default_num_samples`: 81
references over [0, 1] since the banding fix). The fast method's bands are
evaluated only for each coefficient's two bracketing references, level 0
included (from every reference's G_1, held while K x h/2 x w/2 floats fit in
320 MiB), so the K references mostly cost their remapping and first reduction;
those go by tiles that skip the references with no detail on the tile
(|I - g| > sigma_r everywhere there) and, from K = 20, those no band
coefficient reads there (`data_prep.llf_level1`).
Before/after figures of a change: run this script at both commits, or time
both versions in one process (CPU time) as the issue-17 report did.
"""

import argparse
import importlib
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "HL_NUM_THREADS"):
  os.environ[_var] = "1"

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from data_prep import llf_remap  # noqa: E402
from nima_enhance.data import images  # noqa: E402

llf = importlib.import_module("data_prep.local_laplacian")
import record  # noqa: E402  (tools/benchmarks/record.py)


def _best_time(fn, repeats, clock=time.perf_counter):
  """Best of `repeats` runs; `clock=time.process_time` gives this process's
  CPU time, less sensitive to other jobs on the cores than the wall clock."""
  best = float("inf")
  for _ in range(repeats):
    start = clock()
    fn()
    best = min(best, clock() - start)
  return best


TARGET_8_LEVELS = {8: 18.0, 81: 2.7}  # MP/s at 4 MP, one thread (issue 17).


def _halide():
  """The Halide peer module, or None when `halide` is not installed."""
  try:
    return importlib.import_module("_halide_llf")
  except ImportError:
    return None


def depth_rows(photo):
  """MP/s at 4 MP for 8/9/10 levels and K = 8 / 81 (detail preset curve),
  the project and the Halide peer alternating (one thread each)."""
  figures, table = {}, []
  image = np.ascontiguousarray(images.resize(photo, (2000, 2000)),
                               dtype=np.float32)
  params = llf.llf_params()
  for name in ("method", "levels", "num_samples", "domain"):
    params.pop(name)
  halide = _halide()
  if halide is None:
    print("Halide: not measured (pip install -e '.[bench]' for the peer)")
  out = np.empty_like(image)
  for levels in (8, 9, 10):
    if halide is not None:  # JIT compilation, not timed in the rows.
      wall, cpu = time.perf_counter(), time.process_time()
      halide.build(levels)
      figures[f"halide_compile_s_depth{levels}"] = time.perf_counter() - wall
      figures[f"halide_compile_cpu_s_depth{levels}"] = (time.process_time()
                                                        - cpu)
    for k in (8, 81):
      ours = lambda: llf.local_laplacian(  # noqa: E731
          image, levels=levels, num_samples=k, **params)  # noqa: B023
      sides = {"project": ours}
      if halide is not None:
        sides["halide"] = lambda: halide.local_laplacian(  # noqa: E731
            image, levels, k, out=out, **params)  # noqa: B023
      best = {name: [float("inf"), float("inf")] for name in sides}
      for _ in range(3):  # Alternating: both sides see the same load.
        for name, fn in sides.items():
          wall, cpu = time.perf_counter(), time.process_time()
          fn()
          cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
          best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
      row = dict(levels=levels, k=k)
      for name, (wall, cpu) in best.items():
        row[f"{name}_mps_cpu"] = 4.0 / cpu
        row[f"{name}_mps_wall"] = 4.0 / wall
        figures[f"depth{levels}_k{k}_{name}_mps_cpu"] = 4.0 / cpu
      if halide is not None:
        diff = np.abs(sides["halide"]() - ours())
        row["halide_vs_project_max_diff"] = float(diff.max())
        row["ratio_cpu"] = row["project_mps_cpu"] / row["halide_mps_cpu"]
      table.append(row)
      halide_text = (f"Halide {row['halide_mps_cpu']:.2f} MP/s CPU "
                     f"({row['halide_mps_wall']:.2f} wall), project/Halide "
                     f"{row['ratio_cpu']:.2f}, max output diff "
                     f"{row['halide_vs_project_max_diff']:.1e}"
                     if halide is not None else "Halide not measured")
      print(f"depth {levels}, K = {k:2d}, 2000x2000: project "
            f"{row['project_mps_cpu']:.2f} MP/s CPU "
            f"({row['project_mps_wall']:.2f} wall); {halide_text}", flush=True)
  return figures, table


LARGE_SIZES = (4, 12, 24)  # MP of the large-image rows.
# 12/24 MP MP/s >= this x the 4 MP figure (K = 81): "close to" it, with
# room for the load (0.79-0.92 measured at load 5-6).
LARGE_MIN_RATIO = 0.75


def mosaic(image, megapixels):
  """`image` mirrored into a 3:2 mosaic of ~megapixels: every size has the
  same content per pixel (4 MP: the image itself, if square 2000 x 2000)."""
  if megapixels == 4 and image.shape[:2] == (2000, 2000):
    return image
  height = int(round(np.sqrt(megapixels * 1e6 / 1.5)))
  width = int(round(height * 1.5))
  tile = np.concatenate([image, image[::-1]], axis=0)
  tile = np.concatenate([tile, tile[:, ::-1]], axis=1)
  reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
  return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def large_rows(photo):
  """MP/s of CPU time (one thread, default depth) at 4/12/24 MP, K = 8 and
  81: 12 MP and more at K = 81 go by strips (`llf_fast._streamed_levels`,
  bounded memory), 4 MP by the whole K-reference stack. The 4 MP image of
  the depth rows mirrored into larger mosaics, so the MP/s compare; the
  sizes alternate within each of 2 rounds (the same load for each), best
  round kept."""
  base = np.ascontiguousarray(images.resize(photo, (2000, 2000)),
                              dtype=np.float32)
  params = llf.llf_params()
  for name in ("method", "levels", "num_samples"):
    params.pop(name)
  mosaics = {mp: mosaic(base, mp) for mp in LARGE_SIZES}
  best = {}
  for _ in range(2):
    for mp, image in mosaics.items():
      for k in (8, 81):
        start = time.process_time()
        llf.local_laplacian(image, num_samples=k, **params)
        cpu = time.process_time() - start
        best[mp, k] = min(best.get((mp, k), float("inf")), cpu)
  figures = {}
  for (mp, k), cpu in best.items():
    image = mosaics[mp]
    pixels = image.shape[0] * image.shape[1] / 1e6
    figures[f"large_{mp}mp_k{k}_mps_cpu"] = pixels / cpu
    print(f"large rows: {image.shape[1]}x{image.shape[0]} ({pixels:.1f} "
          f"MP), K = {k:2d}: {cpu:.2f} s CPU, {pixels / cpu:.2f} MP/s",
          flush=True)
  return figures


def large_verdict(figures):
  """(ok, text): K = 81 MP/s at 12/24 MP within LARGE_MIN_RATIO of 4 MP's."""
  ratios = [figures[f"large_{mp}mp_k81_mps_cpu"]
            / figures["large_4mp_k81_mps_cpu"] for mp in LARGE_SIZES[1:]]
  parts = [f"K = {k} " + " / ".join(
      f"{figures[f'large_{mp}mp_k{k}_mps_cpu']:.2f}" for mp in LARGE_SIZES)
           for k in (81, 8)]
  return min(ratios) >= LARGE_MIN_RATIO, (
      "default depth, 1 thread, MP/s of CPU time at " + " / ".join(
          f"{mp}" for mp in LARGE_SIZES) + " MP (the 4 MP image mirrored): "
      + "; ".join(parts))


def depth_verdict(table):
  """(ok, text): targets at 8 levels and project >= Halide everywhere."""
  ok, parts = True, []
  for row in table:
    if row["levels"] == 8:
      target = TARGET_8_LEVELS[row["k"]]
      ok &= row["project_mps_cpu"] >= target
    if "halide_mps_cpu" in row:
      ok &= row["project_mps_cpu"] >= row["halide_mps_cpu"]
  for k in (8, 81):
    rows = [r for r in table if r["k"] == k]
    halide = " / ".join(f"{r['halide_mps_cpu']:.2f}" for r in rows
                        if "halide_mps_cpu" in r) or "not measured"
    parts.append(f"K = {k} at 8/9/10 levels: project " + " / ".join(
        f"{r['project_mps_cpu']:.2f}" for r in rows) + f" vs Halide {halide}")
  return ok, "4 MP, 1 thread, MP/s of CPU time: " + "; ".join(parts)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--depth_only", action="store_true")
  record.add_flags(parser)
  args = parser.parse_args()
  from skimage import data  # pylint: disable=g-import-not-at-top
  photo = data.astronaut().astype(np.float32) / 255.0
  figures, table = ({}, []) if args.quick else depth_rows(photo)
  if args.depth_only:
    return
  if not args.quick:
    figures.update(large_rows(photo))
  params = llf.llf_params()
  params.pop("method")
  k = llf_remap.default_num_samples(1.0, params["sigma_r"], params["alpha"])
  print(f"preset detail_enhancement {params}, K <= {k} references")
  times = {}
  sizes = (0.0625, 0.25) if args.quick else (0.25, 1.0, 4.0)
  for mp in sizes:
    side = int(round(np.sqrt(mp * 1e6)))
    image = images.resize(photo, (side, side))
    seconds = _best_time(lambda: llf.local_laplacian(image, **params),  # noqa: B023
                         3 if mp < 4 else 2)
    times[mp] = seconds
    print(f"fast  {side}x{side} ({side * side / 1e6:.2f} MP): {seconds:.3f} s, "
          f"{side * side / 1e6 / seconds:.2f} MP/s")
  big, small = sizes[-1], sizes[-2]
  growth = times[big] / times[small]
  print(f"growth time({big} MP) / time({small} MP) = {growth:.2f} "
        f"(linear: {big / small:g})")
  c = 64 if args.quick else 256
  crop = np.ascontiguousarray(photo[128:128 + c, 128:128 + c])
  # Both timed as the best of a few runs (the machine may be shared).
  t_exact = _best_time(
      lambda: llf.local_laplacian(crop, method="exact", **params), 2)
  exact = llf.local_laplacian(crop, method="exact", **params)
  t_fast = _best_time(lambda: llf.local_laplacian(crop, **params), 5)
  fast = llf.local_laplacian(crop, **params)
  error = np.abs(fast - exact)
  print(f"{c}x{c} crop: exact {t_exact:.3f} s, fast {t_fast:.4f} s, "
        f"speed-up {t_exact / t_fast:.1f}x, fast vs exact: MAE "
        f"{error.mean():.4f}, p99 {np.percentile(error, 99):.4f}, max "
        f"{error.max():.4f}")
  mps = {f"fast_mps_{mp:g}mp": mp / times[mp] for mp in sizes}
  figures.update(mps)
  figures.update(growth=growth, exact_seconds=t_exact, fast_seconds=t_fast,
                 speedup=t_exact / t_fast, mae=float(error.mean()),
                 p99=float(np.percentile(error, 99)),
                 max_error=float(error.max()), crop=c)
  accurate = error.mean() <= 0.01 and np.percentile(error, 99) <= 0.0075
  fast_enough = min(mps.values()) >= 1.0 and t_exact / t_fast >= 50
  target = ">= 1 MP/s, fast vs exact MAE <= 0.01, p99 <= 0.0075, >= 50x"
  depth_text = ""
  if table:
    depth_ok, depth_text = depth_verdict(table)
    fast_enough &= depth_ok
    target += ("; 4 MP, 8 levels, 1 thread: >= 18 MP/s (K = 8), >= 2.7 MP/s "
               "(K = 81); project >= Halide peer at 8/9/10 levels")
    depth_text = "; " + depth_text
  if "large_4mp_k81_mps_cpu" in figures:
    large_ok, large_text = large_verdict(figures)
    fast_enough &= large_ok
    target += (f"; K = 81 at 12/24 MP >= {LARGE_MIN_RATIO:g} x the 4 MP "
               "MP/s")
    depth_text += "; " + large_text
  verdict = "PASS" if accurate and fast_enough else "MISS"
  record.write_record(
      args, "local_laplacian", figures, target=target, verdict=verdict,
      summary=(" / ".join(f"{v:.2f}" for v in mps.values()) + " MP/s at "
               + " / ".join(f"{mp:g}" for mp in sizes) + f" MP; {c}x{c} vs "
               f"exact: MAE {error.mean():.4f}, p99 "
               f"{np.percentile(error, 99):.4f}, max {error.max():.4f}, "
               f"exact {t_exact:.2f} s vs fast {t_fast:.3f} s "
               f"({t_exact / t_fast:.0f}x)" + depth_text),
      rows=table or None)

if __name__ == "__main__":
  main()
