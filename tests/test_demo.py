"""nima-enhance-demo --quick end to end (the README's first command)."""

import json
import math
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quick_demo_writes_report_models_and_metrics(tmp_path):
  out = str(tmp_path / "demo")
  proc = subprocess.run(
      [sys.executable, "-m", "nima_enhance.bin.demo", "--output_dir", out,
       "--quick"], capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Progress is shown throughout: every stage is announced.
  for stage in range(1, 9):
    assert f"[{stage}/8]" in proc.stdout
  assert "not on AVA" in proc.stdout

  with open(os.path.join(out, "summary.json")) as f:
    summary = json.load(f)
  nima = summary["nima"]
  for key in ("accuracy", "lcc", "srcc", "emd"):
    assert math.isfinite(nima[key]), key
  # Trained from scratch for 150 steps it already ranks held-out crops.
  assert nima["srcc"] > 0.2 and nima["lcc"] > 0.2
  for key in ("can_l2", "can_nima"):
    result = summary["enhancement"][key]
    assert result["num_images"] >= 2
    for metric in ("psnr_output", "ssim_output", "nima_output"):
      assert math.isfinite(result[metric]["mean"])
  assert summary["enhancement"]["can_l2"]["gamma"] == 0.0
  assert summary["enhancement"]["can_nima"]["gamma"] > 0.0

  for saved_model in summary["exports"].values():
    assert os.path.isfile(os.path.join(saved_model, "saved_model.pb"))
  with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
    report = f.read()
  assert "not</b> trained on AVA" in report
  for figure in ("nima_distributions.png", "nima_scores.png"):
    assert f"figures/{figure}" in report
    assert os.path.getsize(os.path.join(out, "figures", figure)) > 1000
  assert "compare_" in report and "nima-train --ava_dir" in report
