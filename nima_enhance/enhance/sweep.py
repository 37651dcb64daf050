"""The gamma sweep: train and evaluate one enhancer per perceptual weight.

The paper (sec. 4.2) picks gamma by training several enhancers. For every
gamma, enhance-train's and enhance-eval's code paths run in this process into
O/gamma_<g>/ (model/ and eval/). The user's gin files and bindings are parsed
once; each point then runs with its own explicit configuration (its gamma is
passed to the enhancer task, overriding `perceptual_loss.gamma`), so no global
state changes between points. A gamma whose eval/eval.json exists is
not run again (resumable); a gamma whose training was interrupted resumes
from its checkpoints. The table (markdown, CSV, JSON) and a plot go to O.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Dict, List, Optional, Sequence

from absl import logging
import gin

from nima_enhance import config
from nima_enhance.data import image_write
from nima_enhance.enhance import evaluate
from nima_enhance.enhance import report as enhance_report
from nima_enhance.enhance import train


@gin.configurable("gamma_sweep")
def sweep_gammas(gammas: Sequence[float] = (0.0, 1e-5, 1e-4, 1e-3)
                ) -> List[float]:
  """The gammas of a sweep file (gin/sweeps/*.gin binds gamma_sweep.gammas)."""
  return [float(g) for g in gammas]


def parse_gammas(text: str) -> List[float]:
  """'0,1e-5,1e-4' -> [0.0, 1e-05, 0.0001]; raises ConfigError."""
  try:
    values = [float(t) for t in text.split(",") if t.strip()]
  except ValueError:
    raise config.ConfigError(f"--gammas {text!r}: expected comma-separated "
                             "numbers") from None
  if not values or any(v < 0 or not math.isfinite(v) for v in values):
    raise config.ConfigError(f"--gammas {text!r}: need one or more finite "
                             "gammas >= 0")
  return values


def gamma_dir(output_dir: str, gamma: float) -> str:
  return os.path.join(output_dir, f"gamma_{gamma:g}")


def run_sweep(data_dir: str, target: str, output_dir: str,
              gammas: Optional[Sequence[float]],
              nima_model_dir: Optional[str] = None,
              gin_files: Sequence[str] = (), gin_bindings: Sequence[str] = (),
              split_file: Optional[str] = None, strategy=None, seed: int = 0,
              num_grids: int = 4,
              data_source: str = "files") -> List[Dict[str, object]]:
  """Trains + evaluates one enhancer per gamma; writes the table and plot.

  Args:
    gammas: the gammas; None takes them from the gin files
      (`gamma_sweep.gammas`).
    nima_model_dir: the frozen NIMA of the loss and of the NIMA statistics
      (also used for gamma = 0, so every row is scored by the same NIMA).
    data_source: "files", or "tfds" with data_dir a TFDS data_dir holding
      `mit_adobe_fivek_pairs/<target>` (as for train.train_enhancer).

  Returns:
    one row per gamma: gamma, psnr, ssim, nima (output means) and inputs'.
  """
  os.makedirs(output_dir, exist_ok=True)
  # The configuration of every point (the binary parsed the same files to
  # validate them; parsing from a clean state makes a direct call the same).
  gin.clear_config()
  config.parse_gin(gin_files, gin_bindings, finalize=False)
  if gammas is None:
    gammas = sweep_gammas()
  if any(g > 0 for g in gammas) and not nima_model_dir:
    raise config.ConfigError("gammas > 0 need --nima_model_dir")
  rows = []
  for gamma in gammas:
    run_dir = gamma_dir(output_dir, gamma)
    eval_dir = os.path.join(run_dir, "eval")
    eval_json = os.path.join(eval_dir, "eval.json")
    if os.path.isfile(eval_json):
      logging.info("gamma %g: %s exists, not retrained", gamma, eval_json)
      with open(eval_json, "r", encoding="utf-8") as f:
        result = json.load(f)
    else:
      model_dir = os.path.join(run_dir, "model")
      logging.info("gamma %g: training into %s", gamma, model_dir)
      train.train_enhancer(data_dir, target, model_dir,
                                 nima_model_dir=nima_model_dir if gamma else None,
                                 split_file=split_file, strategy=strategy,
                                 seed=seed, data_source=data_source,
                                 gamma=gamma)
      result = evaluate.evaluate_enhancer(
          data_dir, target, model_dir, eval_dir, nima_model_dir=nima_model_dir,
          split_file=split_file, num_grids=num_grids, data_source=data_source)
    rows.append(_row(gamma, result))
  write_table(output_dir, rows)
  return rows


def _mean(result: Dict, key: str) -> float:
  value = result.get(key)
  return float(value["mean"]) if value else float("nan")


def _row(gamma: float, result: Dict) -> Dict[str, object]:
  return {"gamma": gamma, "num_images": result.get("num_images"),
          "psnr": _mean(result, "psnr_output"),
          "ssim": _mean(result, "ssim_output"),
          "nima": _mean(result, "nima_output"),
          "psnr_input": _mean(result, "psnr_input"),
          "ssim_input": _mean(result, "ssim_input"),
          "nima_input": _mean(result, "nima_input"),
          "nima_reference": _mean(result, "nima_reference")}


def write_table(output_dir: str, rows: List[Dict[str, object]]) -> None:
  """sweep.md, sweep.csv, sweep.json and sweep.png in output_dir."""
  columns = list(rows[0]) if rows else ["gamma"]
  lines = ["| " + " | ".join(columns) + " |",
           "|" + "---|" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(
        f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
        for c in columns) + " |")
  image_write.atomic_write_bytes(os.path.join(output_dir, "sweep.md"),
                                 ("\n".join(lines) + "\n").encode("utf-8"))
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=columns)
  writer.writeheader()
  writer.writerows(rows)
  image_write.atomic_write_bytes(os.path.join(output_dir, "sweep.csv"),
                                 buffer.getvalue().encode("utf-8"))
  image_write.atomic_write_bytes(os.path.join(output_dir, "sweep.json"),
                                 json.dumps(rows, indent=2).encode("utf-8"))
  if rows:
    enhance_report.sweep_plot(
        os.path.join(output_dir, "sweep.png"), [r["gamma"] for r in rows],
        {"PSNR (dB)": [r["psnr"] for r in rows],
         "SSIM": [r["ssim"] for r in rows],
         "NIMA mean score": [r["nima"] for r in rows]})
