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
from typing import Optional, Sequence

import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


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
    tpu: TPU name or grpc:// address (for "tpu"); "" or "local" on a TPU VM.
    num_gpus: for "mirrored", how many local GPUs (default all).

  Returns:
    The strategy.

  Raises:
    ValueError: unknown name, or a TPU strategy without --tpu.
  """
  if name not in STRATEGIES:
    raise ValueError(f"--distribution_strategy={name!r}: expected one of "
                     f"{', '.join(STRATEGIES)}")
  gpus = tf.config.list_logical_devices("GPU")
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    if gpus:
      devices = [d.name for d in gpus[:num_gpus]] if num_gpus else None
      return tf.distribute.MirroredStrategy(devices=devices)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=cpus)
  if name == "multi_worker_mirrored":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("--distribution_strategy=multi_worker_mirrored needs "
                       "TF_CONFIG or --worker_hosts/--task_index")
    return tf.distribute.MultiWorkerMirroredStrategy()
  # TPU.
  if tpu is None:
    raise ValueError("--distribution_strategy=tpu needs --tpu (a TPU name, "
                     "grpc://host:port, or 'local' on a TPU VM)")
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
      tpu="" if tpu == "local" else tpu)
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
  if not is_chief(strategy):
    shutil.rmtree(worker_dir(model_dir, strategy), ignore_errors=True)
