"""Figures and the HTML report of nima-enhance-demo.

Reuses the enhancer's figure helpers (comparison grids, box plots) so the demo
shows exactly what enhance-eval writes for real data.
"""

from __future__ import annotations

import html
import os
from typing import Dict, List, Sequence

import numpy as np

from nima_enhance.data import fivek
from nima_enhance.data import image_write
from nima_enhance.enhance import inference as enhancement
from nima_enhance.enhance import report as enhance_report


def distribution_figure(path: str, examples: Sequence[Dict[str, object]]
                       ) -> None:
  """Images over their true and predicted rating distributions (Fig. 4)."""
  plt = enhance_report._pyplot()  # pylint: disable=protected-access
  n = len(examples)
  fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 5.2),
                           gridspec_kw={"height_ratios": [1.1, 1]})
  axes = np.asarray(axes).reshape(2, n)
  buckets = np.arange(1, 11)
  for column, example in enumerate(examples):
    top, bottom = axes[0, column], axes[1, column]
    top.imshow(np.clip(example["image"], 0, 1))
    top.set_title(example["degradation"], fontsize=9)
    top.axis("off")
    true, pred = example["true"], example["predicted"]
    bottom.bar(buckets - 0.2, true, width=0.4, label="ratings")
    bottom.bar(buckets + 0.2, pred, width=0.4, label="NIMA")
    bottom.set_xticks(buckets)
    bottom.set_title(f"mean {np.dot(true, buckets):.2f} / "
                     f"NIMA {np.dot(pred, buckets):.2f}", fontsize=9)
    if column == 0:
      bottom.legend(fontsize=8)
  enhance_report._save(fig, path)  # pylint: disable=protected-access


def enhancement_figures(data_dir: str, figure_dir: str, l2_dir: str,
                        nima_dir: str, evals: Dict[str, Dict]) -> List[str]:
  """The Fig. 6 box plot and Figs. 7-9 style side-by-side comparisons.

  Returns:
    paths of the comparison images (relative to the report folder's figures).
  """
  l2_rows = evals["can_l2"]["per_image"]
  nima_rows = evals["can_nima"]["per_image"]
  enhance_report.box_plot(
      os.path.join(figure_dir, "nima_scores.png"),
      {"input": [r["nima_input"] for r in l2_rows],
       "reference": [r["nima_reference"] for r in l2_rows],
       "CAN(L2)": [r["nima_output"] for r in l2_rows],
       "CAN(L2+NIMA)": [r["nima_output"] for r in nima_rows]},
      title=f"NIMA mean scores of {len(l2_rows)} test images (Fig. 6)")
  l2 = enhancement.load_enhancer(l2_dir)
  with_nima = enhancement.load_enhancer(nima_dir)
  pairs, report = fivek.find_pairs(data_dir, "local_laplacian", "test")
  written = []
  for name, source, reference in fivek.iterate_pairs(pairs, report):
    path = os.path.join(figure_dir, f"compare_{name}.png")
    enhance_report.comparison_grid(
        path, [source, reference, l2(source), with_nima(source)],
        ["input", "reference (local Laplacian)", "CAN(L2)", "CAN(L2+NIMA)"])
    written.append(os.path.basename(path))
  return written


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
  head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
  body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r)
                 + "</tr>" for r in rows)
  return f"<table><tr>{head}</tr>{body}</table>"


def _stat(stats: Dict[str, float]) -> str:
  return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


_REAL_DATA_COMMANDS = """\
# NIMA on the real AVA (D/AVA.txt, D/images/<id>.jpg); ImageNet weights download once
nima-train --ava_dir /data/ava --model_dir runs/nima --gin_file nima/inception_v2.gin
nima-eval  --ava_dir /data/ava --model_dir runs/nima --split test
# Targets for the enhancer on MIT-Adobe FiveK (D/input/<name>.*)
prep-targets --input_dir /data/fivek/input --output_dir /data/fivek \\
    --operator local_laplacian --max_side 640 --workers 8
# CAN with plain L2 (Chen et al.) and with the NIMA loss (gamma = 1e-4)
enhance-train --data_dir /data/fivek --model_dir runs/can_l2 --gin_file enhance/tone_l2.gin
enhance-train --data_dir /data/fivek --model_dir runs/can_nima --nima_model_dir runs/nima \\
    --gin_file enhance/tone_nima.gin
enhance-eval --data_dir /data/fivek --target local_laplacian --model_dir runs/can_nima \\
    --nima_model_dir runs/nima --output_dir runs/can_nima/eval
nima-export --model_dir runs/can_nima --kind enhancer --export_dir exports/can
"""


