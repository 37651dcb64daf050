"""Figures of the enhancer's evaluation: comparison grids, box plots, sweeps.

matplotlib with the Agg backend (no display needed); every figure is rendered
to memory and written atomically like every other output of the project.
"""

from __future__ import annotations

import io
from typing import Dict, Sequence

import numpy as np

from nima_enhance.data import image_write
from nima_enhance.data import images

# Grids show images at most this many pixels on their longest side: enough to
# judge tone and detail, small enough for hundreds of test images.
GRID_MAX_SIDE = 768


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg", force=True)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path: str) -> None:
  plt = _pyplot()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)
  image_write.atomic_write_bytes(path, buffer.getvalue())


def comparison_grid(path: str, panels: Sequence[np.ndarray],
                    titles: Sequence[str]) -> None:
  """Writes panels side by side (input | reference | output) with titles."""
  plt = _pyplot()
  shown = [images.resize_max_side(np.clip(p, 0.0, 1.0), GRID_MAX_SIDE)
           for p in panels]
  height, width = shown[0].shape[:2]
  scale = 4.0 / max(height, width)
  fig, axes = plt.subplots(1, len(shown), figsize=(
      len(shown) * max(width * scale, 1.5), max(height * scale, 1.5) + 0.4))
  for ax, panel, title in zip(np.atleast_1d(axes), shown, titles):
    ax.imshow(panel, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
  _save(fig, path)


def box_plot(path: str, groups: Dict[str, Sequence[float]],
             title: str = "", ylabel: str = "NIMA mean score") -> None:
  """Box plot of one score per image for each group (the paper's Fig. 6)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(1.8 * len(groups) + 1.5, 4))
  labels = list(groups)
  ax.boxplot([list(groups[k]) for k in labels], showmeans=True)
  ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  ax.grid(axis="y", alpha=0.3)
  _save(fig, path)


def sweep_plot(path: str, gammas: Sequence[float],
               series: Dict[str, Sequence[float]]) -> None:
  """One panel per metric (PSNR, SSIM, NIMA) against gamma."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.2))
  # gamma = 0 cannot sit on a log axis; it is drawn at the first tick.
  positions = np.arange(len(gammas))
  for ax, (name, values) in zip(np.atleast_1d(axes), series.items()):
    ax.plot(positions, values, "o-")
    ax.set_xticks(positions, [f"{g:g}" for g in gammas], fontsize=8)
    ax.set_xlabel("gamma")
    ax.set_title(name)
    ax.grid(alpha=0.3)
  _save(fig, path)
