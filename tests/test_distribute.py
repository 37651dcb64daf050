"""Strategy flags, the TPU static-shape check, mixed precision and XLA on CPU."""

import os
import subprocess
import sys
import types

from absl import flags
import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.bin import common
from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.data import synthetic
from nima_enhance.train import distribute
from nima_enhance.train import loop
from nima_enhance.train import nima_task

import test_loop  # pylint: disable=g-bad-import-order

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.fixture
def policy():
  """Restores the float32 policy whatever a test set."""
  yield
  keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def small_ava(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("ava_dist"))
  synthetic.make_synthetic_ava(root, num_images=24, image_size=(32, 32),
                               bad_files=False)
  ratings, _ = ava.load_split(root, "all")
  return root, ratings


def _nima_task(small_ava):
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [os.path.join(os.path.dirname(__file__), "..", "gin", "nima",
                    "from_scratch_small.gin")],
      ["preprocessing_config.image_size = (32, 32)"])
  return nima_task.NimaTask(*small_ava)


class TwoOptimizerTask(test_loop.LinearTask):
  """A hidden layer and a float32 head, each with its own optimizer."""

  def build_model(self):
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    outputs = keras.layers.Dense(1, name="head", dtype="float32")(hidden)
    return keras.Model(inputs, outputs)

  def build_optimizers(self, model, steps_per_epoch):
    return [(keras.optimizers.SGD(0.05),
             model.get_layer("hidden").trainable_variables),
            (keras.optimizers.SGD(0.05),
             model.get_layer("head").trainable_variables)]


class RaggedTask(test_loop.LinearTask):
  """Keeps the last partial batch: the batch dimension is unknown."""

  def dataset(self, input_context, batch_size, start_example, seed):
    return tf.data.Dataset.from_tensor_slices(
        (test_loop._DATA, test_loop._TARGET)).batch(batch_size).repeat()


def test_strategy_flags_parse():
  fv = flags.FlagValues()
  common.define_strategy_flags(fv)
  fv(["prog", "--distribution_strategy=tpu", "--tpu=grpc://10.0.0.2:8470",
      "--mixed_precision", "--jit_compile", "--worker_hosts=a:1,b:2",
      "--task_index=1", "--seed=7"])
  assert fv.distribution_strategy == "tpu"
  assert fv.tpu == "grpc://10.0.0.2:8470"
  assert fv.mixed_precision and fv.jit_compile and fv.seed == 7
  assert fv.worker_hosts == "a:1,b:2" and fv.task_index == 1
  with pytest.raises(flags.IllegalFlagValueError):
    fv2 = flags.FlagValues()
    common.define_strategy_flags(fv2)
    fv2(["prog", "--distribution_strategy=parameter_server"])
  assert common.precision_policy("mirrored", has_gpu=True) == "mixed_float16"
  assert common.precision_policy("tpu", has_gpu=True) == "mixed_bfloat16"
  assert common.precision_policy("one_device", has_gpu=False) == \
      "mixed_bfloat16"


def test_tpu_without_tpu_flag_is_a_usage_error(tmp_path):
  args = types.SimpleNamespace(
      distribution_strategy="tpu", tpu=None, worker_hosts=None, task_index=0,
      num_gpus=None, mixed_precision=False, jit_compile=False, gin_file=[],
      gin_bindings=[])
  with pytest.raises(common.UsageError, match="needs --tpu"):
    common.setup_training(args)
  with pytest.raises(ValueError, match="needs --tpu"):
    distribute.get_strategy("tpu")
  # The binary ends with one line, before any TPU lookup.
  proc = subprocess.run(
      [sys.executable, "-m", "nima_enhance.bin.nima_train", "--ava_dir",
       str(tmp_path), "--model_dir", str(tmp_path / "m"),
       "--distribution_strategy=tpu"], capture_output=True, text=True,
      timeout=120, env=ENV)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert "needs --tpu" in proc.stderr.strip().splitlines()[-1]


def test_static_shape_check():
  data = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4, 4, 3)),
                                             np.zeros((10, 10))))
  distribute.assert_static_shapes(data.batch(4, drop_remainder=True))
  with pytest.raises(distribute.StaticShapeError,
                     match=r"\[0\] has shape \(None, 4, 4, 3\).*drop_remainder"):
    distribute.assert_static_shapes(data.batch(4), "AVA input")
  images = tf.data.Dataset.from_generator(
      lambda: iter([]), output_signature=tf.TensorSpec([None, None, 3]))
  assert distribute.unknown_shapes(
      {"image": images.element_spec, "label": tf.TensorSpec([2])}) == [
          "['image'] has shape (None, None, 3)"]


