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


def test_specs_record_every_builder_argument_and_refuse_mismatches():
  from nima_enhance.models import can  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    gin.parse_config("build_can.width = 8")
    model, args = model_dir.build_recorded(can.build_can, depth=3)
  finally:
    gin.clear_config()
  # Every parameter of the builder, gin's value and the explicit one included.
  import inspect  # pylint: disable=g-import-not-at-top
  assert set(args) == set(inspect.signature(can.build_can).parameters)
  assert args["width"] == 8 and args["depth"] == 3
  spec = {"task": "enhancer", "spec_version": model_dir.SPEC_VERSION,
          "build_can": args}
  rebuilt = model_dir.build_from_spec(spec, can.build_can)
  assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]
  with pytest.raises(model_dir.SpecError, match=r"\['bogus'\].*does not take"):
    model_dir.build_from_spec(dict(spec, build_can=dict(args, bogus=1)),
                              can.build_can)
  partial = {k: v for k, v in args.items() if k != "width"}
  with pytest.raises(model_dir.SpecError, match=r"does not record \['width'\]"):
    model_dir.build_from_spec(dict(spec, build_can=partial), can.build_can)
  # Version-1 dirs (no spec_version) recorded a subset: defaults fill in.
  old = model_dir.build_from_spec({"build_can": partial}, can.build_can)
  assert old.get_layer("conv_0").filters == 32
  with pytest.raises(model_dir.SpecError, match="spec_version 7"):
    model_dir.build_from_spec(dict(spec, spec_version=7), can.build_can)
