"""Which files an entry point reads, where its outputs go, which files decode.

The file side of the reading contract (README "Input images"), shared by
nima-score, enhance, prep-targets (local pool and Beam), the AVA manifest and
the FiveK pair check:

- `scan_inputs`: files named on the command line are read whatever their
  extension (by content); folders are scanned (not recursively, sorted) for
  the extensions in `IMAGE_EXTENSIONS`; everything else in a folder
  (other extensions, sub-folders) is listed as skipped with its reason.
  Hidden entries (".name", e.g. our own temporary files) are ignored.
- `output_names`: one output per input, named by the input's stem; inputs
  whose stems collide (a.png, a.tif) keep their extension (a.png.png,
  a.tif.png), so no output overwrites another.
- `refuse_overwrite`: an output folder that holds an input, or an output path
  equal to an input, is refused before any work.
- `check_files`: the strict decode of every file, run once in threads and
  cached per (path, size, mtime) in a JSON manifest.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
from typing import Callable, Dict, List, Optional, Sequence

# What folder scans take (case-insensitive); a file named on the command line
# is read whatever its name, by its content.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp",
                    ".tif", ".tiff")
# Pixels (height * width) above which a file is refused from its header,
# before any decoder allocates memory: 200 MP is above every consumer camera
# (the largest phone sensors give 200 MP) and a float32 RGB copy of it is
# 2.4 GB. Binaries change it with --max_pixels, exports with max_pixels.
DEFAULT_MAX_PIXELS = 200_000_000
_limit = {"max_pixels": DEFAULT_MAX_PIXELS}


def set_max_pixels(max_pixels: int) -> None:
  """Sets the process-wide pixel limit (binaries: from --max_pixels)."""
  if int(max_pixels) < 1:
    raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
  _limit["max_pixels"] = int(max_pixels)


def get_max_pixels() -> int:
  """The process-wide pixel limit (DEFAULT_MAX_PIXELS unless set)."""
  return _limit["max_pixels"]


@dataclasses.dataclass
class Scan:
  """Files to read, and what a folder scan left out (path -> reason)."""
  files: List[str]
  skipped: Dict[str, str]


def scan_inputs(paths: Sequence[str]) -> Scan:
  """Expands command-line paths into image files (see the module doc).

  A path that does not exist is kept in `files` (its read fails, named).
  """
  files: List[str] = []
  skipped: Dict[str, str] = {}
  for path in paths:
    if not os.path.isdir(path):
      files.append(path)
      continue
    for name in sorted(os.listdir(path)):
      if name.startswith("."):
        continue
      full = os.path.join(path, name)
      if os.path.isdir(full):
        skipped[full] = "is a folder (folders are not scanned recursively)"
      elif name.lower().endswith(IMAGE_EXTENSIONS):
        files.append(full)
      else:
        ext = os.path.splitext(name)[1] or "(none)"
        skipped[full] = f"not an image extension ({ext}; reads " + ", ".join(
            e.lstrip(".") for e in IMAGE_EXTENSIONS) + ")"
  return Scan(files, skipped)


def output_names(paths: Sequence[str], ext: str) -> Dict[str, str]:
  """input path -> output file name `<stem>.<ext>`, distinct for every input.

  Inputs whose stems collide (case-insensitively, for case-insensitive file
  systems) keep their own extension: `a.png` -> `a.png.<ext>`.
  """
  def stem(path):
    return os.path.splitext(os.path.basename(path))[0]
  counts: Dict[str, int] = {}
  for path in paths:
    counts[stem(path).lower()] = counts.get(stem(path).lower(), 0) + 1
  names, used = {}, set()
  for path in paths:
    base = stem(path) if counts[stem(path).lower()] == 1 else (
        os.path.basename(path))
    name, n = f"{base}.{ext}", 1
    while name.lower() in used:  # the same file given twice
      n += 1
      name = f"{base}-{n}.{ext}"
    used.add(name.lower())
    names[path] = name
  return names


def refuse_overwrite(inputs: Sequence[str], output_dir: str,
                     flag: str = "--output_dir") -> None:
  """Raises ValueError when output_dir is a folder that holds an input.

  Outputs are named after their inputs; writing them beside the inputs would
  let `a.png` overwrite the original. Compared by real path (links resolved).
  """
  out = os.path.realpath(output_dir)
  for path in inputs:
    if os.path.realpath(os.path.dirname(os.path.abspath(path))) == out:
      raise ValueError(f"{flag} {output_dir} holds the input {path}; choose "
                       "another folder (outputs never replace inputs)")


def check_writable_dir(path: str, flag: str) -> None:
  """Creates `path` if needed and proves it writable; ValueError otherwise."""
  try:
    if os.path.exists(path) and not os.path.isdir(path):
      raise ValueError(f"{flag} {path}: exists and is not a folder")
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, f".write-test-{os.getpid()}")
    with open(probe, "wb"):
      pass
    os.unlink(probe)
  except OSError as err:
    raise ValueError(f"{flag} {path}: not writable ({err.strerror})") from None


def check_writable_file(path: str, flag: str) -> None:
  """Checks that `path` can be (re)written; ValueError otherwise."""
  if os.path.isdir(path):
    raise ValueError(f"{flag} {path}: is a folder")
  check_writable_dir(os.path.dirname(os.path.abspath(path)), flag)
  if os.path.exists(path) and not os.access(path, os.W_OK):
    raise ValueError(f"{flag} {path}: not writable")


def _verdict(path: str, max_pixels: Optional[int]) -> Optional[str]:
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  try:
    images.read_image(path, max_pixels=max_pixels)
  except images.ImageReadError as err:
    return str(err)
  return None


def check_files(paths: Sequence[str], cache_file: Optional[str] = None,
                num_threads: int = 8, max_pixels: Optional[int] = None,
                check: Optional[Callable[[str], Optional[str]]] = None,
                log: Callable[[str], None] = lambda _: None
               ) -> Dict[str, Optional[str]]:
  """Strictly decodes every file once: path -> None (usable) or the reason.

  Verdicts are cached in `cache_file` (JSON, keyed by absolute path, size,
  mtime and the pixel limit) so a rerun only decodes files that changed.

  Args:
    paths: files to check.
    cache_file: manifest path; None disables caching.
    num_threads: decoding threads (JPEG decodes are serialised while libjpeg's
      warnings are captured; the others run in parallel).
    max_pixels: pixel limit (default: get_max_pixels()).
    check: the per-file check (default: images.read_image's verdict).
    log: progress messages.
  """
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  limit = max_pixels or get_max_pixels()
  check = check or (lambda p: _verdict(p, limit))
  cached: Dict[str, list] = {}
  if cache_file and os.path.isfile(cache_file):
    try:
      with open(cache_file, "r", encoding="utf-8") as f:
        content = json.load(f)
      if content.get("version") == 2:
        cached = content.get("files", {})
    except (OSError, ValueError):
      pass  # a damaged cache is rebuilt
  verdicts: Dict[str, Optional[str]] = {}
  todo = []
  for path in paths:
    try:
      st = os.stat(path)
      key = [st.st_size, int(st.st_mtime_ns), limit]
    except OSError as err:
      verdicts[path] = f"{path}: cannot read ({err.strerror})"
      continue
    entry = cached.get(os.path.abspath(path))
    if entry is not None and entry[:3] == key:
      verdicts[path] = entry[3]
    else:
      todo.append((path, key))
  if todo:
    log(f"checking {len(todo)} image files ({len(paths) - len(todo)} cached)")
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
      for (path, key), verdict in zip(todo, pool.map(lambda t: check(t[0]),
                                                      todo)):
        verdicts[path] = verdict
        cached[os.path.abspath(path)] = key + [verdict]
    if cache_file:
      payload = json.dumps({"version": 2, "files": cached})
      try:
        images.atomic_write_bytes(cache_file, payload.encode("utf-8"))
      except OSError as err:
        log(f"could not cache the manifest at {cache_file}: {err.strerror}")
  return verdicts
