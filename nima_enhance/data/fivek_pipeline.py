"""The enhancer's tf.data pipeline over FiveK-style pairs.

Training (paper sec. 4.2): images are resized so the largest side is 640
(FiveK's 3:4 photos become 480x640), input and target identically, values in
[0, 1], batch 1. Batches > 1 need equal sizes, so they take random crops of a
fixed `crop_size` (the same window of input and target). Evaluation reads the
pairs at their original size (`fivek.iterate_pairs`, no graph).

It is apart from `data/fivek.py` (matching files into pairs, splits, the
file check), which holds no graph code: evaluation, the TFDS builder and the
demo report read pairs without this pipeline, and the pipeline also takes
pairs held as TFDS records (`EncodedPairs`), not files.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence, Union

import gin
import numpy as np
import tensorflow as tf

from nima_enhance import config
from nima_enhance.data import fivek
from nima_enhance.data import image_headers
from nima_enhance.data import images


def load_image_tf(path: tf.Tensor, max_side: Optional[int] = None,
                  tiff: bool = True) -> tf.Tensor:
  """Any supported file -> float32 RGB [0, 1]; TIFF through the numpy decoder.

  With `max_side`, shrunk so the largest side is at most max_side, a large
  JPEG decoded at a reduced scale (`images.decode_max_side_tf`). `tiff=False`
  (no .tif/.tiff among the paths) leaves the numpy decoder out of the graph:
  a Python op in a map function, even on a branch not taken, made the
  enhancer pipeline several times slower than its decoders.
  """
  if not tiff:
    image = images.decode_max_side_tf(tf.io.read_file(path), max_side)
    image.set_shape([None, None, 3])
    return image
  is_tiff = tf.strings.regex_full_match(tf.strings.lower(path),
                                        r".*\.tiff?")

  def _tiff():
    image = tf.numpy_function(
        lambda p: images.read_image(p.decode("utf-8")), [path], tf.float32)
    image = tf.reshape(image, tf.shape(image))
    image.set_shape([None, None, 3])
    return _shrink(image, max_side)

  image = tf.cond(is_tiff, _tiff,
                  lambda: images.decode_max_side_tf(tf.io.read_file(path),
                                                    max_side))
  image.set_shape([None, None, 3])
  return image


def _shrink(image: tf.Tensor, max_side: Optional[int]) -> tf.Tensor:
  """Downscales so the largest side is max_side; never upscales."""
  if not max_side:
    return image
  shape = tf.shape(image)
  return tf.cond(tf.maximum(shape[0], shape[1]) > max_side,
                 lambda: images.resize_max_side_tf(image, max_side),
                 lambda: image)


def _random_crop_pair(source, target, crop_size, seed):
  """The same random crop_size window of both (upscaled first if smaller)."""
  crop_h, crop_w = crop_size
  shape = tf.shape(source)
  scale = tf.maximum(1.0, tf.maximum(crop_h / tf.cast(shape[0], tf.float32),
                                     crop_w / tf.cast(shape[1], tf.float32)))
  size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale),
                 tf.int32)
  stacked = images.resize_tf(tf.concat([source, target], axis=-1), size)
  stacked = tf.image.random_crop(stacked, [crop_h, crop_w, 6], seed=seed)
  return stacked[..., :3], stacked[..., 3:]


def _pair_plans(pairs: fivek.Pairs, max_side: Optional[int]):
  """(input plans, target plans, sizes [n, 2]) for planned reads, or None.

  Planned when every header is known, no file is a TIFF and every target
  has its input's upright size (the usual case; otherwise the graph reads
  and matches sizes as before): each pair's size is `max_side_size_tf` of
  the input's upright size (kept when not larger than max_side), the
  input decoded toward it, the target straight to it
  (`images.decode_plan_tf`: PNG plans when all inputs, or all targets, are
  PNGs).
  """
  if not max_side or not len(pairs):
    return None
  if pairs.input_headers is None or pairs.target_headers is None:
    pairs = fivek.with_headers(pairs)
  headers = np.concatenate([pairs.input_headers, pairs.target_headers])
  if np.any((headers[:, 0] == 0)
                                | (headers[:, 0] == image_headers.TIFF)):
    return None
  def upright(h):
    return np.where((h[:, 3] >= 5)[:, None], h[:, 2:0:-1], h[:, 1:3])
  source = upright(pairs.input_headers)
  if not np.array_equal(source, upright(pairs.target_headers)):
    return None
  sizes = np.where((source.max(axis=1) > max_side)[:, None],
                   images.max_side_size_tf(source[:, 0], source[:, 1],
                                           max_side).numpy().T, source)
  sizes = sizes.astype(np.int32)
  def plans(headers):
    planned = images.decode_plan_tf(headers, sizes, png=True).numpy()
    if np.any(planned < images.PNG_PLANS):  # PNG plans go alone
      planned = images.decode_plan_tf(headers, sizes).numpy()
    return planned
  return plans(pairs.input_headers), plans(pairs.target_headers), sizes


def _planned_read(plans: np.ndarray):
  """(bytes, plan, size) -> image read by `images.decode_planned_tf`."""
  listed = np.unique(plans)
  all_planned = bool(np.all(listed != images.PARSE_PLAN))
  return lambda data, plan, size: images.decode_planned_tf(
      data, plan, size, all_planned=all_planned, plans=listed)


@dataclasses.dataclass
class EncodedPairs:
  """Training pairs held as encoded bytes in records (the TFDS path).

  `make_dataset(input_context, seed)` gives this input pipeline's shard of
  (input_bytes, target_bytes) in a seeded order (see
  `nima_enhance.data.tfds.readers.fivek_train_pairs`); `count` pairs in all.
  """
  count: int
  make_dataset: Callable[[Optional[tf.distribute.InputContext], int],
                         tf.data.Dataset]

  def __len__(self) -> int:
    return self.count


@gin.configurable(denylist=["pairs", "batch_size", "seed", "start_example",
                            "input_context"])
def make_train_dataset(pairs: Union[fivek.Pairs, EncodedPairs],
                       batch_size: int = 1,
                       seed: int = 0,
                       start_example: int = 0,
                       input_context: Optional[
                           tf.distribute.InputContext] = None,
                       max_side: Optional[int] = 640,
                       crop_size: Optional[Sequence[int]] = None,
                       num_parallel_calls: int = tf.data.AUTOTUNE,
                       record_shuffle_buffer: int = 64
                      ) -> tf.data.Dataset:
  """Infinite (input, target) training batches in [0, 1].

  The file list is sharded per input pipeline, shuffled as a whole every
  epoch, repeated, and `start_example` elements are skipped before decoding
  (resume). `EncodedPairs` (TFDS records) go through the same steps, with
  their encoded bytes in place of file paths. Input and target are resized identically (largest side
  `max_side`); with `crop_size` both are cropped to the same random window.

  Args:
    pairs: training pairs: files (`fivek.find_pairs`) or records
      (`EncodedPairs`).
    batch_size: per-replica batch; > 1 needs `crop_size`.
    seed: shuffle / crop seed.
    start_example: elements to skip (resume).
    input_context: this pipeline's shard.
    max_side: largest side after resizing (paper: 640); None keeps sizes.
    crop_size: (height, width) of random crops, or None.
    num_parallel_calls: decode parallelism.
    record_shuffle_buffer: records only: encoded pairs held for shuffling
      (the record files are also read in a seeded order); bounded because a
      full-resolution FiveK pair is tens of MB, unlike a pair of file names.

  Raises:
    ConfigError: batch_size > 1 without crop_size, or no pairs.
  """
  if not len(pairs):
    raise config.ConfigError("no training pairs (see the skipped list)")
  if batch_size > 1 and not crop_size:
    raise config.ConfigError(
        f"batch size {batch_size} needs equal image sizes: set "
        "make_train_dataset.crop_size=(h, w) or use batch size 1")
  planned = (None if isinstance(pairs, EncodedPairs)
             else _pair_plans(pairs, max_side))
  if isinstance(pairs, EncodedPairs):
    dataset = pairs.make_dataset(input_context, seed)  # already sharded
    buffer = min(len(pairs), record_shuffle_buffer)
    read = lambda b: images.decode_max_side_tf(b, max_side)  # pylint: disable=unnecessary-lambda-assignment
  elif planned is not None:
    # Headers read on the host (`fivek.with_headers`): each file's decode and
    # filter are planned, both files decoded straight to the pair's size.
    dataset = tf.data.Dataset.from_tensor_slices(
        (pairs.inputs, pairs.targets) + planned)
    if input_context is not None and input_context.num_input_pipelines > 1:
      dataset = dataset.shard(input_context.num_input_pipelines,
                              input_context.input_pipeline_id)
    buffer = len(pairs)
    read_input, read_target = _planned_read(planned[0]), _planned_read(
        planned[1])
  else:
    dataset = tf.data.Dataset.from_tensor_slices((pairs.inputs, pairs.targets))
    if input_context is not None and input_context.num_input_pipelines > 1:
      dataset = dataset.shard(input_context.num_input_pipelines,
                              input_context.input_pipeline_id)
    tiff = any(p.lower().endswith((".tif", ".tiff"))
               for p in list(pairs.inputs) + list(pairs.targets))
    buffer, read = len(pairs), lambda p: load_image_tf(p, max_side, tiff)
  dataset = dataset.shuffle(max(1, buffer), seed=seed,
                            reshuffle_each_iteration=True).repeat()
  if start_example:
    dataset = dataset.skip(start_example)

  def crop(source, target):
    if crop_size:
      source, target = _random_crop_pair(source, target,
                                         tuple(int(c) for c in crop_size),
                                         seed)
    return source, target

  def load_parsed(input_file, target_file):
    source = read(input_file)  # largest side <= max_side
    target = read(target_file)
    # Targets written at another size (rare) are brought to the input's.
    target = tf.cond(tf.reduce_all(tf.shape(target) == tf.shape(source)),
                     lambda: target,
                     lambda: images.resize_tf(target, tf.shape(source)[:2]))
    return crop(source, target)

  def load_planned(input_file, target_file, input_plan, target_plan, size):
    return crop(read_input(tf.io.read_file(input_file), input_plan, size),
                read_target(tf.io.read_file(target_file), target_plan, size))

  load = load_parsed if planned is None else load_planned
  dataset = dataset.map(load, num_parallel_calls=num_parallel_calls)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  # fivek.find_pairs decoded every file; one that changed since must not end a
  # run: its batch is skipped (after the batch, so map and batch stay fused:
  # no extra copy of every pair, as in `ava_pipeline.make_dataset`).
  return dataset.ignore_errors(log_warning=True).prefetch(2)
