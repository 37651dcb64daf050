"""Self-describing model dirs: `model_spec.json` plus the latest checkpoint.

The training loop writes `model_spec.json` (the Task's architecture and
preprocessing); scoring, the enhancer, export and the demo reopen a model dir
through `open_model_dir` and `restore`, so no training flags or gin files are
needed after training.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Tuple

import keras
import tensorflow as tf

SPEC_NAME = "model_spec.json"
_WRITERS = {"nima": "nima-train", "enhancer": "enhance-train"}


def read_model_spec(model_dir: str) -> Dict[str, object]:
  """The parsed model_spec.json; FileNotFoundError naming the path."""
  path = os.path.join(model_dir, SPEC_NAME)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: not found; is {model_dir} a model dir "
                            "written by nima-train or enhance-train?")
  with open(path, "r", encoding="utf-8") as f:
    return json.load(f)


def open_model_dir(model_dir: str, task: str) -> Tuple[Dict[str, object], str]:
  """(spec, latest checkpoint) of a model dir holding a `task` model.

  Raises:
    FileNotFoundError: no model_spec.json or no checkpoint.
    ValueError: the model dir holds another kind of model.
  """
  spec = read_model_spec(model_dir)
  if spec.get("task") != task:
    raise ValueError(f"{model_dir}: holds a {spec.get('task')!r} model, not "
                     f"a {task!r} model (written by {_WRITERS.get(task)})")
  checkpoint = tf.train.latest_checkpoint(model_dir)
  if checkpoint is None:
    raise FileNotFoundError(f"{model_dir}: no checkpoint found")
  return spec, checkpoint


def restore(model: keras.Model, checkpoint: str) -> None:
  """Restores the `model` of a training-loop checkpoint (optimizers ignored)."""
  tf.train.Checkpoint(model=model).restore(
      checkpoint).expect_partial().assert_existing_objects_matched()
