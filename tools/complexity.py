#!/usr/bin/env python
"""Prints paper Table 2: parameters and FLOPs of NIMA per backbone.

Usage (from a checkout): python tools/complexity.py [--backbones mobilenet,vgg16]
[--height 480 --width 640] [--json_out results/complexity.json]. Models are built with random weights, so nothing is
downloaded; FLOPs are measured from the graph (see nima_enhance.models.complexity).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nima_enhance.models import complexity  # pylint: disable=g-import-not-at-top,wrong-import-position


def _pct(value):
  return "" if value is None else f"{100 * value:+.2f}%"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--backbones", default="mobilenet,inception_v2,vgg16",
                      help="comma-separated backbone names")
  parser.add_argument("--height", type=int, default=480)
  parser.add_argument("--width", type=int, default=640)
  parser.add_argument("--no_flops", action="store_true",
                      help="count parameters only (fast)")
  parser.add_argument("--json_out", default=None,
                      help="also write the rows as JSON (the README's Table 2 "
                      "is rendered from it by tools/benchmarks/render_readme.py)")
  args = parser.parse_args(argv)
  shape = (args.height, args.width, 3)
  header = (f"{'model':<22}{'params (M)':>12}{'paper':>9}{'diff':>9}"
            f"{'GFLOPs':>10}{'paper':>9}{'diff':>9}")
  print(f"NIMA complexity at {args.height}x{args.width}x3 (paper Table 2; "
        "FLOPs = 2 x multiply-adds)")
  print(header)
  print("-" * len(header))
  rows = []
  for name in [b.strip() for b in args.backbones.split(",") if b.strip()]:
    try:
      row = complexity.table2_row(name, shape, with_flops=not args.no_flops)
    except ValueError as err:
      print(f"{name}: {str(err).splitlines()[0]}", file=sys.stderr)
      return 2
    gflops = "" if row["gflops"] is None else f"{row['gflops']:.2f}"
    paper_p = row.get("paper_params_m")
    paper_f = row.get("paper_gflops")
    print(f"{'NIMA(' + name + ')':<22}{row['params_m']:>12.2f}"
          f"{'' if paper_p is None else f'{paper_p:.2f}':>9}"
          f"{_pct(row.get('params_diff')):>9}{gflops:>10}"
          f"{'' if paper_f is None else f'{paper_f:.2f}':>9}"
          f"{_pct(row.get('gflops_diff')):>9}", flush=True)
    rows.append(row)
  if args.json_out:
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    with open(args.json_out + ".tmp", "w", encoding="utf-8") as f:
      json.dump({"height": args.height, "width": args.width, "rows": rows}, f,
                indent=2)
    os.replace(args.json_out + ".tmp", args.json_out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
