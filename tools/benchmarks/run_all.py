"""Runs every benchmark (and the Results producers) and collects their records.

    python tools/benchmarks/run_all.py [--quick] [--only a,b] [--skip a,b]
        [--results results] [--no_results] [--demo auto|full|quick|none]
        [--render]

Every `*.py` in tools/benchmarks/ except this runner, record.py and
render_readme.py is a benchmark; each runs as its own subprocess (a fresh
process per benchmark, so one's memory or threads do not leak into the next)
with `--json_out` (and `--quick` with --quick) and writes one record
(tools/benchmarks/record.py). The records are merged by name into
`<results>/benchmarks.json`; a benchmark not run this time keeps its older
record, and each record says whether it came from a quick pass.

Unless --no_results, it also regenerates the README's Results inputs:
`tools/complexity.py --json_out <results>/complexity.json` (paper Table 2,
~15 s) and, without --quick, the whole demo (`nima-enhance-demo`, minutes):
its summary.json, copied to <results>/demo_summary.json, holds the
from-scratch NIMA and enhancement figures (the demo's own outputs go to a
temporary folder; `--demo quick` runs `nima-enhance-demo --quick` instead,
and the README then says so). --render then rewrites the README's generated blocks
(render_readme.py).

Full mode runs each benchmark with FULL_ARGS (bounded configurations: fewer
files and rounds, the sizes the issues require) and stops starting jobs when
--budget_minutes (default 50) is spent. Duration of the whole full run
(`python tools/benchmarks/run_all.py --render`) on a quiet 2-core machine:
20.8 minutes on 2026-12-01 05:34-05:55 UTC (load 1-2), per job (wall s):

  can_inference 327, dehaze 20, input_pipeline 46, local_laplacian 102
  (with the Halide peer and its JIT compiles), nima_scoring 104, peak_memory
  194 (operators and prep-targets), prep_targets_beam 20, tflite 118,
  train_step 52, complexity 5, demo 258.

EXPECTED_FULL_SECONDS holds those figures (printed at the start as the
expected total); a loaded machine takes several times longer, hence the
budget's margin.

Each record keeps its flags and its wall time (`seconds`), shown in the
README's Performance table, so the next run can check these estimates.

Exit status: 1 if any benchmark raised or wrote no record (a figure that
misses its target is recorded as MISS and does not fail the run), else 0.
Numpy benchmarks run without the OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
overrides (the house rule for benchmark commands).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import record  # tools/benchmarks/record.py, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NOT_BENCHMARKS = {"run_all.py", "record.py", "render_readme.py"}

# Full mode: each benchmark's flags (its defaults where absent). Bounded so
# that the whole full run fits the budget below on a quiet 2-core machine,
# keeping the sizes the issues require (see the module docstring).
FULL_ARGS = {
    # 64 JPEGs (two full batches of 32), three rounds for the ratios, 16 of
    # the 24 MP JPEGs (4 never reach the pipeline's steady state), 150 crops
    # for the score agreement.
    "nima_scoring": ["--images", "64", "--rounds", "3", "--large_images", "16",
                     "--score_crops", "150"],
    # Both sizes (AVA and 12 MP), half the files and batches, two rounds.
    "input_pipeline": ["--files", "24", "--batches", "3", "--rounds", "2"],
    # tflite.py: its defaults (small_cnn and MobileNet trained 300 steps
    # each: the int8 agreement figures need trained models). If it overruns,
    # `--mobilenet_steps 0` (MobileNet untrained: size, latency, integer ops)
    # saves most of its time.
    # 12/24/48 MP, the operators alone and through prep-targets (the issue's
    # bound is on the prep-targets job: decoding and the 16-bit PNG written
    # included).
    "peak_memory": ["--modes", "operator,prep_targets"],
}

# Expected seconds of each full-mode job on a quiet 2-core machine (the
# last full run's, as in the module docstring). Used for the plan printed at the start and
# for --budget_minutes.
EXPECTED_FULL_SECONDS = {
    "can_inference": 327, "dehaze": 20, "input_pipeline": 46,
    "local_laplacian": 102, "nima_scoring": 104, "peak_memory": 194,
    "prep_targets_beam": 20, "tflite": 118, "train_step": 52,
    "complexity": 5, "demo": 258,
}


def _budget_spent(budget, name, failed):
  """True (and `name` counted as failed, with a line) once the budget is out."""
  if budget.left() > 0:
    return False
  failed.append(name)
  print(f"[run_all] {name}: not run, the budget "
        f"({budget.seconds / 60:.0f} min) is spent", flush=True)
  return True


def benchmark_names():
  """Every benchmark script in this folder, by name (file name without .py)."""
  return sorted(os.path.basename(p)[:-3]
                for p in glob.glob(os.path.join(HERE, "*.py"))
                if os.path.basename(p) not in NOT_BENCHMARKS
                and not os.path.basename(p).startswith("_"))


def _env():
  env = dict(os.environ)
  for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    env.pop(key, None)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  return env


def _run(command, timeout, log_path):
  """(exit code, seconds); stdout and stderr go to log_path."""
  start = time.perf_counter()
  with open(log_path, "w", encoding="utf-8") as log:
    try:
      code = subprocess.run(command, cwd=ROOT, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT, timeout=timeout,
                            check=False).returncode
    except subprocess.TimeoutExpired:
      code = "timeout"
  return code, time.perf_counter() - start


def _tail(path, lines=15):
  with open(path, encoding="utf-8", errors="replace") as f:
    return "".join(f.readlines()[-lines:])


def load(path):
  """The collected records: {"records": {name: record}}."""
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return {"records": {}}


def save(path, data):
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(data, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help="each benchmark's --quick (tiny sizes; minutes)")
  parser.add_argument("--only", default="", help="comma-separated names")
  parser.add_argument("--skip", default="", help="comma-separated names")
  parser.add_argument("--results", default=os.path.join(ROOT, "results"))
  parser.add_argument("--no_results", action="store_true",
                      help="skip complexity.py and the demo (full mode)")
  parser.add_argument("--demo", choices=("auto", "full", "quick", "none"),
                      default="auto",
                      help="the demo run for the README's Results: auto = "
                      "full without --quick, none with --quick")
  parser.add_argument("--timeout", type=float, default=None,
                      help="seconds per benchmark (default 600 quick, 7200)")
  parser.add_argument("--render", action="store_true",
                      help="then rewrite the README's generated blocks")
  parser.add_argument("--budget_minutes", type=float, default=None,
                      help="stop starting jobs once this much time is spent "
                      "(each job's timeout is the time left); jobs not run "
                      "count as failed (default: 50 full, 30 quick)")
  args = parser.parse_args(argv)
  if args.budget_minutes is not None and args.budget_minutes <= 0:
    print(f"run_all.py: --budget_minutes must be > 0, got "
          f"{args.budget_minutes}", file=sys.stderr)
    return 2
  names = benchmark_names()
  unknown = [n for n in (args.only + "," + args.skip).split(",")
             if n and n not in names]
  if unknown:
    print(f"run_all.py: --only/--skip: unknown benchmark(s) {unknown}; "
          f"known: {names}", file=sys.stderr)
    return 2
  if args.only:
    names = [n for n in names if n in args.only.split(",")]
  names = [n for n in names if n not in args.skip.split(",")]
  timeout = args.timeout or (600 if args.quick else 7200)
  budget = Budget(60 * (args.budget_minutes or (30 if args.quick else 50)))
  if not args.quick:
    jobs = list(names) + ([] if args.no_results else ["complexity"] + (
        ["demo"] if _demo_mode(args) == "full" else []))
    expected = sum(EXPECTED_FULL_SECONDS.get(j, 0) for j in jobs)
    print(f"[run_all] full run: {', '.join(jobs)}; expected ~"
          f"{expected / 60:.0f} min on a quiet 2-core machine, budget "
          f"{budget.seconds / 60:.0f} min", flush=True)
  out_path = os.path.join(args.results, "benchmarks.json")
  data = load(out_path)
  failed = []
  with tempfile.TemporaryDirectory(prefix="run_all_") as tmp:
    for name in names:
      record_path = os.path.join(tmp, name + ".json")
      log_path = os.path.join(tmp, name + ".log")
      extra = ["--quick"] if args.quick else FULL_ARGS.get(name, [])
      command = [sys.executable, os.path.join(HERE, name + ".py"),
                 "--json_out", record_path] + extra
      if _budget_spent(budget, name, failed):
        continue
      print(f"[run_all] {name} {' '.join(extra)} ...", flush=True)
      code, seconds = _run(command, min(timeout, budget.left()), log_path)
      if code != 0 or not os.path.exists(record_path):
        failed.append(name)
        print(f"[run_all] {name}: FAILED (exit {code}, {seconds:.0f} s); "
              f"last lines:\n{_tail(log_path)}", flush=True)
        continue
      with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
      record["seconds"] = round(seconds, 1)
      data["records"][name] = record
      save(out_path, data)
      print(f"[run_all] {name}: {record['verdict']} ({seconds:.0f} s): "
            f"{record['summary']}", flush=True)
    if not args.no_results:
      failed += _results(args, tmp, budget)
  print(f"[run_all] {budget.spent() / 60:.1f} min in all", flush=True)
  if args.render and not failed:
    import render_readme  # pylint: disable=import-outside-toplevel
    render_readme.main(["--results", args.results])
  if failed:
    print(f"[run_all] failed: {', '.join(failed)}", file=sys.stderr)
    return 1
  return 0


class Budget:
  """Wall-clock seconds left of the run's budget."""

  def __init__(self, seconds, clock=time.perf_counter):
    self.seconds = seconds
    self.clock = clock
    self.start = clock()

  def spent(self):
    return self.clock() - self.start

  def left(self):
    return self.seconds - self.spent()


