"""Building the TFDS data sets and reading them for training.

The readers produce exactly what the loose-file pipelines produce: AVA gives
(pixels [0, 255] of the network's input size, distribution) batches through
`images.decode_image_tf` and `ava_pipeline.preprocess_tf`; FiveK pairs give
float [0, 1] (input, target) images. Training datasets are sharded by the
tf.distribute input context (by file when there are enough TFRecord files,
else by element), shuffled with a seed, repeated, and skip `start_example`
elements before decoding so a resumed run sees the data an uninterrupted one
would.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, Optional, Tuple

from absl import logging
import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from nima_enhance.data import ava_pipeline
from nima_enhance.data import fivek_pipeline
from nima_enhance.data import images
from nima_enhance.data.tfds.ava_builder import Ava
from nima_enhance.data.tfds.fivek_builder import MitAdobeFivekPairs

BUILDERS = {"ava": Ava, "mit_adobe_fivek_pairs": MitAdobeFivekPairs}


def load_builder(name: str, data_dir: str,
                 config: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """The builder `name` over `data_dir` (nothing is downloaded)."""
  if name not in BUILDERS:
    raise ValueError(f"unknown TFDS data set {name!r}: expected one of "
                     f"{', '.join(sorted(BUILDERS))}")
  kwargs = {"config": config} if config else {}
  return BUILDERS[name](data_dir=data_dir, **kwargs)


def build(name: str, data_dir: str, manual_dir: str,
          config: Optional[str] = None, beam_runner: object = None,
          beam_options: object = None) -> tfds.core.DatasetBuilder:
  """Builds TFRecords of `name` into data_dir from a manual directory.

  Args:
    name: "ava" or "mit_adobe_fivek_pairs".
    data_dir: TFDS data_dir to write to.
    manual_dir: the loose-file layout (see the builder's
      MANUAL_DOWNLOAD_INSTRUCTIONS).
    config: builder config (fivek pairs: the target, e.g. "local_laplacian").
    beam_runner, beam_options: build mit_adobe_fivek_pairs with Apache Beam
      (TFDS's Beam support) when either is given (see
      `nima_enhance.data.beam_runner.pipeline_options`); ava is always built
      by its generator.

  Returns:
    the prepared builder.
  """
  if not os.path.isdir(manual_dir):
    raise FileNotFoundError(f"{manual_dir}: manual directory not found")
  builder = load_builder(name, data_dir, config)
  use_beam = (beam_runner is not None or beam_options is not None) and hasattr(
      builder, "use_beam")
  if use_beam:
    builder.use_beam = True
  # Never reach for cloud storage: everything comes from manual_dir.
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir,
          beam_runner=beam_runner if use_beam else None,
          beam_options=beam_options if use_beam else None),
      file_format="tfrecord")
  return builder


def _prepared(name: str, data_dir: str,
              config: Optional[str] = None) -> tfds.core.DatasetBuilder:
  builder = load_builder(name, data_dir, config)
  if not tf.io.gfile.exists(os.path.join(builder.data_dir,
                                         "dataset_info.json")):
    raise FileNotFoundError(
        f"{data_dir}: no prepared {name} data set (build it with "
        f"nima_enhance.data.tfds.build({name!r}, {data_dir!r}, MANUAL_DIR), "
        f"`build-tfds --dataset {name} ...` or "
        f"`tfds build`)")
  return builder


def _sharded(builder: tfds.core.DatasetBuilder, split: str,
             input_context: Optional[tf.distribute.InputContext],
             seed: int, shuffle_files: bool) -> tf.data.Dataset:
  """The split, this input pipeline's shard of it, in a seeded order."""
  pipelines = input_context.num_input_pipelines if input_context else 1
  num_files = builder.info.splits[split].num_shards
  by_file = pipelines > 1 and num_files >= pipelines
  read_config = tfds.ReadConfig(
      shuffle_seed=seed, input_context=input_context if by_file else None,
      shuffle_reshuffle_each_iteration=True)
  dataset = builder.as_dataset(split=split, shuffle_files=shuffle_files,
                               read_config=read_config)
  if pipelines > 1 and not by_file:
    # Fewer TFRecord files than pipelines: every pipeline reads everything
    # and keeps its share of the elements.
    logging.info("%s: %d file(s) for %d input pipelines; sharding by element",
                 builder.name, num_files, pipelines)
    dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
  return dataset


@gin.configurable(denylist=["data_dir", "preprocessing", "batch_size", "seed",
                            "start_example", "input_context"])
