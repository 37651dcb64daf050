"""NimaTask: the training flip runs in the step, not in the input pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.train import nima_task

pytestmark = pytest.mark.usefixtures("clean_gin")


def _mirrored_count(got, batch):
  """How many images of `got` are mirrors of `batch`'s (others: equal)."""
  count = 0
  for out, image in zip(got, batch):
    same = np.array_equal(out, image)
    mirror = np.array_equal(out, image[:, ::-1])
    assert same or mirror
    count += int(mirror)
  return count


def test_flip_batch_mirrors_about_half_and_only_when_asked():
  batch = np.random.default_rng(0).uniform(
      0, 255, (64, 5, 7, 3)).astype(np.float32)
  prep = ava_pipeline.preprocessing_config(random_flip=True)
  flipped = _mirrored_count(ava_pipeline.flip_batch_tf(tf.constant(batch),
                                                       prep).numpy(), batch)
  assert 16 <= flipped <= 48
  off = ava_pipeline.preprocessing_config(random_flip=False)
  np.testing.assert_array_equal(
      ava_pipeline.flip_batch_tf(tf.constant(batch), off).numpy(), batch)


def test_training_step_flips_and_the_pipeline_does_not(monkeypatch):
  task = nima_task.NimaTask("ava", ava.AvaRatings(["1"], np.full(
      (1, 10), 0.1, np.float32), np.ones(1, np.int64)), weights=None)
  assert task.preprocessing["random_flip"]
  seen = []

  def model(pixels, training):
    seen.append(pixels.numpy())
    return tf.fill([tf.shape(pixels)[0], 10], 0.1)

  batch = np.random.default_rng(1).uniform(
      0, 255, (64, 4, 6, 3)).astype(np.float32)
  labels = tf.fill([64, 10], 0.1)
  task.per_example_loss(model, (tf.constant(batch), labels), training=True)
  assert 16 <= _mirrored_count(seen[-1], batch) <= 48
  task.per_example_loss(model, (tf.constant(batch), labels), training=False)
  np.testing.assert_array_equal(seen[-1], batch)
  # The loose-file pipeline is built without the flip.
  made = {}
  monkeypatch.setattr(ava_pipeline, "make_dataset",
                      lambda *args, **kwargs: made.setdefault("prep", args[2]))
  task.dataset(None, 4, 0, 0)
  assert made["prep"] == dict(task.preprocessing, random_flip=False)
