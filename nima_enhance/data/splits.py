"""The train/test split names shared by the AVA and FiveK pipelines.

Both pipelines accept the same three names; `check_split` is the one place that
refuses anything else. The rating scale of AVA (`NUM_BUCKETS`) lives in
`data/ava.py`, the lowest layer that needs it.
"""

from __future__ import annotations

SPLITS = ("train", "test", "all")


def check_split(split: str) -> str:
  """Returns `split` if it is one of SPLITS, else raises a one-line ValueError."""
  if split not in SPLITS:
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
  return split
