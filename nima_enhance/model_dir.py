"""Self-describing model dirs: `model_spec.json` plus the latest checkpoint.

The training loop writes `model_spec.json` (the Task's architecture and
preprocessing); scoring, the enhancer, export and the demo reopen a model dir
through `open_model_dir` and `restore`, so no training flags or gin files are
needed after training (docs/architecture.md, "Model dirs").

The architecture is derived, not hand-listed: a Task builds its model with
`build_recorded`, which resolves *every* argument of the builder (explicit,
else gin binding, else default) through the one config module and records
them, so a new builder argument is recorded without anyone remembering to.
Loaders rebuild with `build_from_spec`, which refuses a spec whose arguments
do not match the builder's signature.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Callable, Dict, Tuple

import keras
import tensorflow as tf

from nima_enhance import config

SPEC_NAME = "model_spec.json"
# 2: "spec_version" present and every builder argument recorded. 1 (no
# "spec_version"): dirs written before that; arguments left out of them take
# the builder's defaults, as when they were written.
SPEC_VERSION = 2
# The model_spec.json "task" written by each training Task -> the binary that
# writes it and the export kind it serves as (one map, used by export too).
WRITERS = {"nima": "nima-train", "enhancer": "enhance-train"}
KINDS = {"nima": "scorer", "enhancer": "enhancer"}


class SpecError(ValueError):
  """A model_spec.json that cannot rebuild its model; one-line message."""


def _jsonable(value):
  if isinstance(value, (tuple, list)):
    return [_jsonable(v) for v in value]
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  return value


def build_recorded(builder: Callable[..., keras.Model], **explicit
                  ) -> Tuple[keras.Model, Dict[str, object]]:
  """Builds a model and returns it with every argument it was built with.

  Args:
    builder: a gin-configurable model builder (`build_nima`, `build_can`).
    **explicit: arguments the caller sets (they win over gin).

  Returns:
    (model, arguments): the arguments, JSON-able, for model_spec.json under
    the builder's name. The builder is called with all of them, so the record
    is exactly the call.
  """
  args = config.configured_arguments(builder, **explicit)
  return builder(**args), _jsonable(args)


def recorded_arguments(builder: Callable, **explicit) -> Dict[str, object]:
  """The arguments `build_recorded` would record (without building)."""
  return _jsonable(config.configured_arguments(builder, **explicit))


def builder_arguments(spec: Dict[str, object], builder: Callable
                     ) -> Dict[str, object]:
  """The recorded arguments of `builder` in a spec, checked against it.

  Raises:
    SpecError: an argument the builder does not take, or (spec_version 2) one
      it takes that is not recorded.
  """
  key = builder.__name__
  version = spec.get("spec_version", 1)
  if version not in (1, SPEC_VERSION):
    raise SpecError(f"{SPEC_NAME}: spec_version {version!r} is not known "
                    f"(this nima_enhance reads 1 and {SPEC_VERSION})")
  args = spec.get(key, {})
  if not isinstance(args, dict):
    raise SpecError(f"{SPEC_NAME}: {key} must be an object, got {args!r}")
  parameters = inspect.signature(builder).parameters
  unknown = sorted(set(args) - set(parameters))
  if unknown:
    raise SpecError(f"{SPEC_NAME}: {key} has arguments {unknown} that "
                    f"{key}() does not take (written by a newer version?)")
  missing = sorted(set(parameters) - set(args))
  if version == SPEC_VERSION and missing:
    raise SpecError(f"{SPEC_NAME}: {key} does not record {missing} "
                    f"(spec_version {SPEC_VERSION} records every argument)")
  return dict(args)


def build_from_spec(spec: Dict[str, object], builder: Callable[..., keras.Model],
                    **overrides) -> keras.Model:
  """Rebuilds a model dir's model: its recorded arguments, then `overrides`
  (e.g. weights=None: the checkpoint supplies the weights)."""
  args = builder_arguments(spec, builder)
  args.update(overrides)
  if isinstance(args.get("input_shape"), list):
    args["input_shape"] = tuple(args["input_shape"])
  return builder(**args)


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
                     f"a {task!r} model (written by {WRITERS.get(task)})")
  checkpoint = tf.train.latest_checkpoint(model_dir)
  if checkpoint is None:
    raise FileNotFoundError(f"{model_dir}: no checkpoint found")
  return spec, checkpoint


def restore(model: keras.Model, checkpoint: str) -> None:
  """Restores the `model` of a training-loop checkpoint (optimizers ignored)."""
  tf.train.Checkpoint(model=model).restore(
      checkpoint).expect_partial().assert_existing_objects_matched()