def write_report(output_dir: str, summary: Dict[str, object],
                 comparisons: Sequence[str]) -> str:
  """Writes output_dir/report.html (figures referenced from figures/)."""
  nima = summary["nima"]
  enh = summary["enhancement"]
  l2, with_nima = enh["can_l2"], enh["can_nima"]
  nima_table = _table(
      ["model", "accuracy", "LCC", "SRCC", "EMD (r=1)", "test images"],
      [["demo NIMA (small_cnn, from scratch)", f"{100 * nima['accuracy']:.1f}%",
        f"{nima['lcc']:.3f}", f"{nima['srcc']:.3f}", f"{nima['emd']:.3f}",
        nima["num_images"]]])
  enhance_table = _table(
      ["", "PSNR to target (dB)", "SSIM to target", "NIMA mean score"],
      [["input", _stat(l2["psnr_input"]), _stat(l2["ssim_input"]),
        _stat(l2["nima_input"])],
       ["reference (local Laplacian)", "-", "-", _stat(l2["nima_reference"])],
       ["CAN(L2), gamma = 0", _stat(l2["psnr_output"]),
        _stat(l2["ssim_output"]), _stat(l2["nima_output"])],
       [f"CAN(L2+NIMA), gamma = {with_nima['gamma']:g}",
        _stat(with_nima["psnr_output"]), _stat(with_nima["ssim_output"]),
        _stat(with_nima["nima_output"])]])
  timing_table = _table(["stage", "seconds"],
                        [[t["stage"], t["seconds"]] for t in summary["timings"]])
  grids = "".join(f'<p><img src="figures/{html.escape(c)}"></p>'
                  for c in comparisons)
  exports = _table(["model", "SavedModel"],
                   [[k, os.path.relpath(v, output_dir)]
                    for k, v in summary["exports"].items()])
  page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>nima_enhance demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;
padding:4px 8px;text-align:left}}img{{max-width:100%}}
.note{{background:#fff4d6;padding:0.7em;border-left:4px solid #e0a800}}
pre{{background:#f4f4f4;padding:0.8em;overflow-x:auto}}</style></head><body>
<h1>Learned Perceptual Image Enhancement: demo</h1>
<p class="note"><b>Read this first.</b> The NIMA model in this demo was trained
from random weights, in minutes, on crops of scikit-image's bundled photographs
with synthetic degradations (blur, noise, JPEG, under/over exposure, flat
contrast) and simulated ratings whose mean falls with the degradation. It is
<b>not</b> trained on AVA and predicts technical quality, not aesthetics. The
enhancer is trained on a handful of small pairs of the bundled photographs for
{summary['settings']['can_steps']} steps (evaluated on {l2['num_images']}
held-out pairs) instead of FiveK for 5 million. The
numbers show the mechanics of the paper, not its results.</p>
<p>Run {'(quick) ' if summary['quick'] else ''}finished in
{summary['total_seconds']:.0f} s.</p>

<h2>1. NIMA: predicted rating distributions</h2>
<p>Held-out crops: true rating histogram versus NIMA's prediction (like the
paper's Fig. 4).</p>
<p><img src="figures/nima_distributions.png"></p>
<h3>Table 1 metrics on held-out crops</h3>
{nima_table}

<h2>2. Enhancement: CAN with and without the NIMA loss</h2>
<p>Targets are the local Laplacian filter (detail enhancement preset) of each
input. CAN(L2) is trained with gamma = 0 (Chen et al.), CAN(L2+NIMA) with the
perceptual loss l = L2 + gamma (10 - NIMA), NIMA frozen.</p>
{enhance_table}
<p><img src="figures/nima_scores.png"></p>
<h3>Side by side (test images, like Figs. 7-9)</h3>
{grids}

<h2>3. Exported SavedModels</h2>
{exports}
<p>Serve them with TF Serving or load them with <code>tf.saved_model.load</code>
(see docs/serving.md).</p>

<h2>4. The same on the real data</h2>
<pre>{html.escape(_REAL_DATA_COMMANDS)}</pre>

<h2>Timings</h2>
{timing_table}
</body></html>
"""
  path = os.path.join(output_dir, "report.html")
  image_write.atomic_write_bytes(path, page.encode("utf-8"))
  return path
