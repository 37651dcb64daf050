"""prep-targets: outputs, resume, atomic writes, bad files, spawn workers, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_prep import targets
from nima_enhance.data import images
import targets_helpers
from targets_helpers import FAST_LLF

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def input_dir(tmp_path, real_photos):
  return targets_helpers.write_input_dir(str(tmp_path / "in"), real_photos)


def test_writes_16bit_pngs_and_reports_bad_files(input_dir, tmp_path):
  out = str(tmp_path / "out")
  lines = []
  counts = targets.prepare_targets(input_dir, out, "local_laplacian",
                                   params=FAST_LLF, progress=False,
                                   log=lines.append)
  assert counts["written"] == 2 and counts["failed"] == 2
  assert any("truncated.jpg" in f for f in counts["failed_files"])
  assert any("notes.jpg" in f for f in counts["failed_files"])
  assert any("2 unreadable" in line for line in lines)
  folder = os.path.join(out, "local_laplacian")
  assert sorted(os.listdir(folder)) == ["coffee.png", "params.json",
                                        "rocket.png"]
  with open(os.path.join(folder, "coffee.png"), "rb") as f:
    raw = f.read()
  assert raw[24] == 16  # PNG IHDR bit depth
  assert images.read_image(os.path.join(folder, "coffee.png")).shape == (40, 60, 3)
  with open(os.path.join(folder, "params.json")) as f:
    assert json.load(f)["params"]["num_samples"] == 8


def test_resume_skips_done_and_refuses_other_params(input_dir, tmp_path):
  out = str(tmp_path / "out")
  targets.prepare_targets(input_dir, out, "local_laplacian", params=FAST_LLF,
                          progress=False, log=lambda _: None)
  done = os.path.join(out, "local_laplacian", "coffee.png")
  os.utime(done, (1, 1))  # an old mtime shows whether the file is rewritten
  os.remove(os.path.join(out, "local_laplacian", "rocket.png"))
  counts = targets.prepare_targets(input_dir, out, "local_laplacian",
                                   params=FAST_LLF, progress=False,
                                   log=lambda _: None)
  assert counts["skipped"] == 1 and counts["written"] == 1
  assert os.stat(done).st_mtime == 1
  leftovers = [n for n in os.listdir(os.path.join(out, "local_laplacian"))
               if n.startswith(".tmp")]
  assert not leftovers
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  with pytest.raises(config.ConfigError):
    targets.prepare_targets(input_dir, out, "local_laplacian",
                            params=dict(FAST_LLF, alpha=0.25), progress=False,
                            log=lambda _: None)


def test_max_side_and_dehaze_with_spawned_workers(input_dir, tmp_path):
  out = str(tmp_path / "out")
  counts = targets.prepare_targets(input_dir, out, "nonlocal_dehaze",
                                   workers=2, max_side=32, progress=False,
                                   params=dict(gamma=1.0, airlight=None,
                                               lam=0.1, t_min=0.1,
                                               num_haze_lines=1000),
                                   log=lambda _: None)
  assert counts["written"] == 2 and counts["failed"] == 2
  image = images.read_image(os.path.join(out, "nonlocal_dehaze", "coffee.png"))
  assert max(image.shape[:2]) == 32


def test_missing_input_dir(tmp_path):
  with pytest.raises(FileNotFoundError):
    targets.prepare_targets(str(tmp_path / "nope"), str(tmp_path), "local_laplacian")


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.run([sys.executable, "-m", "nima_enhance.bin.prep_targets", *args],
                        capture_output=True, text=True, env=env, cwd=REPO,
                        timeout=120, check=False)


def test_cli_gin_bindings_and_clean_failures(input_dir, tmp_path):
  out = str(tmp_path / "out")
  ok = _cli("--input_dir", input_dir, "--output_dir", out, "--operator",
            "local_laplacian", "--workers", "1", "--gin_bindings",
            "llf_params.preset = 'tone_mapping'", "--gin_bindings",
            "llf_params.num_samples = 8")
  # The folder holds unreadable files: done, with exit code 1 (README
  # "Input images": some inputs skipped).
  assert ok.returncode == 1, ok.stderr[-2000:]
  with open(os.path.join(out, "local_laplacian", "params.json")) as f:
    assert json.load(f)["params"]["domain"] == "log"
  bad_gin = _cli("--input_dir", input_dir, "--output_dir", out, "--operator",
                 "local_laplacian", "--gin_bindings", "llf_params.nope = 1")
  assert bad_gin.returncode == 2
  assert "Traceback" not in bad_gin.stderr
  assert "llf_params.nope" in bad_gin.stderr.strip().splitlines()[-1]


# One 16-bit PNG step is 1/65535: the written target must equal the operator's
# own output on the same file to within rounding (an operator that copied its
# input, or one run with other parameters, is far outside).
PNG16_TOLERANCE = 1.0 / 65535


@pytest.mark.parametrize("operator,params,max_side", [
    ("local_laplacian", FAST_LLF, None),
    ("nonlocal_dehaze", dict(gamma=1.0, airlight=None, lam=0.1, t_min=0.1,
                             num_haze_lines=1000), 48),
])
def test_written_targets_equal_the_operator_on_the_same_file(
    input_dir, tmp_path, operator, params, max_side):
  import data_prep  # pylint: disable=g-import-not-at-top
  out = str(tmp_path / "out")
  counts = targets.prepare_targets(input_dir, out, operator, params=params,
                                   max_side=max_side, progress=False,
                                   log=lambda _: None)
  assert counts["written"] == 2
  for name in ("coffee.png", "rocket.jpg"):
    image = images.read_image(os.path.join(input_dir, name))
    if max_side:
      image = images.resize_max_side(image, max_side)
    if operator == "local_laplacian":
      expected = data_prep.local_laplacian(image, **params)
    else:
      expected = data_prep.nonlocal_dehaze(image, **params)[0]
    written = images.read_image(os.path.join(
        out, operator, os.path.splitext(name)[0] + ".png"))
    assert written.shape == expected.shape
    assert np.abs(written - expected).max() <= PNG16_TOLERANCE
    assert np.abs(written - image).mean() > 0.005  # not the input copied


DEHAZE_FAST = dict(gamma=1.0, airlight=None, lam=0.1, t_min=0.1,
                   num_haze_lines=1000)


def test_dehaze_takes_known_airlights_and_records_every_one_used(
    input_dir, tmp_path):
  import data_prep  # pylint: disable=g-import-not-at-top
  from data_prep import airlight_table  # pylint: disable=g-import-not-at-top
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  out = str(tmp_path / "out")
  known = {"coffee": [0.7, 0.75, 0.8], "nothing_here.jpg": [0.5, 0.5, 0.5]}
  lines = []
  counts = targets.prepare_targets(input_dir, out, "nonlocal_dehaze",
                                   params=DEHAZE_FAST, max_side=48,
                                   progress=False, log=lines.append,
                                   airlights=known)
  assert counts["written"] == 2
  assert any("1 air-light rows match no input" in line
             and "nothing_here.jpg" in line for line in lines)
  assert any("(1 with a given air-light)" in line for line in lines)
  folder = os.path.join(out, "nonlocal_dehaze")
  recorded = airlight_table.read_table(os.path.join(folder, "airlight.csv"))
  assert sorted(recorded) == ["coffee.png", "rocket.jpg"]
  assert recorded["coffee.png"] == known["coffee"]
  for name, given in (("coffee.png", known["coffee"]), ("rocket.jpg", None)):
    image = images.resize_max_side(
        images.read_image(os.path.join(input_dir, name)), 48)
    expected, _, air = data_prep.nonlocal_dehaze(
        image, **dict(DEHAZE_FAST, airlight=given))
    written = images.read_image(os.path.join(
        folder, os.path.splitext(name)[0] + ".png"))
    assert np.abs(written - expected).max() <= PNG16_TOLERANCE
    # The estimate for rocket, the given value for coffee.
    np.testing.assert_allclose(recorded[name], air, atol=1e-4)
  # The given air-light changed coffee's target (not silently ignored).
  estimated = data_prep.nonlocal_dehaze(images.resize_max_side(
      images.read_image(os.path.join(input_dir, "coffee.png")), 48),
                                        **DEHAZE_FAST)[0]
  written = images.read_image(os.path.join(folder, "coffee.png"))
  assert np.abs(written - estimated).max() > 0.01
  # Another table would mix targets of different air-lights: refused.
  with pytest.raises(config.ConfigError, match="air-lights"):
    targets.prepare_targets(input_dir, out, "nonlocal_dehaze",
                            params=DEHAZE_FAST, max_side=48, progress=False,
                            log=lambda _: None,
                            airlights={"coffee": [0.6, 0.6, 0.6]})
  with pytest.raises(ValueError, match="nonlocal_dehaze"):
    targets.prepare_targets(input_dir, str(tmp_path / "llf"),
                            "local_laplacian", params=FAST_LLF,
                            progress=False, log=lambda _: None,
                            airlights=known)


def test_interrupted_dehaze_keeps_the_airlights_of_written_targets(
    input_dir, tmp_path, monkeypatch):
  from data_prep import airlight_table  # pylint: disable=g-import-not-at-top
  out = str(tmp_path / "out")
  real = targets.process_image
  calls = []

  def stop_at_second(task):
    calls.append(task.path)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real(task)

  monkeypatch.setattr(targets, "process_image", stop_at_second)
  with pytest.raises(KeyboardInterrupt):
    targets.prepare_targets(input_dir, out, "nonlocal_dehaze",
                            params=DEHAZE_FAST, max_side=32, progress=False,
                            log=lambda _: None,
                            airlights={"coffee": [0.7, 0.75, 0.8]})
  folder = os.path.join(out, "nonlocal_dehaze")
  recorded = airlight_table.read_table(os.path.join(folder, "airlight.csv"))
  assert recorded == {"coffee.png": [0.7, 0.75, 0.8]}
  # The resumed run adds its rows to the record and keeps the earlier one.
  monkeypatch.setattr(targets, "process_image", real)
  targets.prepare_targets(input_dir, out, "nonlocal_dehaze",
                          params=DEHAZE_FAST, max_side=32, progress=False,
                          log=lambda _: None,
                          airlights={"coffee": [0.7, 0.75, 0.8]})
  recorded = airlight_table.read_table(os.path.join(folder, "airlight.csv"))
  assert sorted(recorded) == ["coffee.png", "rocket.jpg"]


def test_cli_airlight_csv_errors_are_one_line_exit_2(input_dir, tmp_path):
  out = str(tmp_path / "out")
  table = tmp_path / "known.csv"
  table.write_text("name,r,g,b\ncoffee,0.8,0.8\n")
  bad = _cli("--input_dir", input_dir, "--output_dir", out, "--operator",
             "nonlocal_dehaze", "--airlight_csv", str(table))
  assert bad.returncode == 2
  assert "Traceback" not in bad.stderr
  assert "known.csv:2: expected name,r,g,b" in bad.stderr.strip().splitlines()[-1]
  wrong_operator = _cli("--input_dir", input_dir, "--output_dir", out,
                        "--operator", "local_laplacian", "--airlight_csv",
                        str(table))
  assert wrong_operator.returncode == 2
  assert "--airlight_csv" in wrong_operator.stderr.strip().splitlines()[-1]
