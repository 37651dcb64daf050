"""prep-targets on Apache Beam: byte-identical to the local pool, same skip
report, resumable, gfile paths, and one clean line without the extra."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from data_prep import beam_pipeline
from data_prep import targets
from nima_enhance import config
from nima_enhance.data import images
import targets_helpers
from targets_helpers import FAST_LLF

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def input_dir(tmp_path, real_photos):
  return targets_helpers.write_input_dir(str(tmp_path / "in"), real_photos,
                                         with_16bit_png=True)


def _files(folder):
  out = {}
  for name in sorted(tf.io.gfile.listdir(folder)):
    with tf.io.gfile.GFile(os.path.join(folder, name), "rb") as f:
      out[name] = f.read()
  return out


def test_beam_matches_local_pool_and_resumes(input_dir, tmp_path):
  pytest.importorskip("apache_beam")
  local, beam = str(tmp_path / "local"), str(tmp_path / "beam")
  quiet = lambda _: None  # noqa: E731
  by_pool = targets.prepare_targets(input_dir, local, "local_laplacian",
                                    max_side=40, params=FAST_LLF,
                                    progress=False, log=quiet)
  lines = []
  by_beam = beam_pipeline.prepare_targets_beam(
      input_dir, beam, "local_laplacian", "DirectRunner", max_side=40,
      params=FAST_LLF, log=lines.append)
  assert by_beam == by_pool
  assert by_beam["written"] == 3 and by_beam["failed"] == 2
  assert [f.split(":")[0] for f in by_beam["failed_files"]] == [
      os.path.join(input_dir, "notes.jpg"),
      os.path.join(input_dir, "truncated.jpg")]
  assert any("skipped unreadable" in line and "truncated.jpg" in line
             for line in lines)
  from_pool = _files(os.path.join(local, "local_laplacian"))
  from_beam = _files(os.path.join(beam, "local_laplacian"))
  assert sorted(from_beam) == ["chelsea.png", "coffee.png", "params.json",
                               "rocket.png"]  # no leftovers of the run
  assert from_beam == from_pool  # byte-identical targets and settings
  assert from_beam["coffee.png"][24] == 16  # 16-bit PNG
  assert images.read_image(os.path.join(beam, "local_laplacian",
                                        "coffee.png")).shape == (27, 40, 3)

  # A rerun skips finished outputs (untouched) and redoes a missing one.
  done = os.path.join(beam, "local_laplacian", "coffee.png")
  os.utime(done, (1, 1))
  os.remove(os.path.join(beam, "local_laplacian", "rocket.png"))
  again = beam_pipeline.prepare_targets_beam(
      input_dir, beam, "local_laplacian", "DirectRunner", max_side=40,
      params=FAST_LLF, log=quiet)
  assert (again["written"], again["skipped"], again["failed"]) == (1, 2, 2)
  assert os.stat(done).st_mtime == 1
  assert _files(os.path.join(beam, "local_laplacian")) == from_pool
  with pytest.raises(config.ConfigError):
    beam_pipeline.prepare_targets_beam(
        input_dir, beam, "local_laplacian", "DirectRunner",
        params=dict(FAST_LLF, alpha=0.25), log=quiet)


def test_beam_reads_and_writes_through_gfile(input_dir, tmp_path):
  pytest.importorskip("apache_beam")
  # ram:// is a TF file system (in this process): the same code path as gs://.
  remote_in = "ram://prep_targets_test/in"
  tf.io.gfile.makedirs(remote_in)
  for name in ("coffee.png", "notes.jpg"):
    tf.io.gfile.copy(os.path.join(input_dir, name),
                     os.path.join(remote_in, name))
  try:
    counts = beam_pipeline.prepare_targets_beam(
        remote_in, "ram://prep_targets_test/out", "local_laplacian",
        "DirectRunner", params=FAST_LLF, log=lambda _: None)
    assert counts["written"] == 1 and counts["failed"] == 1
    assert counts["failed_files"][0].startswith(f"{remote_in}/notes.jpg: ")
    remote = _files("ram://prep_targets_test/out/local_laplacian")
  finally:
    tf.io.gfile.rmtree("ram://prep_targets_test")
  local = str(tmp_path / "local")
  targets.prepare_targets(input_dir, local, "local_laplacian",
                          params=FAST_LLF, progress=False, log=lambda _: None)
  assert remote["coffee.png"] == _files(
      os.path.join(local, "local_laplacian"))["coffee.png"]


def test_pipeline_options():
  pytest.importorskip("apache_beam")
  runner, options = beam_pipeline.pipeline_options(
      "DirectRunner", ["--direct_num_workers=3 --job_name=x"], workers=2)
  direct = options.get_all_options()
  assert direct["direct_num_workers"] == 3 and direct["job_name"] == "x"
  assert type(runner).__name__ == "FnApiRunner"  # never a Prism download
  _, options = beam_pipeline.pipeline_options("DirectRunner", [], workers=2)
  assert options.get_all_options()["direct_num_workers"] == 2
  with pytest.raises(config.ConfigError, match="NoSuchRunner"):
    beam_pipeline.pipeline_options("NoSuchRunner")


def _cli(*args, pythonpath=REPO):
  env = dict(os.environ, PYTHONPATH=pythonpath)
  return subprocess.run([sys.executable, "-m", "nima_enhance.bin.prep_targets",
                         *args], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=180, check=False)


def test_cli_without_beam_says_how_to_install(input_dir, tmp_path):
  # A shadowing package makes `import apache_beam` fail as if not installed.
  blocker = tmp_path / "no_beam" / "apache_beam"
  blocker.mkdir(parents=True)
  (blocker / "__init__.py").write_text("raise ImportError('no beam here')\n")
  result = _cli("--input_dir", input_dir, "--output_dir", str(tmp_path / "o"),
                "--operator", "local_laplacian", "--runner", "DirectRunner",
                pythonpath=f"{blocker.parent}{os.pathsep}{REPO}")
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert 'pip install -e ".[beam]"' in last
  assert not (tmp_path / "o").exists()


def test_cli_direct_runner(input_dir, tmp_path):
  pytest.importorskip("apache_beam")
  out = str(tmp_path / "out")
  result = _cli("--input_dir", input_dir, "--output_dir", out, "--operator",
                "local_laplacian", "--runner", "DirectRunner", "--workers",
                "1", "--max_side", "24", "--gin_bindings",
                "llf_params.num_samples = 8",
                "--gin_bindings", "llf_params.method = 'fast'")
  # Exit code 1 says some inputs were skipped (the binaries' exit-code rule).
  assert result.returncode in (0, 1), result.stderr[-2000:]
  assert "wrote 3, skipped 0 done, 2 unreadable" in result.stdout
  assert "notes.jpg" in result.stdout and "truncated.jpg" in result.stdout
  assert sorted(os.listdir(os.path.join(out, "local_laplacian"))) == [
      "chelsea.png", "coffee.png", "params.json", "rocket.png"]


def test_beam_dehaze_takes_and_records_airlights_as_the_pool(input_dir,
                                                             tmp_path):
  pytest.importorskip("apache_beam")
  params = dict(gamma=1.0, airlight=None, lam=0.1, t_min=0.1,
                num_haze_lines=1000)
  known = {"coffee": [0.7, 0.75, 0.8]}
  local, beam = str(tmp_path / "local"), str(tmp_path / "beam")
  quiet = lambda _: None  # noqa: E731
  targets.prepare_targets(input_dir, local, "nonlocal_dehaze", max_side=32,
                          params=params, progress=False, log=quiet,
                          airlights=known)
  beam_pipeline.prepare_targets_beam(
      input_dir, beam, "nonlocal_dehaze", "DirectRunner", max_side=32,
      params=params, log=quiet, airlights=known)
  from_pool = _files(os.path.join(local, "nonlocal_dehaze"))
  from_beam = _files(os.path.join(beam, "nonlocal_dehaze"))
  assert "airlight.csv" in from_beam
  assert b"coffee.png,0.7000,0.7500,0.8000" in from_beam["airlight.csv"]
  assert from_beam == from_pool
