"""AVA on disk: the ratings file, splits, and the checked-file manifest.

Layout (the real AVA download): `D/AVA.txt`, `D/images/<id>.jpg`, optionally
`D/aesthetics_image_lists/generic_test.jpgl` (one image id per line).

AVA.txt has 15 space-separated columns per line: index, image id, the vote
counts for ratings 1..10, two semantic tag ids and the challenge id.

The real download contains missing, truncated and non-image files. Rather than
discover them inside tf.data (where a bad file either crashes training or is
silently dropped), `check_images` decodes every file once, in parallel threads,
and caches the verdict per (name, size, mtime) in a JSON manifest, so later runs
only re-check files that changed. `load_split` does the three steps: parse,
select a split, drop the unusable files.

The tf.data pipeline over the checked files, and the NIMA preprocessing that
scoring and serving share with it, are in `data/ava_pipeline.py`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import gin
import numpy as np

from nima_enhance.data import image_headers
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.data import splits

# AVA's rating scale, 1..10: the one definition (metrics, models use it).
NUM_BUCKETS = 10
AVA_COLUMNS = 15
MANIFEST_NAME = "nima_manifest.json"
_MANIFEST_VERSION = 3  # 2: strict decode, EXIF/WebP contract; 3: headers
# Version-2 manifests are still read: their verdicts stand, and a usable
# file's header (cheap: no decode) is read once and added.
_READABLE_VERSIONS = (2, 3)


class AvaFormatError(ValueError):
  """A malformed AVA.txt; the message names the file and line."""


@dataclasses.dataclass
class AvaRatings:
  """Parsed AVA.txt: image ids and their normalized rating histograms."""
  image_ids: List[str]
  distributions: np.ndarray  # float32 [n, 10], rows sum to 1
  vote_counts: np.ndarray  # int64 [n]
  # int64 [n, 4] or None: each file's header as `check_images` read it
  # (format id, stored height, width, EXIF orientation; a zero format:
  # unknown). `ava_pipeline.make_dataset` plans each file's decode from it
  # instead of parsing headers in the graph.
  headers: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.image_ids)

  def subset(self, ids: Sequence[str]) -> "AvaRatings":
    index = {image_id: i for i, image_id in enumerate(self.image_ids)}
    rows = [index[i] for i in ids]
    return AvaRatings([self.image_ids[r] for r in rows],
                      self.distributions[rows], self.vote_counts[rows],
                      None if self.headers is None else self.headers[rows])

  def with_headers(self, headers: Dict[str, Sequence[int]]) -> "AvaRatings":
    """A copy carrying `headers` (id -> 4 ints; ids not in it: unknown)."""
    rows = np.zeros((len(self.image_ids), 4), np.int64)
    for i, image_id in enumerate(self.image_ids):
      if image_id in headers:
        rows[i] = headers[image_id]
    return AvaRatings(list(self.image_ids), self.distributions,
                      self.vote_counts, rows)


def parse_ava_txt(path: str) -> AvaRatings:
  """Parses AVA.txt into normalized rating distributions.

  Raises:
    FileNotFoundError: the file does not exist.
    AvaFormatError: a line is malformed (names file and line number).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: AVA ratings file not found")
  ids, rows = [], []
  seen = set()
  with open(path, "r", encoding="utf-8", errors="replace") as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != AVA_COLUMNS:
        raise AvaFormatError(f"{path}:{line_number}: expected {AVA_COLUMNS} "
                             f"columns, got {len(fields)}")
      try:
        counts = [int(v) for v in fields[2:12]]
        int(fields[1])
      except ValueError:
        raise AvaFormatError(f"{path}:{line_number}: image id and rating "
                             "counts must be integers") from None
      if min(counts) < 0 or sum(counts) == 0:
        raise AvaFormatError(f"{path}:{line_number}: rating counts must be "
                             "non-negative with at least one vote")
      if fields[1] in seen:
        raise AvaFormatError(f"{path}:{line_number}: duplicate image id "
                             f"{fields[1]}")
      seen.add(fields[1])
      ids.append(fields[1])
      rows.append(counts)
  if not ids:
    raise AvaFormatError(f"{path}: no ratings found")
  counts = np.asarray(rows, np.float64)
  totals = counts.sum(axis=1)
  return AvaRatings(ids, (counts / totals[:, None]).astype(np.float32),
                    totals.astype(np.int64))


