"""Per-image air-lights for prep-targets: the CSV a user gives, the one a run writes.

The estimate of `data_prep.airlight` can be off on some scenes
(docs/airlight.md), and a wrong air-light gives the dehazed target a colour
cast. Where a photo's air-light is known (measured on its sky or horizon, or
published with it), `prep-targets --airlight_csv FILE` gives it per image,
and every dehazing run records the air-light it used for each image in
`<output>/nonlocal_dehaze/airlight.csv` (same format), so the estimates can
be reviewed and the wrong ones replaced.

Format: one row per image, `name,r,g,b`. `name` is the input's file name
(`a.jpg`) or its stem (`a`). r, g, b are in (0, 1], in the image's own
(gamma-encoded) values, like `dehaze_params.airlight`. Blank lines, lines
starting with `#` and a `name,r,g,b` header are ignored.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

RECORD_FILE = "airlight.csv"
HEADER = ("name", "r", "g", "b")


class AirlightTableError(ValueError):
  """A malformed air-light CSV; the message names the file and line."""


def parse_table(text: str, source: str = "<csv>") -> Dict[str, List[float]]:
  """Parses `name,r,g,b` rows into {name: [r, g, b]}.

  Raises:
    AirlightTableError: a row without four fields, a value that is not a
      number in (0, 1], or a name given twice (names the source and line).
  """
  table: Dict[str, List[float]] = {}
  for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
    cells = [cell.strip() for cell in row]
    if not any(cells) or cells[0].startswith("#"):
      continue
    if tuple(cell.lower() for cell in cells) == HEADER:
      continue
    where = f"{source}:{number}"
    if len(cells) != 4 or not cells[0]:
      raise AirlightTableError(
          f"{where}: expected name,r,g,b, got {','.join(cells)!r}")
    try:
      values = [float(cell) for cell in cells[1:]]
    except ValueError:
      raise AirlightTableError(
          f"{where}: r, g, b must be numbers, got {','.join(cells[1:])!r}"
      ) from None
    if not all(0.0 < value <= 1.0 for value in values):
      raise AirlightTableError(
          f"{where}: r, g, b must lie in (0, 1] (the image's own values), "
          f"got {values}")
    if cells[0] in table:
      raise AirlightTableError(f"{where}: {cells[0]!r} is given twice")
    table[cells[0]] = values
  return table


def read_table(path: str) -> Dict[str, List[float]]:
  """Reads an air-light CSV (local or any tf.io.gfile path).

  Raises:
    AirlightTableError: the file is missing, unreadable or malformed.
  """
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      text = f.read()
  except (tf.errors.OpError, UnicodeDecodeError) as err:
    reason = getattr(err, "message", None) or type(err).__name__
    raise AirlightTableError(f"{path}: cannot read ({reason})") from None
  return parse_table(text, path)


def lookup(table: Mapping[str, Sequence[float]],
           input_path: str) -> Optional[List[float]]:
  """The row for an input: by its file name first, then by its stem."""
  name = os.path.basename(input_path)
  for key in (name, os.path.splitext(name)[0]):
    if key in table:
      return [float(value) for value in table[key]]
  return None


def unmatched(table: Mapping[str, Sequence[float]],
              input_paths: Sequence[str]) -> List[str]:
  """The table's names that match no input (sorted): likely typos."""
  known = set()
  for path in input_paths:
    name = os.path.basename(path)
    known.update((name, os.path.splitext(name)[0]))
  return sorted(name for name in table if name not in known)


def format_table(rows: Mapping[str, Sequence[float]]) -> str:
  """CSV text with a header, one `name,r,g,b` row per name, sorted."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(HEADER)
  for name in sorted(rows):
    writer.writerow([name] + [f"{float(value):.4f}" for value in rows[name]])
  return out.getvalue()
