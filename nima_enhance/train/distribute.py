"""tf.distribute strategies from a name, and chief/worker bookkeeping.

Every model trains through the same custom loop under one of these strategies:
`one_device`, `mirrored` (all local GPUs, or all logical CPUs when there is no
GPU, which is how tests exercise it), `multi_worker_mirrored` (TF_CONFIG) and
`tpu`.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import List, Optional, Sequence

import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


def check_tpu_name(name: str, tpu: Optional[str]) -> None:
  """The one check that a TPU strategy names its TPU (ValueError if not).

  Binaries call it before anything touches TensorFlow, so the reason is one
  line; get_strategy calls it too.
  """
  if name == "tpu" and not tpu:
    raise ValueError("--distribution_strategy=tpu needs --tpu (a TPU name, "
                     "grpc://host:port, or 'local' on a TPU VM)")


def write_tf_config(worker_hosts: Sequence[str], task_index: int) -> dict:
  """Sets TF_CONFIG for a multi-worker cluster given host:port strings."""
  hosts = [h.strip() for h in worker_hosts if h.strip()]
  if not hosts:
    raise ValueError("--worker_hosts is empty")
  if not 0 <= task_index < len(hosts):
    raise ValueError(f"--task_index={task_index} is outside --worker_hosts "
                     f"(0..{len(hosts) - 1})")
  tf_config = {"cluster": {"worker": hosts},
               "task": {"type": "worker", "index": task_index}}
  os.environ["TF_CONFIG"] = json.dumps(tf_config)
  return tf_config


def get_strategy(name: str = "one_device", tpu: Optional[str] = None,
                 num_gpus: Optional[int] = None) -> tf.distribute.Strategy:
  """Builds a tf.distribute strategy from its flag name.

  Args:
    name: one of STRATEGIES.
    tpu: TPU name or grpc:// address (for "tpu"); "local" on a TPU VM.
    num_gpus: for "mirrored", how many local GPUs (default all).

  Returns:
    The strategy.

  Raises:
    ValueError: unknown name, or a TPU strategy without --tpu.
  """
  if name not in STRATEGIES:
    raise ValueError(f"--distribution_strategy={name!r}: expected one of "
                     f"{', '.join(STRATEGIES)}")
  if name == "multi_worker_mirrored":
    # Before anything lists logical devices: that initialises the eager
    # context, after which collective ops can no longer be configured.
    if "TF_CONFIG" not in os.environ:
      raise ValueError("--distribution_strategy=multi_worker_mirrored needs "
                       "TF_CONFIG or --worker_hosts/--task_index")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    return _tpu_strategy(tpu)
  gpus = tf.config.list_logical_devices("GPU")
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    if gpus:
      devices = [d.name for d in gpus[:num_gpus]] if num_gpus else None
      return tf.distribute.MirroredStrategy(devices=devices)
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(devices=cpus)


def _tpu_strategy(tpu: Optional[str]) -> tf.distribute.TPUStrategy:
  """Resolver, connection, TPU system initialisation, TPUStrategy."""
  check_tpu_name("tpu", tpu)
  # "local": the TPU is attached to this VM (TPU VM); otherwise a Cloud TPU
  # name or a grpc:// worker address.
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def split_logical_cpus(count: int) -> None:
  """Splits the host CPU into `count` logical devices (call before any TF op).

  Lets `mirrored` run with several replicas on a CPU-only machine (tests).
  """
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)


def is_tpu(strategy: tf.distribute.Strategy) -> bool:
  """True for TPUStrategy (static shapes required)."""
  return isinstance(strategy, tf.distribute.TPUStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True unless this is a non-chief worker of a multi-worker cluster."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, "chief"):
    return True
  cluster = resolver.cluster_spec().as_dict()
  # Without an explicit chief, worker 0 acts as chief (tf.distribute convention).
  return task_type == "worker" and task_id == 0 and "chief" not in cluster


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this worker writes: model_dir on the chief, a temp dir elsewhere.

  Non-chief workers must still take part in saving (collective ops), but into a
  throw-away directory, as the tf.distribute multi-worker guide prescribes.
  """
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, "workertemp",
                      f"{resolver.task_type}_{resolver.task_id}")


def cleanup_worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> None:
  """Removes a non-chief worker's throw-away dir (and workertemp/ if empty)."""
  if not is_chief(strategy):
    path = worker_dir(model_dir, strategy)
    shutil.rmtree(path, ignore_errors=True)
    try:
      os.rmdir(os.path.dirname(path))
    except OSError:
      pass  # Another worker's dir is still there; the last one removes it.


class StaticShapeError(ValueError):
  """An input element without a fully defined shape where one is required."""


def unknown_shapes(element_spec) -> List[str]:
  """Describes every component of `element_spec` whose shape is not static."""
  problems = []
  for path, spec in _flatten_with_paths(element_spec):
    shape = getattr(spec, "shape", None)
    if shape is not None and not shape.is_fully_defined():
      problems.append(f"{path or 'element'} has shape {shape}")
  return problems


def _flatten_with_paths(structure, prefix: str = ""):
  if isinstance(structure, dict):
    for key in sorted(structure):
      yield from _flatten_with_paths(structure[key], f"{prefix}[{key!r}]")
  elif isinstance(structure, (tuple, list)):
    for i, item in enumerate(structure):
      yield from _flatten_with_paths(item, f"{prefix}[{i}]")
  else:
    yield prefix, structure


def assert_static_shapes(dataset: tf.data.Dataset, what: str = "dataset"
                        ) -> None:
  """Raises StaticShapeError unless every element shape is fully defined.

  TPUs compile one program per input shape, so their input must be batched
  with drop_remainder=True and every image brought to one fixed size.

  Args:
    dataset: the (batched) dataset a replica will consume.
    what: name used in the error message.

  Raises:
    StaticShapeError: naming each component with an unknown dimension.
  """
  problems = unknown_shapes(dataset.element_spec)
  if problems:
    raise StaticShapeError(
        f"{what} needs static shapes on TPU, but {'; '.join(problems)}. Batch "
        "with drop_remainder=True and resize/crop images to one fixed size.")
