"""multi_worker_mirrored with two worker processes on this machine's CPU.

What is compared: every step is full-batch (the global batch is the whole
training split, 32 images, and each of the two workers' input pipelines holds
exactly its 16-image shard), so each step of the two-worker run sees the same
set of examples as the single-worker run's step, whatever the sharding and the
shuffle order. With dropout 0, no flips and one seed (identical initial
weights), the per-step losses must then agree up to float summation order.
"""

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import synthetic

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
STEPS = 4
ARGS = ["--gin_file", "nima/from_scratch_small.gin",
        "--gin_bindings", "preprocessing_config.image_size = (32, 32)",
        "--gin_bindings", "preprocessing_config.random_flip = False",
        "--gin_bindings", "build_nima.dropout = 0.0",
        "--gin_bindings", "train_loop.global_batch_size = 32",
        "--gin_bindings", f"train_loop.num_steps = {STEPS}",
        "--gin_bindings", "train_loop.log_every = 1",
        "--gin_bindings", "train_loop.checkpoint_every = 100",
        "--seed", "3"]


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _losses(model_dir):
  """step -> loss from the TensorBoard events the chief wrote."""
  losses = {}
  for path in tf.io.gfile.glob(os.path.join(model_dir, "train", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "loss":
          losses[event.step] = float(tf.make_ndarray(value.tensor))
  return losses


@pytest.fixture(scope="module")
def ava_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("ava_mw"))
  info = synthetic.make_synthetic_ava(root, num_images=40, image_size=(32, 32))
  # A fixed test list leaves exactly 32 good training images (plus the three
  # broken entries, which are skipped): one full batch of 32.
  os.makedirs(os.path.join(root, "aesthetics_image_lists"))
  with open(os.path.join(root, "aesthetics_image_lists",
                         "generic_test.jpgl"), "w") as f:
    f.write("\n".join(info["ids"][32:]) + "\n")
  return root


def _train(ava_dir, model_dir, *extra):
  return subprocess.Popen(
      [sys.executable, "-m", "nima_enhance.bin.nima_train", "--ava_dir",
       ava_dir, "--model_dir", model_dir, *ARGS, *extra],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


@pytest.mark.slow
def test_two_workers_match_one_worker(ava_dir, tmp_path):
  multi_dir = str(tmp_path / "multi")
  single_dir = str(tmp_path / "single")
  hosts = ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))
  workers = [_train(ava_dir, multi_dir, "--distribution_strategy",
                    "multi_worker_mirrored", "--worker_hosts", hosts,
                    "--task_index", str(i)) for i in range(2)]
  single = _train(ava_dir, single_dir)
  try:
    outputs = [p.communicate(timeout=150) for p in workers + [single]]
  finally:
    for p in workers + [single]:
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
  for p, (out, err) in zip(workers + [single], outputs):
    # Exit code 1: trained, with the three broken entries skipped (README
    # "Input images").
    assert p.returncode == 1, err[-3000:]
    assert f"step {STEPS} " in out, out
  assert "Strategy CollectiveAllReduceStrategy with 2 replica(s)" in \
      outputs[0][1], outputs[0][1][-3000:]

  # Only the chief wrote into model_dir; worker 1's scratch dir is gone.
  for name in (f"ckpt-{STEPS}.index", "operative_config.gin",
               "model_spec.json"):
    assert os.path.isfile(os.path.join(multi_dir, name)), name
  assert not os.path.exists(os.path.join(multi_dir, "workertemp"))
  assert tf.train.latest_checkpoint(multi_dir).endswith(f"ckpt-{STEPS}")

  multi, one = _losses(multi_dir), _losses(single_dir)
  print("multi-worker losses", multi, "single-worker losses", one)
  assert sorted(multi) == sorted(one) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([multi[s] for s in sorted(multi)],
                             [one[s] for s in sorted(one)], rtol=2e-4)
  # The step-4 loss differs from step 1's: training did happen.
  assert abs(multi[STEPS] - multi[1]) > 1e-4