def test_loop_refuses_dynamic_shapes_when_required(tmp_path):
  # What a TPU strategy turns on by itself (require_static_shapes=None).
  with pytest.raises(distribute.StaticShapeError, match="linear training"):
    loop.train_loop(RaggedTask(), str(tmp_path / "r"), num_steps=1,
                    global_batch_size=8, require_static_shapes=True,
                    progress=False)
  result = loop.train_loop(test_loop.LinearTask(), str(tmp_path / "ok"),
                           num_steps=1, global_batch_size=8,
                           require_static_shapes=True, progress=False)
  assert result["step"] == 1


def test_ava_training_input_is_static(small_ava):
  root, ratings = small_ava
  preprocessing = ava_pipeline.preprocessing_config(image_size=(32, 32))
  data = ava_pipeline.make_dataset(root, ratings, preprocessing, 4,
                                   training=True)
  distribute.assert_static_shapes(data, "AVA training input")


def test_mixed_bfloat16_nima_trains(small_ava, tmp_path, policy):
  del policy
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  task = _nima_task(small_ava)
  result = loop.train_loop(task, str(tmp_path / "bf16"), num_steps=3,
                           global_batch_size=8, progress=False)
  model = result["model"]
  assert np.isfinite(result["loss"]) and result["step"] == 3
  assert model.get_layer("small_fc").compute_dtype == "bfloat16"
  assert model.get_layer(nima_task.HEAD_LAYER).compute_dtype == "float32"
  assert model.output.dtype == "float32"
  assert all(v.dtype == "float32" for v in model.trainable_variables)
  gin.clear_config()


def test_mixed_float16_loss_scaling(tmp_path, policy):
  del policy
  keras.mixed_precision.set_global_policy("mixed_float16")
  result = loop.train_loop(TwoOptimizerTask(), str(tmp_path / "f16"),
                           num_steps=6, global_batch_size=8, progress=False)
  assert np.isfinite(result["loss"])
  # The checkpoint holds two LossScaleOptimizers with equal dynamic scales.
  reader = tf.train.load_checkpoint(result["checkpoint"])
  scales = [reader.get_tensor(name) for name in
            reader.get_variable_to_shape_map() if "dynamic_scale" in name]
  assert len(scales) == 2 and scales[0] == scales[1], scales


def test_loss_scaling_skips_all_optimizers_together(policy):
  del policy
  optimizers = [keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0),
                                                    initial_scale=s)
                for s in (8.0, 32.0)]
  a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0])
  optimizers[0].build([a])
  optimizers[1].build([b])
  scaling = loop._LossScaling(optimizers)
  assert float(scaling.scale_loss(tf.constant(2.0))) == 16.0
  # Finite: optimizer 1's gradient is rescaled to its own (larger) scale.
  ga, gb = scaling.prepare([[tf.constant([8.0, 16.0])], [tf.constant([8.0])]])
  np.testing.assert_allclose(ga[0], [8.0, 16.0])
  np.testing.assert_allclose(gb[0], [32.0])
  optimizers[1].apply_gradients([(gb[0], b)])
  np.testing.assert_allclose(b.numpy(), [2.0])  # 3 - 32 / 32
  # One non-finite gradient anywhere: every optimizer skips and halves.
  ga, gb = scaling.prepare([[tf.constant([np.inf, 1.0])], [tf.constant([1.0])]])
  for optimizer, grad, var in zip(optimizers, (ga, gb), (a, b)):
    before = var.numpy().copy()
    optimizer.apply_gradients([(grad[0], var)])
    np.testing.assert_array_equal(var.numpy(), before)
  assert [float(o.dynamic_scale.numpy()) for o in optimizers] == [4.0, 16.0]


def test_jit_compile_step_matches_plain_step(tmp_path):
  plain = loop.train_loop(TwoOptimizerTask(), str(tmp_path / "plain"),
                          num_steps=3, global_batch_size=8, progress=False)
  jit = loop.train_loop(TwoOptimizerTask(), str(tmp_path / "jit"),
                        num_steps=3, global_batch_size=8, jit_compile=True,
                        progress=False)
  assert jit["step"] == 3 and np.isfinite(jit["loss"])
  np.testing.assert_allclose(test_loop._weights(jit),
                             test_loop._weights(plain), rtol=1e-4, atol=1e-5)
