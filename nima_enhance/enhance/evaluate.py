"""Enhancer evaluation: PSNR, SSIM, NIMA statistics and figures (enhance-eval)."""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from skimage.metrics import structural_similarity

from nima_enhance import metrics
from nima_enhance import scoring
from nima_enhance.data import fivek
from nima_enhance.data import image_write
from nima_enhance.data.tfds import readers
from nima_enhance.enhance import report as enhance_report
from nima_enhance.enhance.inference import load_enhancer
from nima_enhance.enhance.train import _tfds_source
from nima_enhance.enhance.train import write_skipped
from nima_enhance.models import can_streaming


def psnr(reference: np.ndarray, image: np.ndarray,
         data_range: float = 1.0) -> float:
  """Peak signal-to-noise ratio in dB (inf for identical images)."""
  mse = float(np.mean((np.asarray(reference, np.float64) -
                       np.asarray(image, np.float64)) ** 2))
  if mse == 0.0:
    return float("inf")
  return float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
  """skimage's SSIM on RGB in [0, 1] (data_range 1, channels last)."""
  height, width = reference.shape[:2]
  # skimage's default 7x7 window needs both sides >= 7.
  win = min(7, height, width)
  win -= 1 - win % 2
  return float(structural_similarity(reference, image, data_range=1.0,
                                     channel_axis=-1, win_size=max(win, 1)))


def nima_mean_scorer(nima_model_dir: str) -> Callable[[np.ndarray], float]:
  """image -> NIMA mean score, for in-memory [0, 1] images.

  The scoring path of nima-score and `nima_enhance.Scorer` on arrays
  (`scoring.score_array`), so enhance-eval's statistics are the scores a user
  gets for the same pixels.
  """
  bundle = scoring.load_nima(nima_model_dir)
  return lambda image: float(metrics.mean_score(
      scoring.score_array(bundle, np.asarray(image, np.float32))))


def _stats(values: Sequence[float]) -> Dict[str, float]:
  values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
  if not values.size:
    return {"mean": float("nan"), "std": float("nan"), "median": float("nan"),
            "min": float("nan"), "max": float("nan"), "count": 0}
  return {"mean": float(values.mean()), "std": float(values.std()),
          "median": float(np.median(values)), "min": float(values.min()),
          "max": float(values.max()), "count": int(values.size)}


def evaluate_enhancer(data_dir: str, target: str, model_dir: str,
                      output_dir: str, nima_model_dir: Optional[str] = None,
                      split: str = "test", split_file: Optional[str] = None,
                      num_grids: int = 8, save_outputs: bool = False,
                      max_images: Optional[int] = None,
                      tile_size: Optional[int] = None,
                      memory_budget_gb: float =
                      can_streaming.DEFAULT_MEMORY_BUDGET_GB,
                      precision: str = "float32",
                      data_source: str = "files") -> Dict[str, object]:
  """enhance-eval's code path: metrics, NIMA statistics, figures.

  Every test pair is enhanced at its original size. Writes to output_dir:
  eval.json (summary and per-image rows), nima_scores.png (box plot of the
  NIMA mean scores of input / reference / output, the paper's Fig. 6),
  grids/<name>.png (input | reference | output, Figs. 7-10) for the first
  `num_grids` images, and outputs/<name>.png when `save_outputs`.

  Args:
    nima_model_dir: NIMA for the score statistics; default: the one recorded
      at training; none at all skips the NIMA statistics.
    tile_size, memory_budget_gb, precision: CAN inference (load_enhancer).
    data_source: "files" (data_dir/input, data_dir/<target>) or "tfds"
      (data_dir is a TFDS data_dir with `mit_adobe_fivek_pairs/<target>`;
      its own train/test split).

  Returns:
    the eval.json dictionary.
  """
  enhancer = load_enhancer(model_dir, tile_size=tile_size,
                           memory_budget_gb=memory_budget_gb,
                           precision=precision)
  os.makedirs(output_dir, exist_ok=True)
  # The split the enhancer was trained with, unless told otherwise.
  split_file = split_file or enhancer.spec.get("split_file")
  if _tfds_source(data_source, split_file):
    report = fivek.PairReport()
    pair_images = readers.iterate_fivek_pairs(data_dir, target, split)
  else:
    pairs, report = fivek.find_pairs(data_dir, target, split, split_file)
    pair_images = fivek.iterate_pairs(pairs, report)
  nima_dir = nima_model_dir or enhancer.spec.get("nima_model_dir")
  scorer = nima_mean_scorer(nima_dir) if nima_dir else None
  rows: List[Dict[str, object]] = []
  for name, source, reference in pair_images:
    if max_images is not None and len(rows) >= max_images:
      break
    output = enhancer(source)
    row = {"name": name, "height": int(source.shape[0]),
           "width": int(source.shape[1]),
           "psnr_input": psnr(reference, source),
           "psnr_output": psnr(reference, output),
           "ssim_input": ssim(reference, source),
           "ssim_output": ssim(reference, output)}
    if scorer is not None:
      row.update(nima_input=scorer(source), nima_reference=scorer(reference),
                 nima_output=scorer(output))
    rows.append(row)
    if len(rows) <= num_grids:
      enhance_report.comparison_grid(
          os.path.join(output_dir, "grids", f"{name}.png"),
          [source, reference, output], ["input", f"reference ({target})",
                                        f"output (gamma={enhancer.spec.get('gamma')})"])
    if save_outputs:
      image_write.write_image(
          os.path.join(output_dir, "outputs", f"{name}.png"), output,
          bit_depth=16)
  write_skipped(report, output_dir, split)
  if not rows:
    raise FileNotFoundError(f"{data_dir}: no readable {split} pairs for "
                            f"target {target} ({report.summary()})")
  result = {
      "model_dir": os.path.abspath(model_dir), "checkpoint": enhancer.checkpoint,
      "target": target, "split": split, "gamma": enhancer.spec.get("gamma"),
      "nima_model_dir": nima_dir, "num_images": len(rows),
      "skipped": dict(sorted(report.skipped.items())),
  }
  for key in ("psnr_input", "psnr_output", "ssim_input", "ssim_output",
              "nima_input", "nima_reference", "nima_output"):
    if key in rows[0]:
      result[key] = _stats([r[key] for r in rows])
  if scorer is not None:
    enhance_report.box_plot(
        os.path.join(output_dir, "nima_scores.png"),
        {"input": [r["nima_input"] for r in rows],
         "reference": [r["nima_reference"] for r in rows],
         f"output (gamma={enhancer.spec.get('gamma')})":
             [r["nima_output"] for r in rows]},
        title=f"NIMA mean scores, {len(rows)} {split} images")
  result["per_image"] = rows
  image_write.atomic_write_bytes(os.path.join(output_dir, "eval.json"),
                                 json.dumps(result, indent=2).encode("utf-8"))
  return result
