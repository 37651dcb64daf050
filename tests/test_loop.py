"""The shared training loop: checkpoints, resume, strategies."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from nima_enhance.train import distribute
from nima_enhance.train import loop
from nima_enhance.train import task as task_lib

_DATA = np.random.RandomState(0).normal(size=(64, 3)).astype(np.float32)
_TARGET = (_DATA @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3)


class LinearTask(task_lib.Task):
  """y = xW + b with an MSE loss: small enough to check exactly."""

  name = "linear"

  def build_model(self):
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(1, kernel_initializer="zeros",
                                 name="dense")(inputs)
    return keras.Model(inputs, outputs)

  def build_optimizers(self, model, steps_per_epoch):
    return [(keras.optimizers.SGD(0.1, momentum=0.5),
             model.trainable_variables)]

  def steps_per_epoch(self, global_batch_size):
    return 64 // global_batch_size

  def dataset(self, input_context, batch_size, start_example, seed):
    ds = tf.data.Dataset.from_tensor_slices((_DATA, _TARGET))
    ds = ds.shard(input_context.num_input_pipelines,
                  input_context.input_pipeline_id)
    ds = ds.shuffle(64, seed=seed).repeat().skip(start_example)
    return ds.batch(batch_size, drop_remainder=True)

  def per_example_loss(self, model, batch, training):
    x, y = batch
    loss = tf.reduce_mean(tf.square(model(x, training=training) - y), axis=-1)
    return loss, {"mse": tf.reduce_mean(loss)}

  def model_spec(self):
    return {"task": "linear"}


def _weights(result):
  return np.concatenate([v.numpy().ravel()
                         for v in result["model"].trainable_variables])


def test_trains_checkpoints_and_writes_config(tmp_path):
  model_dir = str(tmp_path / "m")
  result = loop.train_loop(LinearTask(), model_dir, num_steps=30,
                           global_batch_size=8, checkpoint_every=10,
                           log_every=10, progress=False)
  assert result["step"] == 30 and not result["preempted"]
  assert result["checkpoint"].endswith("ckpt-30")
  assert result["loss"] < 0.05  # learned the linear map
  assert os.path.isfile(os.path.join(model_dir, "operative_config.gin"))
  with open(os.path.join(model_dir, "model_spec.json")) as f:
    assert json.load(f) == {"task": "linear"}
  assert tf.io.gfile.glob(os.path.join(model_dir, "train", "events.*"))


def test_resume_equals_uninterrupted_run(tmp_path):
  straight = loop.train_loop(LinearTask(), str(tmp_path / "a"), num_steps=12,
                             global_batch_size=8, checkpoint_every=100,
                             progress=False)
  resumed_dir = str(tmp_path / "b")
  first = loop.train_loop(LinearTask(), resumed_dir, num_steps=5,
                          global_batch_size=8, progress=False)
  assert first["step"] == 5
  second = loop.train_loop(LinearTask(), resumed_dir, num_steps=12,
                           global_batch_size=8, checkpoint_every=100,
                           progress=False)
  assert second["step"] == 12
  # Same weights: model, optimizer slots and the data position were restored.
  np.testing.assert_allclose(_weights(second), _weights(straight), rtol=1e-6,
                             atol=1e-7)


def test_progress_line_reports_throughput_and_eta():
  import io  # pylint: disable=g-import-not-at-top
  stream = io.StringIO()
  progress = loop.Progress(100, 0, 32, stream=stream)
  line = progress.update(50, 0.25)
  assert "step 50/100" in line and "steps/s" in line and "ETA" in line
  assert "ex/s" in stream.getvalue()


def test_mirrored_two_cpu_replicas_match_one_device(tmp_path):
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {os.path.dirname(__file__)!r})
      import numpy as np
      from nima_enhance.train import distribute, loop
      distribute.split_logical_cpus(2)
      import test_loop
      out = {{}}
      for name in ("one_device", "mirrored"):
        strategy = distribute.get_strategy(name)
        result = loop.train_loop(test_loop.LinearTask(),
                                 {str(tmp_path)!r} + "/" + name,
                                 strategy=strategy, num_steps=10,
                                 global_batch_size=8, progress=False)
        out[name] = (strategy.num_replicas_in_sync, test_loop._weights(result))
      assert out["mirrored"][0] == 2 and out["one_device"][0] == 1
      np.testing.assert_allclose(out["mirrored"][1], out["one_device"][1],
                                 rtol=1e-5, atol=1e-6)
      print("MATCH", out["mirrored"][1])
      """)
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                        text=True, timeout=240,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "MATCH" in proc.stdout


def test_strategy_names_and_tf_config(monkeypatch):
  assert isinstance(distribute.get_strategy("one_device"),
                    tf.distribute.OneDeviceStrategy)
  try:
    distribute.get_strategy("nope")
    raise AssertionError("expected ValueError")
  except ValueError as err:
    assert "one_device" in str(err)
  monkeypatch.delenv("TF_CONFIG", raising=False)
  config = distribute.write_tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1)
  assert json.loads(os.environ["TF_CONFIG"]) == config
  assert config["task"] == {"type": "worker", "index": 1}
