"""The prep-targets job: enhancement targets for every image of a folder.

The binary (flags) is `nima_enhance/bin/prep_targets.py`. Every image of I
(JPEG, PNG, 8/16-bit TIFF) becomes `O/<operator>/<name>.png` (16-bit PNG). The operator settings (gin configurables `llf_params` and
`dehaze_params`) are resolved once in the parent process and recorded in
`O/<operator>/params.json`; a rerun skips finished outputs and refuses to mix
targets made with different settings. Workers are spawned processes (not
forked: TensorFlow, imported by the image I/O, is not fork-safe once started).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import tqdm

from data_prep import dehaze
from data_prep.local_laplacian import llf_params
from data_prep.local_laplacian import local_laplacian
from nima_enhance import config
from nima_enhance.data import images

OPERATORS = ("local_laplacian", "nonlocal_dehaze")
PARAMS_FILE = "params.json"


def operator_params(operator: str) -> dict:
  """The operator's settings from its gin configurable (after parse_gin)."""
  if operator == "local_laplacian":
    return llf_params()
  if operator == "nonlocal_dehaze":
    return dehaze.dehaze_params()
  raise ValueError(f"unknown operator {operator!r}; one of {OPERATORS}")


def _apply(operator: str, image: np.ndarray, params: dict) -> np.ndarray:
  if operator == "local_laplacian":
    return local_laplacian(image, **params)
  dehazed, _, _ = dehaze.nonlocal_dehaze(image, **params)
  return dehazed


def _process(task: Tuple[str, str, str, dict, Optional[int]]
             ) -> Tuple[str, Optional[str]]:
  """Worker: one image -> one target. Returns (input path, error or None)."""
  path, out_path, operator, params, max_side = task
  try:
    image = images.read_image(path)
  except images.ImageReadError as err:
    return path, str(err).splitlines()[0]
  if max_side:
    image = images.resize_max_side(image, max_side)
  images.write_image(out_path, _apply(operator, image, params), bit_depth=16)
  return path, None


def _check_params(out_dir: str, operator: str, params: dict) -> None:
  """Records the settings; refuses to resume with different ones."""
  record = {"operator": operator, "params": params}
  path = os.path.join(out_dir, PARAMS_FILE)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      previous = json.load(f)
    if previous != json.loads(json.dumps(record)):
      raise config.ConfigError(
          f"{path} records other settings ({previous['params']}); use a new "
          f"--output_dir or delete {out_dir}")
    return
  images.atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True)
                                   + "\n").encode("utf-8"))


def prepare_targets(input_dir: str, output_dir: str, operator: str,
                    workers: int = 1, max_side: Optional[int] = None,
                    params: Optional[dict] = None, progress: bool = True,
                    log: Callable[[str], None] = print) -> Dict[str, object]:
  """Writes `output_dir/<operator>/<name>.png` for every image of input_dir.

  Args:
    input_dir: folder of JPEG/PNG/TIFF images (not recursive).
    output_dir: root of the targets; the operator's sub-folder is created.
    operator: "local_laplacian" or "nonlocal_dehaze".
    workers: processes (spawned); 1 runs in this process.
    max_side: resize so the longest side is at most this, before the operator.
    params: operator keyword arguments; default `operator_params(operator)`.
    progress: show a tqdm progress bar.
    log: where the summary lines go.

  Returns:
    {"total", "written", "skipped" (already done), "failed" (count),
     "failed_files" (list of "path: reason")}.

  Raises:
    FileNotFoundError / NotADirectoryError: input_dir is missing.
    config.ConfigError: outputs exist with different recorded settings.
  """
  if operator not in OPERATORS:
    raise ValueError(f"unknown operator {operator!r}; one of {OPERATORS}")
  if not os.path.exists(input_dir):
    raise FileNotFoundError(f"--input_dir {input_dir}: no such folder")
  if not os.path.isdir(input_dir):
    raise NotADirectoryError(f"--input_dir {input_dir}: not a folder")
  params = dict(params if params is not None else operator_params(operator))
  out_dir = os.path.join(output_dir, operator)
  os.makedirs(out_dir, exist_ok=True)
  _check_params(out_dir, operator, params)

  failed: List[str] = []
  tasks, seen, skipped = [], {}, 0
  paths = images.list_images([input_dir])
  for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in seen:  # a.jpg and a.png would write the same target.
      failed.append(f"{path}: same name as {seen[name]}")
      continue
    seen[name] = path
    out_path = os.path.join(out_dir, name + ".png")
    if os.path.exists(out_path):
      skipped += 1
      continue
    tasks.append((path, out_path, operator, params, max_side))
  log(f"prep-targets: {len(paths)} images in {input_dir}, {skipped} already "
      f"done, {len(tasks)} to write with {operator} {params}")

  bar = tqdm.tqdm(total=len(tasks), unit="img", disable=not progress,
                  file=sys.stderr)
  if workers > 1 and len(tasks) > 1:
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(tasks))) as pool:
      results = []
      for result in pool.imap_unordered(_process, tasks):
        results.append(result)
        bar.update(1)
  else:
    results = []
    for task in tasks:
      results.append(_process(task))
      bar.update(1)
  bar.close()
  failed += [error for _, error in results if error]  # names the path
  written = sum(1 for _, error in results if error is None)
  log(f"prep-targets: wrote {written}, skipped {skipped} done, "
      f"{len(failed)} unreadable")
  for line in sorted(failed):
    log(f"  skipped unreadable: {line}")
  return {"total": len(paths), "written": written, "skipped": skipped,
          "failed": len(failed), "failed_files": sorted(failed)}
