"""Enhancer training: enhance-train's code path (target, pairs, task, loop).

Gin must already be parsed (docs/architecture.md, "Configuration"); what
differs between runs of one process (a sweep's gamma) is passed explicitly.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

from absl import logging
import tensorflow as tf

from nima_enhance import config
from nima_enhance.data import fivek
from nima_enhance.data import image_write
from nima_enhance.train import enhancer_task
from nima_enhance.train import loop


def resolve_target(target: Optional[str],
                   model_dir: Optional[str] = None) -> str:
  """--target, else gin's enhancer_target.name, else the trained model's.

  Raises:
    ConfigError: none of them names a target.
  """
  if target:
    return target
  target = enhancer_task.default_target()
  if not target and model_dir:
    spec_path = os.path.join(model_dir, "model_spec.json")
    if os.path.isfile(spec_path):
      with open(spec_path, "r", encoding="utf-8") as f:
        target = json.load(f).get("target")
  if not target:
    raise config.ConfigError("no target: pass --target (e.g. local_laplacian) "
                             "or a gin file binding enhancer_target.name")
  return target


def train_enhancer(data_dir: str, target: str, model_dir: str,
                   nima_model_dir: Optional[str] = None,
                   split_file: Optional[str] = None,
                   strategy: Optional[tf.distribute.Strategy] = None,
                   seed: int = 0, data_source: str = "files",
                   gamma: Optional[float] = None) -> Dict[str, object]:
  """enhance-train's code path: find pairs, build the task, run train_loop.

  Gin must already be parsed; `gamma` (when given) overrides
  perceptual_loss.gamma for this run only (the sweep passes each point's
  gamma so). Skipped pairs are logged and written to
  model_dir/skipped_train.txt. With data_source "tfds", data_dir is a TFDS
  data_dir holding `mit_adobe_fivek_pairs/<target>` (built by build-tfds)
  and the records' train split trains (EnhancerTfdsTask).
  """
  os.makedirs(model_dir, exist_ok=True)
  if _tfds_source(data_source, split_file):
    task = enhancer_task.EnhancerTfdsTask(data_dir, target,
                                          nima_model_dir=nima_model_dir,
                                          gamma=gamma)
    logging.info("train: %d pairs from TFDS mit_adobe_fivek_pairs/%s in %s "
                 "(skipped at build time: %s)", len(task.pairs), target,
                 data_dir, task.skipped_at_build)
    return loop.train_loop(task, model_dir, strategy=strategy, seed=seed)
  pairs, report = fivek.find_pairs(data_dir, target, "train", split_file,
                                   cache_dir=model_dir)
  write_skipped(report, model_dir, "train")
  task = enhancer_task.EnhancerTask(data_dir, target,
                                    nima_model_dir=nima_model_dir,
                                    split_file=split_file, pairs=pairs,
                                    gamma=gamma)
  result = loop.train_loop(task, model_dir, strategy=strategy, seed=seed)
  result["skipped_pairs"] = len(report.skipped)  # the binary's exit code
  return result


def _tfds_source(data_source: str, split_file: Optional[str]) -> bool:
  """True for "tfds"; refuses a split file there (the records hold the split)."""
  if data_source not in ("files", "tfds"):
    raise config.ConfigError(f"data source must be 'files' or 'tfds', got "
                             f"{data_source!r}")
  if data_source == "tfds" and split_file:
    raise config.ConfigError("--split_file applies to --data_source files; "
                             "the TFDS records keep the split they were "
                             "built with")
  return data_source == "tfds"


def write_skipped(report: fivek.PairReport, directory: str, split: str) -> None:
  """Logs the report and writes directory/skipped_<split>.txt when non-empty."""
  logging.info("%s: %s", split, report.summary())
  if report.skipped:
    logging.warning("%d %s pairs skipped: %s", len(report.skipped), split,
                    ", ".join(sorted(report.skipped)[:20]))
    lines = "".join(f"{n}\t{r}\n" for n, r in sorted(report.skipped.items()))
    image_write.atomic_write_bytes(
        os.path.join(directory, f"skipped_{split}.txt"), lines.encode("utf-8"))
