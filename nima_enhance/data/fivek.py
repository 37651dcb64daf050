"""FiveK-style enhancement pairs: `D/input/<name>.*` -> `D/<target>/<name>.png`.

Targets are the 16-bit PNGs that prep-targets writes (`<target>` is the
operator name, e.g. local_laplacian or nonlocal_dehaze). The split is over the
sorted input names *before* any pair is dropped, so adding a late target never
moves an image between train and test: the first half (rounded up) trains,
the second half tests, unless a split file lists the test names.

This module is the files side (matching, splits, the strict decode check,
host-side headers, reading pairs at their original size for evaluation); it
holds no graph code. The training pipeline over these pairs is
`data/fivek_pipeline.py`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from nima_enhance.data import image_check
from nima_enhance.data import image_files
from nima_enhance.data import image_headers
from nima_enhance.data import images
from nima_enhance.data import splits

INPUT_DIR = "input"
MANIFEST_NAME = "nima_manifest.json"


@dataclasses.dataclass
class PairReport:
  """What was found and what was skipped (name -> reason)."""
  found: int = 0
  skipped: Dict[str, str] = dataclasses.field(default_factory=dict)

  def summary(self) -> str:
    text = f"{self.found} pairs, {len(self.skipped)} skipped"
    if self.skipped:
      names = sorted(self.skipped)
      shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
      text += f" ({shown})"
    return text


@dataclasses.dataclass
class Pairs:
  """Matched (input, target) files of one split, sorted by name."""
  names: List[str]
  inputs: List[str]
  targets: List[str]
  # int64 [n, 4] each, or None (read when training needs them): the files'
  # headers as `with_headers` reads them on the host (format id, stored
  # height, width, EXIF orientation; a zero format: unknown, parsed in the
  # graph). `fivek_pipeline.make_train_dataset` plans each pair's decode
  # from them instead of parsing both headers in the graph.
  input_headers: Optional[np.ndarray] = None
  target_headers: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.names)


def with_headers(pairs: Pairs, num_threads: int = 8) -> Pairs:
  """A copy of `pairs` carrying every file's header, read on the host.

  `fivek_pipeline.make_train_dataset` calls it when the pairs carry none
  (evaluation and TFDS builds never need them); the training graph then
  parses no header (in a tf.data map function the parse's small ops and
  branches cost as much as a third of decoding an AVA-size JPEG).
  """
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    # An unreadable file gets a zero (unknown) format: the graph parses it.
    fields = list(pool.map(
        lambda path: image_headers.read_header_fields(path) or [0, 0, 0, 1],
        list(pairs.inputs) + list(pairs.targets)))
  rows = np.asarray(fields, np.int64).reshape(2, len(pairs), 4)
  return Pairs(list(pairs.names), list(pairs.inputs), list(pairs.targets),
               rows[0], rows[1])


def _input_files(data_dir: str,
                 duplicates: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  """name (file stem) -> input path; raises if D/input is missing.

  A second input with the same stem (a.jpg, a.png: one target a.png) is
  left out and recorded in `duplicates` (name -> reason).
  """
  input_dir = os.path.join(data_dir, INPUT_DIR)
  if not os.path.isdir(input_dir):
    raise FileNotFoundError(f"{input_dir}: no such folder (expected "
                            f"{data_dir}/input/<name>.* and "
                            f"{data_dir}/<target>/<name>.png)")
  files = {}
  for path in image_files.scan_inputs([input_dir]).files:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in files:
      if duplicates is not None:
        duplicates[name] = (f"{path}: same name as {files[name]} (one target "
                            f"per name; rename one)")
      continue
    files[name] = path
  return files


def read_split_file(path: str) -> List[str]:
  """Test names, one per line (file names or stems; '#' comments allowed)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--split_file {path}: no such file")
  names = []
  with open(path, "r", encoding="utf-8") as f:
    for line in f:
      line = line.split("#", 1)[0].strip()
      if line:
        names.append(os.path.splitext(os.path.basename(line))[0])
  return names


