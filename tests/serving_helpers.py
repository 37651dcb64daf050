"""Tiny trained-looking model dirs and real-photo requests for the serving tests.

The model dirs have the layout the training loop writes (model_spec.json,
`tf.train.Checkpoint(model=..., step=...)`, operative_config.gin) but are built
directly with random weights, which is all export needs and takes a second.
"""

import json
import os

import numpy as np
import tensorflow as tf

from nima_enhance.data import image_write
from nima_enhance.models import can
from nima_enhance.models import nima as nima_lib

PREPROCESSING = {"mode": "paper", "image_size": [48, 64], "resize_size": 256,
                 "random_flip": True}
# Small CAN; a large init_noise so the network is far from the identity and a
# wrong weight or op would show in the outputs.
CAN_ARGS = {"width": 8, "depth": 4, "dilations": [1, 2, 4],
            "adaptive_norm": True, "leaky_slope": 0.2, "init_noise": 0.2,
            "clip_output": False, "seed": 3}
NIMA_STEP = 7
CAN_STEP = 3


def make_nima_dir(model_dir: str) -> str:
  os.makedirs(model_dir, exist_ok=True)
  model = nima_lib.build_nima(backbone="small_cnn", weights=None, dropout=0.1)
  step = tf.Variable(NIMA_STEP, dtype=tf.int64)
  tf.train.Checkpoint(model=model, step=step).save(
      os.path.join(model_dir, "ckpt"))
  spec = {"task": "nima", "preprocessing": PREPROCESSING,
          "build_nima": {"backbone": "small_cnn", "dropout": 0.1}}
  with open(os.path.join(model_dir, "model_spec.json"), "w") as f:
    json.dump(spec, f)
  with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
    f.write(f"train_loop.num_steps = {NIMA_STEP}\n")
  return model_dir


def make_can_dir(model_dir: str) -> str:
  os.makedirs(model_dir, exist_ok=True)
  model = can.build_can(**CAN_ARGS)
  # Non-trivial normalization weights and moving statistics (mu starts at 0,
  # which would hide the inference-mode batch norm entirely).
  values = {"mu": 0.5, "moving_mean": 0.1, "moving_variance": 0.5}
  for weight in model.weights:
    name = weight.path.rsplit("/", 1)[-1]
    if name in values:
      weight.assign(np.full(weight.shape, values[name], np.float32))
  step = tf.Variable(CAN_STEP, dtype=tf.int64)
  tf.train.Checkpoint(model=model, step=step).save(
      os.path.join(model_dir, "ckpt"))
  spec = {"task": "enhancer", "build_can": CAN_ARGS, "target": "synthetic",
          "gamma": 0.0}
  with open(os.path.join(model_dir, "model_spec.json"), "w") as f:
    json.dump(spec, f)
  return model_dir


def photo_uint8(name: str) -> np.ndarray:
  from skimage import data  # pylint: disable=g-import-not-at-top
  return getattr(data, name)()


def encode(array_uint8: np.ndarray, fmt: str) -> bytes:
  image = array_uint8.astype(np.float32) / 255.0
  return image_write.encode_image(image, fmt)


def scorer_requests() -> dict:
  """Real photos of different sizes as JPEG and PNG bytes, keyed by name."""
  return {"astronaut.jpg": encode(photo_uint8("astronaut"), "jpeg"),
          "coffee.png": encode(photo_uint8("coffee"), "png"),
          "chelsea.jpg": encode(photo_uint8("chelsea"), "jpeg")}


def enhancer_requests() -> dict:
  """Two real-photo crops of different sizes (a CPU-cheap full-size pass)."""
  return {"astronaut.png": encode(photo_uint8("astronaut")[100:196, 150:278],
                                  "png"),
          "coffee.jpg": encode(photo_uint8("coffee")[50:121, 200:291], "jpeg")}
