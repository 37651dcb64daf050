"""Tests of the README generator and the benchmark runner (tools/benchmarks/).

The README's figures are generated from results/*.json; the first test fails
when README.md is stale (a figure typed by hand inside a generated block, or
results/ regenerated without `render_readme.py`).
"""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "benchmarks"))

import render_readme  # noqa: E402  pylint: disable=wrong-import-position
import run_all  # noqa: E402  pylint: disable=wrong-import-position

MACHINE = {"cores": 2, "cpu_model": "test CPU", "date": "2026-01-02 03:04 UTC",
           "load_average": [1.5, 1.0, 1.0], "tensorflow": "2.21.0",
           "accelerator": "none (CPU only)"}


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def test_readme_and_docs_match_committed_results():
  for path in render_readme.documents(ROOT):
    text = _read(path)
    rendered = render_readme.render(text, os.path.join(ROOT, "results"))
    assert rendered == text, (
        f"{path}: generated blocks differ from results/*.json: run python "
        "tools/benchmarks/render_readme.py (never edit inside "
        "<!-- bench:* --> by hand)")


def test_every_block_has_markers_in_a_document():
  texts = [_read(p) for p in render_readme.documents(ROOT)]
  for name in render_readme.BLOCKS:
    assert any(f"<!-- bench:{name} -->\n" in t and
               f"<!-- /bench:{name} -->" in t for t in texts), name


def _write_results(tmp_path, records, demo=None, name="results"):
  results = tmp_path / name
  results.mkdir()
  for r in records.values():
    r.setdefault("machine", MACHINE)
    r.setdefault("quick", False)
  (results / "benchmarks.json").write_text(json.dumps({"records": records}))
  if demo is not None:
    (results / "demo_summary.json").write_text(json.dumps(demo))
  return str(results)


def test_render_replaces_blocks_only_and_check_detects_stale(tmp_path):
  results = _write_results(tmp_path, {"peak_memory": {
      "rows": [dict(operator="local_laplacian", mode="operator",
                    megapixels=12.0, seconds=30.0, input_gb=0.2,
                    peak_gb=0.3)]}})
  readme = tmp_path / "README.md"
  readme.write_text("intro 1.23\n<!-- bench:memory -->\n| stale | 9.99 |\n"
                    "<!-- /bench:memory -->\nafter 4.56\n")
  assert render_readme.main(["--results", results, "--readme", str(readme),
                             "--check"]) == 1
  assert render_readme.main(["--results", results, "--readme",
                             str(readme)]) == 0
  text = readme.read_text()
  assert text.startswith("intro 1.23\n<!-- bench:memory -->\n")
  assert text.endswith("<!-- /bench:memory -->\nafter 4.56\n")
  assert "9.99" not in text
  # 0.3 GB over 12 MP = 25 bytes per pixel.
  assert "| local_laplacian | operator | 12.0 | 30.0 | 0.30 | 25 | 0.20 |" in text
  assert render_readme.main(["--results", results, "--readme", str(readme),
                             "--check"]) == 0


def test_memory_block_prep_targets_over_operator(tmp_path):
  rows = [dict(operator="nonlocal_dehaze", mode="operator", megapixels=24.0,
               seconds=100.0, input_gb=0.3, peak_gb=1.104),
          dict(operator="nonlocal_dehaze", mode="prep_targets",
               megapixels=24.0, seconds=120.0, input_gb=0.6, peak_gb=1.9)]
  results = _write_results(tmp_path, {"peak_memory": {"rows": rows}})
  body = render_readme.memory(results)
  assert "| 1.10 | 46 |" in body  # 1.104e9 / 24e6 = 46 bytes per pixel
  assert "nonlocal_dehaze 24 MP +0.80 GB" in body
  assert "full run" in body and "2026-01-02 03:04 UTC" in body


