"""The training loop's actions: periodic evaluation, epochs, the step parts."""

import glob
import os

import numpy as np
import tensorflow as tf

import test_loop
from nima_enhance.train import actions
from nima_enhance.train import loop


class EvaluatedTask(test_loop.LinearTask):
  """LinearTask with an evaluation: the full-data MSE, by numpy."""

  def __init__(self):
    self.evaluated_at = []

  def examples_in_epoch(self):
    return 64

  def evaluate(self, model):
    kernel, bias = model.get_layer("dense").get_weights()
    mse = np.mean((test_loop._DATA @ kernel + bias - test_loop._TARGET) ** 2)
    self.evaluated_at.append(mse)
    return {"mse": mse}


def _scalars(model_dir):
  values = {}
  for path in glob.glob(os.path.join(model_dir, "train", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        values.setdefault(value.tag, []).append(
            (event.step, float(tf.make_ndarray(value.tensor))))
  return values


def test_periodic_evaluation_and_epochs(tmp_path):
  task = EvaluatedTask()
  model_dir = str(tmp_path / "m")
  result = loop.train_loop(task, model_dir, num_steps=6, global_batch_size=16,
                           log_every=2, eval_every=3, progress=False)
  assert len(task.evaluated_at) == 2  # steps 3 and 6
  kernel, bias = result["model"].get_layer("dense").get_weights()
  expected = np.mean((test_loop._DATA @ kernel + bias - test_loop._TARGET) ** 2)
  np.testing.assert_allclose(result["eval"]["mse"], expected, rtol=1e-6)
  scalars = _scalars(model_dir)
  assert [s for s, _ in scalars["eval/mse"]] == [3, 6]
  # examples_in_epoch: 16 examples a step over 64 -> a quarter epoch a step.
  assert scalars["epoch"] == [(2, 0.5), (4, 1.0), (6, 1.5)]


def test_no_evaluation_by_default(tmp_path):
  task = EvaluatedTask()
  result = loop.train_loop(task, str(tmp_path / "m"), num_steps=2,
                           global_batch_size=16, progress=False)
  assert task.evaluated_at == [] and result["eval"] is None


def test_progress_format_and_preemption_flag():
  assert actions.format_seconds(3725) == "1h02m05s"
  assert actions.format_seconds(65) == "1m05s"
  preemption = actions.Preemption(agree=False)
  assert float(preemption.flag()) == 0.0
  preemption.raised = True
  assert float(preemption.flag()) == 1.0
  assert preemption.stopping(tf.constant(0.0))  # alone: its own flag decides
  assert not actions.Preemption(agree=True).stopping(tf.constant(0.0))
