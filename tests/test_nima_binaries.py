"""nima-train / nima-eval / nima-score end to end on a real-photo AVA folder.

The folder is made from scikit-image's bundled photographs with known
degradations (nima_enhance.data.synthetic) and contains a truncated JPEG, a
non-image file and a missing file, as the real AVA download does.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nima_enhance.data import synthetic

from binary_helpers import ENV
from binary_helpers import assert_one_line_error as _assert_one_line_error
from binary_helpers import run_binary as _run

SMALL = ["--gin_file", "nima/from_scratch_small.gin",
         "--gin_bindings", "preprocessing_config.image_size = (48, 64)"]


@pytest.fixture(scope="module")
def ava_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("ava"))
  info = synthetic.make_synthetic_ava(root, num_images=240,
                                      image_size=(48, 64), seed=1)
  assert set(info["bad_ids"].values()) == {"truncated", "not_an_image",
                                           "missing"}
  return root


@pytest.fixture(scope="module")
def trained(ava_dir, tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("model"))
  proc = _run("nima_train", "--ava_dir", ava_dir, "--model_dir", model_dir,
              *SMALL, "--gin_bindings", "train_loop.num_steps = 60",
              "--gin_bindings", "train_loop.checkpoint_every = 30")
  # Exit code 1: trained, with the broken AVA files skipped (README).
  assert proc.returncode == 1, proc.stderr[-3000:]
  return model_dir, proc


@pytest.mark.slow
def test_train_eval_score(ava_dir, trained, tmp_path):
  model_dir, train_proc = trained
  assert "step 60" in train_proc.stdout
  assert "skipped" in train_proc.stderr
  for name in ("ckpt-60.index", "operative_config.gin", "model_spec.json"):
    assert os.path.isfile(os.path.join(model_dir, name)), name
  with open(os.path.join(model_dir, "operative_config.gin")) as f:
    assert "train_loop.num_steps = 60" in f.read()

  out = str(tmp_path / "eval.json")
  proc = _run("nima_eval", "--ava_dir", ava_dir, "--model_dir", model_dir,
              "--output", out)
  test_skips = os.path.isfile(os.path.join(model_dir, "skipped_test.txt"))
  assert proc.returncode == (1 if test_skips else 0), proc.stderr[-3000:]
  with open(out) as f:
    result = json.load(f)
  for key in ("accuracy", "lcc", "srcc", "emd"):
    assert isinstance(result[key], float), key
  assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 < result["emd"] < 1.0
  assert json.loads(proc.stdout.strip().splitlines()[-1])["srcc"] == \
      result["srcc"]
  # Every broken entry of AVA.txt was skipped in one split or the other.
  skipped = set()
  for split in ("train", "test"):
    path = os.path.join(model_dir, f"skipped_{split}.txt")
    if os.path.isfile(path):
      skipped |= {l.split("\t")[0] for l in open(path)}
  assert skipped == {"900000", "900001", "900002"}

  csv_path = str(tmp_path / "scores.csv")
  proc = _run("nima_score", "--model_dir", model_dir,
              os.path.join(ava_dir, "images"), "--output", csv_path)
  assert proc.returncode == 1, proc.stderr[-3000:]  # 2 files skipped
  assert "scored 240 images, skipped 2" in proc.stderr
  with open(csv_path) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 240
  probs = [float(rows[0][f"p{i}"]) for i in range(1, 11)]
  assert abs(sum(probs) - 1.0) < 1e-4
  assert abs(float(rows[0]["mean"]) -
             sum(p * s for p, s in zip(probs, range(1, 11)))) < 1e-3


@pytest.mark.slow
def test_killed_training_resumes_from_last_checkpoint(ava_dir, tmp_path):
  model_dir = str(tmp_path / "m")
  args = [sys.executable, "-m", "nima_enhance.bin.nima_train", "--ava_dir",
          ava_dir, "--model_dir", model_dir, *SMALL,
          "--gin_bindings", "train_loop.num_steps = 400",
          "--gin_bindings", "train_loop.checkpoint_every = 5"]
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=ENV)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if os.path.isfile(os.path.join(model_dir, "ckpt-10.index")):
      break
    time.sleep(0.2)
  assert proc.poll() is None, "training ended before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  killed_at = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
  assert 10 <= killed_at < 400
  restart = subprocess.run(args[:-2] + ["--gin_bindings",
                                        "train_loop.num_steps = %d" %
                                        (killed_at + 10)],
                           capture_output=True, text=True, timeout=300,
                           env=ENV)
  assert restart.returncode == 1, restart.stderr[-3000:]  # broken files
  assert f"at step {killed_at}" in restart.stderr  # "Resumed from ... at step"
  assert f"step {killed_at + 10} " in restart.stdout
  assert tf.train.latest_checkpoint(model_dir).endswith(f"ckpt-{killed_at + 10}")


def test_bad_input_ends_in_one_line(ava_dir, tmp_path):
  _assert_one_line_error(_run("nima_train", "--model_dir", str(tmp_path)),
                         "--ava_dir")
  _assert_one_line_error(
      _run("nima_train", "--ava_dir", str(tmp_path), "--model_dir",
           str(tmp_path / "m"), *SMALL), "AVA.txt")
  _assert_one_line_error(
      _run("nima_train", "--ava_dir", ava_dir, "--model_dir",
           str(tmp_path / "m"), "--gin_bindings", "train_loop.no_such = 1"),
      "no_such")
  _assert_one_line_error(
      _run("nima_train", "--ava_dir", ava_dir, "--model_dir",
           str(tmp_path / "m"), "--gin_file", "nima/nope.gin"), "nope.gin")
  _assert_one_line_error(_run("nima_train", "--bogus_flag=1"), "bogus_flag")
  empty = tmp_path / "empty"
  empty.mkdir()
  _assert_one_line_error(_run("nima_score", "--model_dir", str(tmp_path),
                              str(empty)), "no images")