def _tflite_row(backbone, quantize, size, ms1, diff, spread=0.5, ops=0):
  return {"backbone": backbone, "input": "96x128", "quantize": quantize,
          "size_bytes": size, "size_vs_float": size / 1_000_000,
          "ms_1_thread": ms1, "ms_2_threads": ms1, "keras_checkpoint_ms": 2.0,
          "max_abs_mean_diff": diff, "srcc_means": 0.99, "float_ops": ops,
          "checkpoint_mean_spread": spread}


def test_beam_block_overhead_against_the_pool(tmp_path):
  figures = {"pool-1_seconds": 10.0, "pool-1_mps": 0.5,
             "beam-1_seconds": 12.5, "beam-1_mps": 0.4}
  results = _write_results(tmp_path, {"prep_targets_beam": {
      "figures": figures, "verdict": "-", "summary": "",
      "flags": {"images": 12, "side": 512, "operator": "local_laplacian"}}})
  body = render_readme.beam(results)
  assert "| local pool, 1 worker(s) | 10.00 | 0.50 |  |" in body
  assert "| DirectRunner, 1 worker(s) | 12.50 | 0.40 | +2.5 s (+25%) |" in body
  skipped = _write_results(tmp_path, {"prep_targets_beam": {
      "figures": {}, "verdict": "skipped",
      "summary": "not run: no Beam"}}, name="skipped")
  assert "not run: no Beam" in render_readme.beam(skipped)


def test_tflite_block_targets_speed_and_collapse(tmp_path):
  rows = [_tflite_row("small_cnn", "none", 1_000_000, 1.3, 2e-5),
          _tflite_row("small_cnn", "int8", 280_000, 0.52, 0.14, ops=17),
          _tflite_row("mobilenet", "none", 1_000_000, 1.5, 0.0, spread=3e-7),
          _tflite_row("mobilenet", "int8", 400_000, 0.5, 0.02, spread=3e-7)]
  results = _write_results(tmp_path, {"tflite": {
      "rows": rows, "figures": {"held_out_images": 40},
      "flags": {"rounds": 30, "small_steps": 300, "mobilenet_steps": 300,
                "mobilenet_size": "96x128"}}})
  body = render_readme.tflite(results)
  assert "float32 matches the checkpoint to 2e-05" in body
  assert "(target 0.01: met)" in body
  # int8 size 28% (met) and 1.3 / 0.52 = 2.5x faster; agreement 0.14 > 0.1.
  assert ("small_cnn int8: 28% of the float file (target <= 35%: met), 2.5x "
          "faster") in body
  assert "max |mean diff| 0.14 (target 0.1: not met)" in body
  assert "mobilenet int8: 40% of the float file (target <= 35%: not met), " \
         "3.0x faster than float32 (1 thread)." in body
  # A collapsed checkpoint: agreement in parentheses, no SRCC, said so.
  assert "| mobilenet (96x128), collapsed | int8 |" in body
  assert "(0.0200) | n/m |" in body
  assert "17 (rest int8)" in body and "none (full int8)" in body
  assert "collapsed to a constant prediction" in body
  assert "int8 variants" not in body
  # Untrained MobileNet (run_all's bounded full mode): agreement caveated.
  data = json.loads((tmp_path / "results" / "benchmarks.json").read_text())
  data["records"]["tflite"]["flags"]["mobilenet_steps"] = 0
  data["records"]["tflite"]["rows"][2]["checkpoint_mean_spread"] = 0.5
  (tmp_path / "results" / "benchmarks.json").write_text(json.dumps(data))
  data["records"]["tflite"]["figures"]["int8_variants"] = [
      {"backbone": "small_cnn", "variant": "full integer",
       "size_bytes": 290_000, "float_ops": ["NEG x"],
       "max_abs_mean_diff": 0.4, "srcc_means": None}]
  (tmp_path / "results" / "benchmarks.json").write_text(json.dumps(data))
  body = render_readme.tflite(results)
  assert "| small_cnn | full integer | 0.29 MB | 1 | 0.400 | n/a |" in body
  assert "| mobilenet (96x128), untrained | none |" in body
  assert "agreement not meaningful" in body


