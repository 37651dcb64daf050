"""Preemption: SIGTERM saves and exits cleanly; SIGKILL + restart resumes exactly.

Both tests drive the nima-train binary in a subprocess on a tiny synthetic AVA
folder. Exact resumption needs a deterministic run (dropout 0, no random
flips): the model, the optimizer slots, the step and the input position are
restored, but the state of random augmentation ops is not.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import synthetic

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
SMALL = ["--gin_file", "nima/from_scratch_small.gin",
         "--gin_bindings", "preprocessing_config.image_size = (32, 32)",
         "--gin_bindings", "preprocessing_config.random_flip = False",
         "--gin_bindings", "build_nima.dropout = 0.0",
         "--gin_bindings", "train_loop.global_batch_size = 8",
         "--gin_bindings", "train_loop.log_every = 1"]


@pytest.fixture(scope="module")
def ava_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("ava_pre"))
  # No broken entries: the runs here must exit 0 (skips would give 1).
  synthetic.make_synthetic_ava(root, num_images=40, image_size=(32, 32),
                               bad_files=False)
  return root


def _args(ava_dir, model_dir, num_steps, checkpoint_every):
  return [sys.executable, "-m", "nima_enhance.bin.nima_train", "--ava_dir",
          ava_dir, "--model_dir", model_dir, *SMALL,
          "--gin_bindings", f"train_loop.num_steps = {num_steps}",
          "--gin_bindings", f"train_loop.checkpoint_every = {checkpoint_every}"]


def _wait_for(path, proc, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(path):
      return
    time.sleep(0.1)
  raise AssertionError(f"{path} did not appear (rc {proc.poll()})")


def _step(checkpoint):
  return int(checkpoint.rsplit("-", 1)[1])


def _variables(checkpoint):
  """Every saved value (model, optimizer slots, step) by name."""
  reader = tf.train.load_checkpoint(checkpoint)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


@pytest.mark.slow
def test_sigterm_saves_current_step_and_exits_zero(ava_dir, tmp_path):
  model_dir = str(tmp_path / "m")
  # No periodic checkpoint before 100000: whatever is saved comes from SIGTERM.
  proc = subprocess.Popen(_args(ava_dir, model_dir, 100000, 100000),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=ENV)
  try:
    # operative_config.gin is written after the first step: the loop runs.
    _wait_for(os.path.join(model_dir, "operative_config.gin"), proc)
    time.sleep(1.0)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    elapsed = time.time() - sent
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err[-3000:]
  assert elapsed < 30, elapsed
  checkpoint = tf.train.latest_checkpoint(model_dir)
  step = _step(checkpoint)
  assert 1 <= step < 100000
  assert f"SIGTERM: checkpoint saved at step {step}" in err
  assert f"nima-train: step {step} " in out
  # The saved step counter is the step the run stopped at.
  assert int(_variables(checkpoint)["step/.ATTRIBUTES/VARIABLE_VALUE"]) == step


@pytest.mark.slow
def test_sigkill_and_restart_equals_uninterrupted_run(ava_dir, tmp_path):
  total = 14
  straight_dir = str(tmp_path / "straight")
  straight = subprocess.Popen(_args(ava_dir, straight_dir, total, 1000),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=ENV)
  killed_dir = str(tmp_path / "killed")
  args = _args(ava_dir, killed_dir, total, 2)
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=ENV)
  try:
    _wait_for(os.path.join(killed_dir, "ckpt-4.index"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _step(tf.train.latest_checkpoint(killed_dir))
    assert 4 <= killed_at < total, killed_at
    restart = subprocess.run(args, capture_output=True, text=True,
                             timeout=150, env=ENV)
    out, err = straight.communicate(timeout=150)
  finally:
    for p in (straight, proc):
      if p.poll() is None:
        p.kill()
  assert straight.returncode == 0, err[-3000:]
  assert restart.returncode == 0, restart.stderr[-3000:]
  assert f"at step {killed_at}" in restart.stderr  # "Resumed from ... at step"
  assert f"nima-train: step {total} " in restart.stdout
  resumed = _variables(tf.train.latest_checkpoint(killed_dir))
  uninterrupted = _variables(tf.train.latest_checkpoint(straight_dir))
  assert tf.train.latest_checkpoint(killed_dir).endswith(f"ckpt-{total}")
  assert sorted(resumed) == sorted(uninterrupted)
  assert any("optimizer" in name for name in resumed)  # slots compared too
  assert int(resumed["step/.ATTRIBUTES/VARIABLE_VALUE"]) == total
  for name, value in uninterrupted.items():
    if name.startswith("save_counter"):
      continue  # how many saves happened, not training state
    np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