def read_id_list(path: str) -> List[str]:
  """Reads a .jpgl list (one image id per line, optional .jpg suffix)."""
  with open(path, "r", encoding="utf-8") as f:
    return [os.path.splitext(l.strip())[0] for l in f if l.strip()]


@gin.configurable(denylist=["ava_dir", "image_ids"])
def split_ids(ava_dir: str, image_ids: Sequence[str], split: str,
              test_fraction: float = 0.2, seed: int = 0,
              test_list: str = "aesthetics_image_lists/generic_test.jpgl"
             ) -> List[str]:
  """The ids of `split` ("train", "test" or "all").

  The official `generic_test.jpgl` list is the test set when present; otherwise
  a seeded random `test_fraction` of the ids (the paper's 80/20 split). The
  seeded split depends only on the id set and seed, not on file order.
  """
  if splits.check_split(split) == "all":
    return list(image_ids)
  list_path = os.path.join(ava_dir, test_list)
  if os.path.isfile(list_path):
    test = set(read_id_list(list_path))
    logging.info("Test split from %s (%d ids)", list_path, len(test))
  else:
    ordered = sorted(image_ids, key=lambda s: (len(s), s))
    rng = np.random.RandomState(seed)
    permutation = rng.permutation(len(ordered))
    num_test = int(round(test_fraction * len(ordered)))
    test = {ordered[i] for i in permutation[:num_test]}
  return [i for i in image_ids if (i in test) == (split == "test")]


def image_path(ava_dir: str, image_id: str) -> str:
  return os.path.join(ava_dir, "images", f"{image_id}.jpg")


@dataclasses.dataclass
class CheckReport:
  """Which image ids are usable, and why the others are not."""
  good: List[str]
  skipped: Dict[str, str]  # id -> reason
  # id -> (format id, stored height, width, EXIF orientation) of good files
  headers: Dict[str, Tuple[int, int, int, int]] = dataclasses.field(
      default_factory=dict)

  def counts_by_reason(self) -> Dict[str, int]:
    """Skipped files per kind ("missing", "corrupt", "not-an-image", ...)."""
    reasons: Dict[str, int] = {}
    for reason in self.skipped.values():
      kind = reason.split(":", 1)[0]
      reasons[kind] = reasons.get(kind, 0) + 1
    return reasons

  def summary(self) -> str:
    reasons = self.counts_by_reason()
    detail = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
    return (f"{len(self.good)} images usable, {len(self.skipped)} skipped"
            + (f" ({detail})" if detail else ""))


def _check_one(path: str) -> Tuple[Optional[str], Optional[List[int]]]:
  """(None, header fields) if the file passes the strict reading contract,
  else ("<kind>: why", None).

  The full decode of `images.decode_image_bytes` (corrupt JPEG data refused),
  restricted to what the training graph decodes (no TIFF).
  """
  verdict = _verdict(path)
  return verdict, (None if verdict
                   else image_headers.read_header_fields(path))


def _verdict(path: str) -> Optional[str]:
  """The verdict of `_check_one`."""
  if not os.path.exists(path):
    return "missing"
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as err:
    return f"unreadable: {err.strerror}"
  if not data:
    return "empty"
  problem = images.bytes_problem(data, graph_only=True)
  if problem:
    kind = "too-large" if "above the limit" in problem else "not-an-image"
    return f"{kind}: {problem}"
  try:
    images.decode_image_bytes(data, source=path)
  except images.ImageReadError as err:
    return "corrupt: " + str(err).split(": ", 1)[-1]
  return None


def _manifest_path(ava_dir: str, cache_dir: Optional[str]) -> Optional[str]:
  for directory in (ava_dir, cache_dir):
    if directory and os.access(directory, os.W_OK):
      return os.path.join(directory, MANIFEST_NAME)
  return None