def test_input_images_block(tmp_path):
  figures = {"cpus": 2, "worst_ratio": 0.5, "rows": [
      dict(kind="ava", pipeline="NIMA paper", pipeline_images_per_sec=160.0,
           bare_images_per_sec=320.0, ratio=0.5)],
             "accelerator": {"mobilenet_gflops": 7.02, "accel_tflops": 40.0,
                             "accel_images_per_sec": 1899.0,
                             "cores_needed": {"ava": 23.7}}}
  scoring = {"large": {"large_images": 6, "large_megapixels": 24,
                       "large_images_per_sec": {"new": 8.0, "before": 2.0},
                       "large_speedup": 4.0},
             "agreement": {"crops": 300, "train_steps": 150,
                           "input_size": [96, 128], "score_min": 3.7,
                           "score_max": 6.9, "score_std": 0.89,
                           "diff_max": 0.22, "diff_mean": 0.015,
                           "diff_p99": 0.1, "rule_diff_max": 0.039,
                           "rule_diff_mean": 0.004}}
  results = _write_results(tmp_path, {
      "input_pipeline": {"figures": figures},
      "nima_scoring": {"figures": scoring}})
  body = render_readme.input_images(results)
  assert "| ava | NIMA paper | 160.0 | 320.0 | 0.50 | 80.0 |" in body
  assert "needs ~24 (ava) such cores" in body
  assert "new 8.00 images/s; before 2.00 images/s: 4.0x" in body
  assert "max 0.220, mean 0.015, p99 0.100" in body
  assert "not in this record" not in body
  # Without the full nima_scoring parts the block says so.
  results2 = _write_results(tmp_path, {"input_pipeline": {
      "figures": figures}}, name="partial")
  assert "not in this record" in render_readme.input_images(results2)


def test_demo_block_states_the_measured_nima_gain(tmp_path):
  stat = lambda v: {"mean": v, "std": 0.0}  # noqa: E731
  row = lambda gamma, psnr, nima: {  # noqa: E731
      "gamma": gamma, "psnr_input": stat(20.0), "ssim_input": stat(0.8),
      "nima_input": stat(5.0), "nima_reference": stat(5.5),
      "psnr_output": stat(psnr), "ssim_output": stat(0.9),
      "nima_output": stat(nima)}
  demo = {"settings": {"enhance_max_side": 128}, "quick": False, "seed": 0,
          "total_seconds": 600.0, "date": "2026-01-02 03:04 UTC",
          "nima": {"num_images": 10, "accuracy": 0.7, "lcc": 0.5,
                   "srcc": 0.4, "emd": 0.1},
          "nima_training": {"steps": 500, "examples_per_sec": 100.0},
          "enhancement": {"can_l2": row(0.0, 25.0, 5.2),
                          "can_nima": row(0.02, 24.0, 5.6)},
          "can_training": {"can_l2": {"steps": 200, "steps_per_sec": 1.0}}}
  results = _write_results(tmp_path, {}, demo=demo)
  body = render_readme.demo(results)
  assert "raised the mean NIMA score of the output by +0.40" in body
  assert "changed by -1.00 dB" in body
  demo["enhancement"]["can_nima"] = row(0.02, 24.0, 5.1)
  (tmp_path / "results" / "demo_summary.json").write_text(json.dumps(demo))
  assert "did not raise" in render_readme.demo(results)