def _demo_mode(args):
  return args.demo if args.demo != "auto" else (
      "none" if args.quick else "full")


def _results(args, tmp, budget):
  """Table 2 (complexity.py) and, in full mode, the demo's summary.json."""
  failed = []
  complexity_json = os.path.join(args.results, "complexity.json")
  demo_dir = os.path.join(tmp, "demo")
  jobs = [("complexity", [sys.executable,
                          os.path.join(ROOT, "tools", "complexity.py"),
                          "--json_out", complexity_json])]
  demo = _demo_mode(args)
  if demo != "none":
    jobs.append(("demo", [sys.executable, "-m", "nima_enhance.bin.demo",
                          "--output_dir", demo_dir]
                 + (["--quick"] if demo == "quick" else [])))
  for name, command in jobs:
    if _budget_spent(budget, name, failed):
      continue
    print(f"[run_all] {name} ...", flush=True)
    log_path = os.path.join(tmp, name + ".log")
    code, seconds = _run(command, budget.left(), log_path)
    if code != 0:
      failed.append(name)
      print(f"[run_all] {name}: FAILED (exit {code}); last lines:\n"
            f"{_tail(log_path)}", flush=True)
    else:
      print(f"[run_all] {name}: done ({seconds:.0f} s)", flush=True)
      if name == "demo":
        store_demo_summary(demo_dir, args.results)
  return failed


def store_demo_summary(demo_dir, results_dir):
  """Copies the demo's summary.json to results/, with the date and machine."""
  with open(os.path.join(demo_dir, "summary.json"), encoding="utf-8") as f:
    summary = json.load(f)
  summary["machine"] = record.machine()
  summary["date"] = summary["machine"]["date"]
  save(os.path.join(results_dir, "demo_summary.json"), summary)


if __name__ == "__main__":
  sys.exit(main())