def ava_train_dataset(data_dir: str, preprocessing: Dict[str, object],
                      batch_size: int, seed: int = 0, start_example: int = 0,
                      input_context: Optional[tf.distribute.InputContext] = None,
                      shuffle_buffer: int = 10000) -> tf.data.Dataset:
  """AVA training batches from TFRecords, as ava_pipeline.make_dataset does.

  Args:
    data_dir: TFDS data_dir holding the prepared `ava` data set.
    preprocessing: ava_pipeline.preprocessing_config().
    batch_size: per-replica batch size (remainder dropped: static shapes).
    seed: shuffling seed.
    start_example: elements of this pipeline to skip (resume).
    input_context: tf.distribute input context (sharding).
    shuffle_buffer: examples held for shuffling (encoded bytes; bounded so
      the real AVA fits in memory, unlike the loose-file path's full shuffle).

  Returns:
    infinite dataset of (pixels [0, 255], distribution) batches.
  """
  builder = _prepared("ava", data_dir)
  dataset = _sharded(builder, "train", input_context, seed,
                     shuffle_files=True)
  dataset = dataset.map(lambda ex: (ex["image_bytes"], ex["distribution"]))
  dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                            reshuffle_each_iteration=True).repeat()
  if start_example:
    dataset = dataset.skip(start_example)

  def load(image_bytes, distribution):
    # The files pipeline's reader (ava_pipeline.make_dataset): the same pixels.
    return (ava_pipeline.load_pixels_tf(image_bytes, preprocessing,
                                        training=True),
            distribution)

  options = tf.data.Options()
  options.deterministic = True  # resume must replay the same batches
  dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def num_examples(name: str, data_dir: str, split: str = "train",
                 config: Optional[str] = None) -> int:
  """Examples in a prepared split."""
  return _prepared(name, data_dir, config).info.splits[split].num_examples


def fivek_pairs_dataset(data_dir: str, target: str, split: str = "train",
                        input_context: Optional[tf.distribute.InputContext] =
                        None, seed: int = 0) -> tf.data.Dataset:
  """Unbatched (name, input, target) float [0, 1] images of one split.

  Resizing, cropping and batching are the enhancer pipeline's business
  (`nima_enhance.data.fivek_pipeline`); this only replaces its file reading.
  """
  builder = _prepared("mit_adobe_fivek_pairs", data_dir, target)
  dataset = _sharded(builder, split, input_context, seed,
                     shuffle_files=split == "train")

  def load(ex) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    return (ex["name"], images.decode_image_tf(ex["input_bytes"]),
            images.decode_image_tf(ex["target_bytes"]))

  return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def fivek_skipped_at_build(data_dir: str, target: str) -> Dict[str, int]:
  """Pairs the build skipped, per split (names are in the build's log)."""
  return dict(_prepared("mit_adobe_fivek_pairs", data_dir, target
                        ).info.metadata.get("skipped", {}))


def fivek_train_pairs(data_dir: str,
                      target: str) -> fivek_pipeline.EncodedPairs:
  """The train split of `mit_adobe_fivek_pairs/<target>` for the enhancer.

  `fivek_pipeline.make_train_dataset` turns it into batches exactly as it
  does the loose files (resize, crops, shuffle, repeat, resume skip); this
  only supplies each input pipeline's shard of encoded (input, target)
  bytes.
  """
  builder = _prepared("mit_adobe_fivek_pairs", data_dir, target)

  def make_dataset(input_context: Optional[tf.distribute.InputContext],
                   seed: int) -> tf.data.Dataset:
    dataset = _sharded(builder, "train", input_context, seed,
                       shuffle_files=True)
    return dataset.map(lambda ex: (ex["input_bytes"], ex["target_bytes"]))

  return fivek_pipeline.EncodedPairs(
      builder.info.splits["train"].num_examples, make_dataset)


def iterate_fivek_pairs(data_dir: str, target: str, split: str = "test"
                        ) -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
  """(name, input, target) numpy images at original size, like
  `fivek.iterate_pairs` over the loose files ("all": train then test).

  Targets of another size than their input are resized to it, as there.
  """
  for part in (("train", "test") if split == "all" else (split,)):
    for name, source, reference in fivek_pairs_dataset(data_dir, target, part):
      source, reference = source.numpy(), reference.numpy()
      if reference.shape != source.shape:
        reference = images.resize(reference, source.shape[:2])
      yield name.numpy().decode("utf-8"), source, reference