def test_readme_and_demo_report_show_the_same_figures(tmp_path):
  """Both come from the demo's summary.json; every shared figure agrees."""
  from nima_enhance import demo_report  # pylint: disable=import-outside-toplevel
  stat = lambda v: {"mean": v, "std": 0.01}  # noqa: E731
  row = lambda gamma, base: {  # noqa: E731
      "gamma": gamma, "num_images": 4, "psnr_input": stat(21.111),
      "ssim_input": stat(0.812), "nima_input": stat(5.013),
      "nima_reference": stat(5.514), "psnr_output": stat(base + 3.0),
      "ssim_output": stat(0.9), "nima_output": stat(base / 5.0)}
  summary = {"settings": {"enhance_max_side": 128, "can_steps": 200},
             "quick": False, "seed": 0, "total_seconds": 612.4,
             "date": "2026-01-02 03:04 UTC",
             "nima": {"num_images": 10, "accuracy": 0.7123, "lcc": 0.5432,
                      "srcc": 0.4321, "emd": 0.0987},
             "nima_training": {"steps": 500, "examples_per_sec": 100.0},
             "enhancement": {"can_l2": row(0.0, 25.0),
                             "can_nima": row(0.02, 27.0)},
             "can_training": {"can_l2": {"steps": 200, "steps_per_sec": 1.0}},
             "timings": [], "exports": {}}
  results = _write_results(tmp_path, {}, demo=summary)
  readme = render_readme.demo(results)
  report = tmp_path / "report"
  report.mkdir()
  with open(demo_report.write_report(str(report), summary, []),
            encoding="utf-8") as f:
    page = f.read()
  assert "612 s" in readme and "612 s" in page
  for text in ("71.2%", "0.543", "0.432", "0.099"):  # accuracy, LCC, SRCC, EMD
    assert text in readme and text in page, text
  for x in (21.111, 0.812, 5.013, 5.514, 28.0, 0.9, 5.0, 30.0, 5.4):
    assert f"{x:.2f}" in readme if x > 1 else f"{x:.3f}" in readme, x
    assert f"{x:.3f}" in page, x


def test_run_all_finds_benchmarks_not_helpers():
  names = run_all.benchmark_names()
  assert "train_step" in names and "tflite" in names
  for helper in ("run_all", "record", "render_readme"):
    assert helper not in names
  assert not any(n.startswith("_") for n in names)


def test_run_all_unknown_benchmark_is_a_usage_error(tmp_path, capsys):
  assert run_all.main(["--only", "nope", "--results", str(tmp_path)]) == 2
  assert "nope" in capsys.readouterr().err


def test_run_all_budget_bounds_each_job_and_stops(tmp_path, monkeypatch):
  now = [0.0]
  calls = []

  def fake_run(command, timeout, log_path):
    calls.append((os.path.basename(command[1]), command[2:], timeout))
    now[0] += 100.0  # each benchmark takes 100 s
    with open(command[command.index("--json_out") + 1], "w") as f:
      json.dump({"verdict": "-", "summary": "ok"}, f)
    open(log_path, "w").close()
    return 0, 100.0

  monkeypatch.setattr(run_all, "_run", fake_run)
  real_budget = run_all.Budget
  monkeypatch.setattr(run_all, "Budget", lambda seconds: real_budget(
      seconds, clock=lambda: now[0]))
  monkeypatch.setattr(run_all, "FULL_ARGS", {"dehaze": ["--x", "1"]})
  code = run_all.main(["--only", "dehaze,train_step,tflite", "--no_results",
                       "--budget_minutes", "3", "--results", str(tmp_path)])
  assert code == 1  # train_step was not run: the 180 s were spent
  assert [c[0] for c in calls] == ["dehaze.py", "tflite.py"]
  assert calls[0][1][-2:] == ["--x", "1"]  # FULL_ARGS in full mode
  assert calls[0][2] == 180.0 and calls[1][2] == 80.0  # timeout = time left
  data = json.loads((tmp_path / "benchmarks.json").read_text())
  assert len(data["records"]) == 2
  calls.clear()
  now[0] = 0.0
  assert run_all.main(["--only", "dehaze", "--quick", "--no_results",
                       "--results", str(tmp_path)]) == 0
  assert calls[0][1][-1] == "--quick"


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
