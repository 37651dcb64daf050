"""Opening self-describing model dirs (model_spec.json + checkpoint)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from nima_enhance import model_dir


def _write(tmp_path, spec, with_checkpoint=True):
  (tmp_path / "model_spec.json").write_text(json.dumps(spec))
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  if with_checkpoint:
    tf.train.Checkpoint(model=model, step=tf.Variable(3)).save(
        str(tmp_path / "ckpt"))
  return model


def test_open_and_restore(tmp_path):
  saved = _write(tmp_path, {"task": "nima", "build_nima": {}})
  spec, checkpoint = model_dir.open_model_dir(str(tmp_path), "nima")
  assert spec["task"] == "nima" and checkpoint.endswith("ckpt-1")
  fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model_dir.restore(fresh, checkpoint)
  np.testing.assert_array_equal(fresh.get_weights()[0],
                                saved.get_weights()[0])


def test_errors_name_the_problem(tmp_path):
  with pytest.raises(FileNotFoundError, match="model_spec.json: not found"):
    model_dir.open_model_dir(str(tmp_path), "nima")
  _write(tmp_path, {"task": "enhancer"}, with_checkpoint=False)
  with pytest.raises(ValueError, match="holds a 'enhancer' model.*nima-train"):
    model_dir.open_model_dir(str(tmp_path), "nima")
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    model_dir.open_model_dir(str(tmp_path), "enhancer")
