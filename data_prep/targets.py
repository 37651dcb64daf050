"""The prep-targets job: enhancement targets for every image of a folder.

The binary (flags) is `nima_enhance/bin/prep_targets.py`. Every image of I
(JPEG, PNG, 8/16-bit TIFF) becomes `O/<operator>/<name>.png` (16-bit PNG). The operator settings (gin configurables `llf_params` and
`dehaze_params`) are resolved once in the parent process and recorded in
`O/<operator>/params.json`; a rerun skips finished outputs and refuses to mix
targets made with different settings. Dehazing takes per-image air-lights
from a CSV where the user knows them and records the air-light it used for
every image in `O/nonlocal_dehaze/airlight.csv` (`data_prep.airlight_table`).

One per-image function (`process_image`) does the work for both engines: the
local process pool here (`prepare_targets`; workers are spawned, not forked:
TensorFlow, imported by the image I/O, is not fork-safe once started) and the
Apache Beam pipeline of `data_prep.beam_pipeline` (DirectRunner, Dataflow,
Flink, Spark; docs/scaling.md). Both plan with `plan_targets` and report with
`summarize`, so they write the same files and name the same skipped inputs.
Paths go through tf.io.gfile (local folders, gs:// and other TF file systems).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tqdm

from data_prep import airlight_table
from data_prep import dehaze
from data_prep.local_laplacian import llf_params
from data_prep.local_laplacian import local_laplacian
from nima_enhance import config
from nima_enhance.data import image_files
from nima_enhance.data import image_write
from nima_enhance.data import images

OPERATORS = ("local_laplacian", "nonlocal_dehaze")
PARAMS_FILE = "params.json"
# process_image outcomes.
WRITTEN, DONE, FAILED = "written", "done", "failed"


def operator_params(operator: str) -> dict:
  """The operator's settings from its gin configurable (after parse_gin)."""
  if operator == "local_laplacian":
    return llf_params()
  if operator == "nonlocal_dehaze":
    return dehaze.dehaze_params()
  raise ValueError(f"unknown operator {operator!r}; one of {OPERATORS}")


def _apply(operator: str, image: np.ndarray,
           params: dict) -> Tuple[np.ndarray, Optional[List[float]]]:
  """(target, the air-light used: dehazing only, else None)."""
  if operator == "local_laplacian":
    return local_laplacian(image, **params), None
  dehazed, _, air = dehaze.nonlocal_dehaze(image, **params)
  return dehazed, [float(value) for value in air]


def _is_remote(path: str) -> bool:
  return "://" in path  # gs://, s3://, hdfs://, ram://: tf.io.gfile only


def _read_image(path: str, max_pixels: Optional[int] = None,
                max_side: Optional[int] = None) -> np.ndarray:
  """images.read_image, or its decoder fed through tf.io.gfile for gs:// etc.

  With `max_side`, shrunk so the largest side is at most max_side; a JPEG at
  least twice that size is decoded reduced (`images.decode_max_side`).
  """
  if not _is_remote(path):
    return images.read_image(path, max_pixels=max_pixels, max_side=max_side)
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except tf.errors.OpError as err:
    raise images.ImageReadError(
        f"{path}: cannot read ({err.message or type(err).__name__})") from None
  if not data:
    raise images.ImageReadError(f"{path}: empty file")
  return images.decode_max_side(data, max_side, source=path,
                                max_pixels=max_pixels)