def check_images(ava_dir: str, image_ids: Sequence[str],
                 cache_dir: Optional[str] = None,
                 num_threads: int = 8) -> CheckReport:
  """Decodes every image once and caches which are usable.

  Args:
    ava_dir: AVA folder.
    image_ids: ids to check.
    cache_dir: fallback folder for the manifest when ava_dir is read-only.
    num_threads: decoding threads (TF decoders release the GIL).

  Returns:
    CheckReport with the usable ids (input order kept) and skip reasons.
  """
  manifest_file = _manifest_path(ava_dir, cache_dir)
  cached: Dict[str, list] = {}
  for candidate in filter(None, [manifest_file,
                                 cache_dir and os.path.join(cache_dir,
                                                            MANIFEST_NAME)]):
    if os.path.isfile(candidate):
      try:
        with open(candidate, "r", encoding="utf-8") as f:
          content = json.load(f)
        if content.get("version") in _READABLE_VERSIONS:
          cached = content.get("files", {})
          break
      except (OSError, ValueError):
        pass  # A damaged cache is rebuilt.

  def stat_key(path):
    try:
      st = os.stat(path)
      return [st.st_size, int(st.st_mtime_ns)]
    except OSError:
      return None

  # Entries: [size, mtime_ns, verdict] + the header fields of a good file.
  verdicts: Dict[str, Optional[str]] = {}
  to_check, to_read = [], []
  for image_id in image_ids:
    path = image_path(ava_dir, image_id)
    key = stat_key(path)
    entry = cached.get(image_id)
    if key is None:
      verdicts[image_id] = "missing"
    elif entry is not None and entry[:2] == key:
      verdicts[image_id] = entry[2]
      if entry[2] is None and len(entry) != 7:
        to_read.append((image_id, path))
    else:
      to_check.append((image_id, path, key))
  if to_check or to_read:
    logging.info("Checking %d image files, reading %d headers (cached "
                 "verdicts for %d)", len(to_check), len(to_read),
                 len(image_ids) - len(to_check))
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      results = pool.map(lambda item: _check_one(item[1]), to_check)
      for (image_id, _, key), (verdict, fields) in zip(to_check, results):
        verdicts[image_id] = verdict
        cached[image_id] = key + [verdict] + (fields or [])
      for (image_id, _), fields in zip(
          to_read, pool.map(
              lambda item: image_headers.read_header_fields(item[1]),
              to_read)):
        cached[image_id] = cached[image_id][:3] + (fields or [])
    if manifest_file:
      payload = json.dumps({"version": _MANIFEST_VERSION, "files": cached})
      try:
        image_write.atomic_write_bytes(manifest_file, payload.encode("utf-8"))
      except OSError as err:
        logging.warning("Could not cache the manifest at %s: %s",
                        manifest_file, err)
  good = [i for i in image_ids if verdicts[i] is None]
  skipped = {i: verdicts[i] for i in image_ids if verdicts[i] is not None}
  headers = {i: tuple(cached[i][3:7]) for i in good
             if len(cached.get(i, ())) == 7}
  return CheckReport(good, skipped, headers)


def load_split(ava_dir: str, split: str, cache_dir: Optional[str] = None,
               seed: int = 0) -> Tuple[AvaRatings, CheckReport]:
  """Parses AVA.txt, selects `split`, and drops unusable files (reported).

  Raises:
    FileNotFoundError: ava_dir or AVA.txt missing.
    AvaFormatError: malformed AVA.txt.
    ValueError: no usable image in the split.
  """
  if not os.path.isdir(ava_dir):
    raise FileNotFoundError(f"{ava_dir}: AVA folder not found")
  ratings = parse_ava_txt(os.path.join(ava_dir, "AVA.txt"))
  ids = split_ids(ava_dir, ratings.image_ids, split, seed=seed)
  report = check_images(ava_dir, ids, cache_dir=cache_dir)
  if not report.good:
    raise ValueError(f"{ava_dir}: no usable images in the {split} split "
                     f"({report.summary()})")
  return ratings.subset(report.good).with_headers(report.headers), report
