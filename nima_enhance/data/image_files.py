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

The strict decode of every file (`image_check.check_files`) sits one layer
up, beside the decoder it runs: this module imports no other module of the
project, so `images` can import it (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Sequence

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