def write_bytes(path: str, data: bytes) -> None:
  """Atomic write to a local path or through tf.io.gfile (gs://, ...).

  Local: `image_write.atomic_write_bytes`. Elsewhere: a temporary name, then a
  rename, so a reader never sees a half-written file under the final name.
  """
  if not _is_remote(path):
    image_write.atomic_write_bytes(path, data)
    return
  tmp_name = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
  try:
    with tf.io.gfile.GFile(tmp_name, "wb") as f:
      f.write(data)
    tf.io.gfile.rename(tmp_name, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(tmp_name):
      tf.io.gfile.remove(tmp_name)
    raise


def _list_inputs(input_dir: str) -> Tuple[List[str], Dict[str, str]]:
  """The images of a folder and what the scan left out (path -> reason).

  Local folders: the shared scan (`image_files.scan_inputs`); remote ones the
  same rule (sorted, not recursive, by extension, hidden names ignored) over
  tf.io.gfile.
  """
  if not _is_remote(input_dir):
    scan = image_files.scan_inputs([input_dir])
    return scan.files, scan.skipped
  files, skipped = [], {}
  for name in sorted(tf.io.gfile.listdir(input_dir)):
    path = os.path.join(input_dir, name.rstrip("/"))
    if name.startswith("."):
      continue
    if name.endswith("/"):
      skipped[path] = "is a folder (folders are not scanned recursively)"
    elif name.lower().endswith(images.IMAGE_EXTENSIONS):
      files.append(path)
    else:
      skipped[path] = "not an image extension"
  return files, skipped


@dataclasses.dataclass(frozen=True)
class TargetTask:
  """One image's job: read `path`, apply the operator, write `out_path`."""
  path: str
  out_path: str
  operator: str
  params: Dict[str, object]
  max_side: Optional[int] = None
  # The reading contract's pixel limit, carried to spawned / Beam workers.
  max_pixels: Optional[int] = None


Outcome = Tuple[str, str, Optional[str], Optional[List[float]]]


def process_image(task: TargetTask) -> Outcome:
  """The per-image job of both engines (local pool and Beam).

  Idempotent: an existing output is left alone (a Beam runner may retry a
  bundle, and a rerun resumes), and the output appears atomically.

  Returns:
    (input path, WRITTEN / DONE / FAILED, reason naming the file or None,
    the air-light used when dehazing wrote the target, else None).
  """
  if tf.io.gfile.exists(task.out_path):
    return task.path, DONE, None, None
  try:
    image = _read_image(task.path, task.max_pixels, task.max_side)
  except images.ImageReadError as err:
    return task.path, FAILED, str(err).splitlines()[0], None
  target, air = _apply(task.operator, image, task.params)
  write_bytes(task.out_path,
              image_write.encode_image(target, "png", bit_depth=16))
  return task.path, WRITTEN, None, air


def _check_params(out_dir: str, operator: str, params: dict,
                  airlights: Optional[Dict[str, List[float]]] = None) -> None:
  """Records the settings; refuses to resume with different ones.

  Per-image air-lights are settings too: a rerun with another table (or
  none) would mix targets made with different air-lights.
  """
  record = {"operator": operator, "params": params}
  if airlights:
    record["airlights"] = airlights
  path = os.path.join(out_dir, PARAMS_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, "r") as f:
      previous = json.load(f)
    if previous != json.loads(json.dumps(record)):
      other = ("other per-image air-lights (--airlight_csv)"
               if previous.get("params") == record["params"]
               else f"other settings ({previous['params']})")
      raise config.ConfigError(
          f"{path} records {other}; use a new --output_dir or delete "
          f"{out_dir}")
    return
  write_bytes(path, (json.dumps(record, indent=2, sort_keys=True)
                     + "\n").encode("utf-8"))


@dataclasses.dataclass
class Plan:
  """What a run will do: the images found, the jobs, what is already done."""
  input_dir: str
  out_dir: str
  operator: str
  params: Dict[str, object]
  paths: List[str]
  tasks: List[TargetTask]
  skipped: int  # outputs already there
  failed: List[str]  # "path: reason" found while planning (name clashes)


def plan_targets(input_dir: str, output_dir: str, operator: str,
                 max_side: Optional[int] = None,
                 params: Optional[dict] = None,
                 airlights: Optional[Dict[str, List[float]]] = None,
                 log: Callable[[str], None] = print) -> Plan:
  """Checks the folders and settings and lists the images still to do.

  Args:
    input_dir, output_dir, operator, max_side, params: as for
      `prepare_targets`.
    airlights: per-image air-lights ({file name or stem: [r, g, b]},
      `airlight_table.read_table`) for "nonlocal_dehaze"; they replace the
      estimate (or `params["airlight"]`) for the images they name.
    log: where a warning about names that match no input goes.

  Raises:
    ValueError: unknown operator, or air-lights for another operator.
    FileNotFoundError / NotADirectoryError: input_dir is missing.
    config.ConfigError: outputs exist with different recorded settings.
  """
  if operator not in OPERATORS:
    raise ValueError(f"unknown operator {operator!r}; one of {OPERATORS}")
  if not tf.io.gfile.exists(input_dir):
    raise FileNotFoundError(f"--input_dir {input_dir}: no such folder")
  if not tf.io.gfile.isdir(input_dir):
    raise NotADirectoryError(f"--input_dir {input_dir}: not a folder")
  if airlights and operator != "nonlocal_dehaze":
    raise ValueError(f"per-image air-lights are for nonlocal_dehaze, not "
                     f"{operator}")
  params = dict(params if params is not None else operator_params(operator))
  out_dir = os.path.join(output_dir, operator)
  paths, left_out = _list_inputs(input_dir)
  if not _is_remote(out_dir):
    # <name>.png targets written into the input folder would replace a.png.
    image_files.refuse_overwrite(paths, out_dir, "--output_dir")
  if airlights:
    stray = airlight_table.unmatched(airlights, paths)
    if stray:
      log(f"prep-targets: {len(stray)} air-light rows match no input (used "
          f"for none): {', '.join(stray[:10])}"
          + (" ..." if len(stray) > 10 else ""))
  tf.io.gfile.makedirs(out_dir)
  _check_params(out_dir, operator, params, airlights)
  plan = Plan(input_dir, out_dir, operator, params, paths, [], 0,
              [f"{p}: {r}" for p, r in left_out.items()])
  seen: Dict[str, str] = {}
  for path in plan.paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in seen:
      # Targets are paired with inputs by name (fivek.find_pairs), so a.jpg
      # and a.png cannot both have one: the second is skipped and named.
      plan.failed.append(f"{path}: same name as {seen[name]} (one target per "
                         "name; rename one)")
      continue
    seen[name] = path
    out_path = os.path.join(out_dir, name + ".png")
    if tf.io.gfile.exists(out_path):
      plan.skipped += 1
      continue
    given = airlight_table.lookup(airlights or {}, path)
    task_params = params if given is None else dict(params, airlight=given)
    plan.tasks.append(TargetTask(path, out_path, operator, task_params,
                                 max_side, image_files.get_max_pixels()))
  return plan


def log_plan(plan: Plan, log: Callable[[str], None]) -> None:
  given = sum(1 for task in plan.tasks
              if task.params.get("airlight") != plan.params.get("airlight"))
  log(f"prep-targets: {len(plan.paths)} images in {plan.input_dir}, "
      f"{plan.skipped} already done, {len(plan.tasks)} to write with "
      f"{plan.operator} {plan.params}"
      + (f" ({given} with a given air-light)" if given else ""))


def record_airlights(plan: Plan, results: Iterable[Outcome]) -> None:
  """Adds the air-lights of the targets written to `airlight.csv` (dehazing).

  Rows of earlier runs are kept (a resumed run adds its own); the file is
  replaced atomically.
  """
  used = {os.path.basename(r[0]): r[3] for r in results
          if r[1] == WRITTEN and r[3] is not None}
  if not used:
    return
  path = os.path.join(plan.out_dir, airlight_table.RECORD_FILE)
  rows = airlight_table.read_table(path) if tf.io.gfile.exists(path) else {}
  rows.update(used)
  write_bytes(path, airlight_table.format_table(rows).encode("utf-8"))


def summarize(plan: Plan, results: Iterable[Outcome],
              log: Callable[[str], None]) -> Dict[str, object]:
  """The counts and the skipped-file lines of a finished run (both engines).

  Returns:
    {"total", "written", "skipped" (already done), "failed" (count),
     "failed_files" (sorted "path: reason")}.
  """
  results = list(results)
  failed = plan.failed + [r[2] for r in results if r[1] == FAILED]
  written = sum(1 for r in results if r[1] == WRITTEN)
  # Outputs that appeared between planning and processing count as done.
  skipped = plan.skipped + sum(1 for r in results if r[1] == DONE)
  log(f"prep-targets: wrote {written}, skipped {skipped} done, "
      f"{len(failed)} unreadable")
  for line in sorted(failed):
    log(f"  skipped unreadable: {line}")
  return {"total": len(plan.paths), "written": written, "skipped": skipped,
          "failed": len(failed), "failed_files": sorted(failed)}


def prepare_targets(input_dir: str, output_dir: str, operator: str,
                    workers: int = 1, max_side: Optional[int] = None,
                    params: Optional[dict] = None, progress: bool = True,
                    log: Callable[[str], None] = print,
                    airlights: Optional[Dict[str, List[float]]] = None
                    ) -> Dict[str, object]:
  """Writes `output_dir/<operator>/<name>.png` for every image of input_dir.

  The local engine: a pool of spawned processes (`workers` > 1) or this
  process. `data_prep.beam_pipeline.prepare_targets_beam` is the same job on
  Apache Beam.

  Args:
    input_dir: folder of JPEG/PNG/TIFF images (not recursive); local or any
      tf.io.gfile path.
    output_dir: root of the targets; the operator's sub-folder is created.
    operator: "local_laplacian" or "nonlocal_dehaze".
    workers: processes (spawned); 1 runs in this process.
    max_side: resize so the longest side is at most this, before the operator.
    params: operator keyword arguments; default `operator_params(operator)`.
    progress: show a tqdm progress bar.
    log: where the summary lines go.
    airlights: nonlocal_dehaze only: {input file name or stem: [r, g, b]}
      air-lights that replace the estimate for those images
      (`airlight_table.read_table`). Every run adds the air-light used for
      each target it writes to `<operator>/airlight.csv`.

  Returns:
    {"total", "written", "skipped" (already done), "failed" (count),
     "failed_files" (list of "path: reason")}.

  Raises:
    FileNotFoundError / NotADirectoryError: input_dir is missing.
    config.ConfigError: outputs exist with different recorded settings.
  """
  plan = plan_targets(input_dir, output_dir, operator, max_side, params,
                      airlights, log)
  log_plan(plan, log)
  bar = tqdm.tqdm(total=len(plan.tasks), unit="img", disable=not progress,
                  file=sys.stderr)
  results = []
  try:
    if workers > 1 and len(plan.tasks) > 1:
      context = multiprocessing.get_context("spawn")
      with context.Pool(min(workers, len(plan.tasks))) as pool:
        for result in pool.imap_unordered(process_image, plan.tasks):
          results.append(result)
          bar.update(1)
    else:
      for task in plan.tasks:
        results.append(process_image(task))
        bar.update(1)
  finally:
    # Also when interrupted: the targets already written keep their rows.
    bar.close()
    record_airlights(plan, results)
  return summarize(plan, results, log)