def split_names(names: Sequence[str], split: str,
                test_names: Optional[Sequence[str]] = None) -> List[str]:
  """The names of `split` ("train", "test" or "all") among sorted `names`."""
  names = sorted(names)
  if splits.check_split(split) == "all":
    return names
  if test_names is not None:
    test = set(test_names)
    return [n for n in names if (n in test) == (split == "test")]
  num_train = len(names) - len(names) // 2  # the first half, rounded up
  return names[:num_train] if split == "train" else names[num_train:]


def find_pairs(data_dir: str, target: str, split: str = "train",
               split_file: Optional[str] = None,
               cache_dir: Optional[str] = None) -> Tuple[Pairs, PairReport]:
  """Matches inputs to targets in one split; reports and skips the rest.

  Args:
    data_dir: folder with input/ and <target>/.
    target: target folder name (the prep-targets operator).
    split: "train", "test" or "all".
    split_file: optional file listing the test names.
    cache_dir: where the decode verdicts are cached when data_dir is
      read-only.

  Returns:
    (pairs, report). Inputs without a target PNG, inputs whose stem another
    input already has, and files the strict reading contract refuses
    (`images.read_image`; verdicts cached in data_dir/nima_manifest.json)
    are skipped and listed in the report.

  Raises:
    FileNotFoundError: data_dir/input or data_dir/<target> does not exist.
  """
  duplicates: Dict[str, str] = {}
  inputs = _input_files(data_dir, duplicates)
  target_dir = os.path.join(data_dir, target)
  if not os.path.isdir(target_dir):
    raise FileNotFoundError(f"{target_dir}: no such folder; run prep-targets "
                            f"--operator {target} first")
  test_names = read_split_file(split_file) if split_file else None
  if test_names is not None:
    unknown = sorted(set(test_names) - set(inputs))
    if unknown:
      logging.warning("%d names in %s have no input image: %s", len(unknown),
                      split_file, ", ".join(unknown[:10]))
  pairs = Pairs([], [], [])
  report = PairReport()
  report.skipped.update(duplicates)
  candidates = []
  for name in split_names(list(inputs), split, test_names):
    target_path = os.path.join(target_dir, name + ".png")
    if not os.path.isfile(target_path):
      report.skipped[name] = f"no target {target}/{name}.png"
      continue
    candidates.append((name, inputs[name], target_path))
  # The strict decode of every file once (cached), so training never meets a
  # file it cannot decode.
  verdicts = image_check.check_files(
      [p for _, i, t in candidates for p in (i, t)],
      cache_file=_manifest_file(data_dir, cache_dir), log=logging.info)
  for name, input_path, target_path in candidates:
    reason = verdicts[input_path] or verdicts[target_path]
    if reason:
      report.skipped[name] = reason
      continue
    pairs.names.append(name)
    pairs.inputs.append(input_path)
    pairs.targets.append(target_path)
  report.found = len(pairs)
  return pairs, report


def _manifest_file(data_dir: str, cache_dir: Optional[str]) -> Optional[str]:
  """Where find_pairs caches its verdicts: data_dir, else cache_dir."""
  for directory in (data_dir, cache_dir):
    if directory and os.access(directory, os.W_OK):
      return os.path.join(directory, MANIFEST_NAME)
  return None


def iterate_pairs(pairs: Pairs, report: Optional[PairReport] = None):
  """Yields (name, input, target) at original size; unreadable pairs skipped.

  Decoding failures are added to `report` (name -> reason) when given.
  """
  for name, input_path, target_path in zip(pairs.names, pairs.inputs,
                                           pairs.targets):
    try:
      source = images.read_image(input_path)
      target = images.read_image(target_path)
    except images.ImageReadError as err:
      logging.warning("skipped %s: %s", name, err)
      if report is not None:
        report.skipped[name] = str(err)
      continue
    if target.shape != source.shape:
      target = images.resize(target, source.shape[:2])
    yield name, source, target
