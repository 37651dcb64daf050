"""One JSON record per benchmark run, shared by every script in this folder.

Each benchmark adds two flags with `add_flags(parser)`:

  --quick       tiny sizes and few rounds, a smoke pass of seconds (CI);
  --json_out P  write one record to P (run_all.py collects them into
                results/benchmarks.json and render_readme.py turns that into
                the README's tables).

and ends with `write_record(args, name, figures, target, verdict, summary)`.
A record holds the figures (absolute numbers of both sides of every ratio),
the target as text, the verdict (PASS / MISS / "-" for a measurement without a
target), a one-line summary for the README, whether it was a quick pass, and
the machine (cores, CPU model, load average, TensorFlow version, accelerator,
UTC date). The verdict is recorded, never enforced: a noisy figure that misses
its target does not fail CI, a benchmark that raises does.
"""

import argparse
import datetime
import json
import os
import platform
import sys
from typing import Dict, Optional


def add_flags(parser: argparse.ArgumentParser) -> None:
  """Adds --quick and --json_out to a benchmark's parser."""
  parser.add_argument("--quick", action="store_true",
                      help="tiny sizes, few rounds (a smoke pass for CI)")
  parser.add_argument("--json_out", default=None,
                      help="write this run's record (JSON) to this path")


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine() -> Dict[str, object]:
  """Where the figures were measured (TensorFlow only if already imported)."""
  info: Dict[str, object] = {
      "cores": os.cpu_count(),
      "cpu_model": _cpu_model(),
      "python": platform.python_version(),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime(
          "%Y-%m-%d %H:%M UTC"),
  }
  try:
    info["load_average"] = [round(x, 2) for x in os.getloadavg()]
  except OSError:
    pass
  tf = sys.modules.get("tensorflow")
  if tf is not None:
    info["tensorflow"] = tf.__version__
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    info["accelerator"] = ", ".join(gpus) if gpus else "none (CPU only)"
  else:
    info["tensorflow"] = None
    info["accelerator"] = "not queried (numpy-only benchmark)"
  return info


def write_record(args: argparse.Namespace, name: str,
                 figures: Dict[str, object], target: str, verdict: str,
                 summary: str, rows: Optional[list] = None) -> Dict[str, object]:
  """Builds the record and writes it to args.json_out (if given).

  Args:
    args: the parsed flags (quick, json_out and the benchmark's own flags,
      which are stored so a figure can be reproduced).
    name: the benchmark's name (its file name without .py).
    figures: measured numbers, both sides of each ratio.
    target: the target, as text ("ratio >= 0.7").
    verdict: "PASS", "MISS", or "-" where there is no target.
    summary: one line for the README's "measured" column.
    rows: optional extra table rows (list of dicts).

  Returns:
    the record.
  """
  record = {
      "name": name,
      "quick": bool(getattr(args, "quick", False)),
      "flags": {k: v for k, v in vars(args).items() if k != "json_out"},
      "figures": figures,
      "target": target,
      "verdict": verdict,
      "summary": summary,
      "machine": machine(),
  }
  if rows is not None:
    record["rows"] = rows
  print(f"[{name}] {summary}\n[{name}] target: {target}; verdict: {verdict}"
        f"{' (quick pass)' if record['quick'] else ''}", flush=True)
  path = getattr(args, "json_out", None)
  if path:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(record, f, indent=2, default=str)
    os.replace(tmp, path)
  return record
