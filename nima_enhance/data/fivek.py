"""FiveK-style enhancement pairs: `D/input/<name>.*` -> `D/<target>/<name>.png`.

Targets are the 16-bit PNGs that prep-targets writes (`<target>` is the
operator name, e.g. local_laplacian or nonlocal_dehaze). The split is over the
sorted input names *before* any pair is dropped, so adding a late target never
moves an image between train and test: the first half (rounded up) trains,
the second half tests, unless a split file lists the test names.

Training (paper sec. 4.2): images are resized so the largest side is 640
(FiveK's 3:4 photos become 480x640), input and target identically, values in
[0, 1], batch 1. Batches > 1 need equal sizes, so they take random crops of a
fixed `crop_size` (the same window of input and target). Evaluation reads the
pairs at their original size.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from nima_enhance import config
from nima_enhance.data import image_check
from nima_enhance.data import image_files
from nima_enhance.data import image_headers
from nima_enhance.data import images
from nima_enhance.data import splits

INPUT_DIR = "input"
MANIFEST_NAME = "nima_manifest.json"


@dataclasses.dataclass
class PairReport:
  """What was found and what was skipped (name -> reason)."""
  found: int = 0
  skipped: Dict[str, str] = dataclasses.field(default_factory=dict)

  def summary(self) -> str:
    text = f"{self.found} pairs, {len(self.skipped)} skipped"
    if self.skipped:
      names = sorted(self.skipped)
      shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
      text += f" ({shown})"
    return text


@dataclasses.dataclass
class Pairs:
  """Matched (input, target) files of one split, sorted by name."""
  names: List[str]
  inputs: List[str]
  targets: List[str]
  # int64 [n, 4] each, or None (read when training needs them): the files'
  # headers as `with_headers` reads them on the host (format id, stored
  # height, width, EXIF orientation; a zero format: unknown, parsed in the
  # graph). `make_train_dataset` plans each pair's decode from them instead
  # of parsing both headers in the graph.
  input_headers: Optional[np.ndarray] = None
  target_headers: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self.names)


def with_headers(pairs: Pairs, num_threads: int = 8) -> Pairs:
  """A copy of `pairs` carrying every file's header, read on the host.

  `make_train_dataset` calls it when the pairs carry none (evaluation and
  TFDS builds never need them); the training graph then parses no header
  (in a tf.data map function the parse's small ops and branches cost as
  much as a third of decoding an AVA-size JPEG).
  """
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    # An unreadable file gets a zero (unknown) format: the graph parses it.
    fields = list(pool.map(
        lambda path: image_headers.read_header_fields(path) or [0, 0, 0, 1],
        list(pairs.inputs) + list(pairs.targets)))
  rows = np.asarray(fields, np.int64).reshape(2, len(pairs), 4)
  return Pairs(list(pairs.names), list(pairs.inputs), list(pairs.targets),
               rows[0], rows[1])


def _input_files(data_dir: str,
                 duplicates: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  """name (file stem) -> input path; raises if D/input is missing.

  A second input with the same stem (a.jpg, a.png: one target a.png) is
  left out and recorded in `duplicates` (name -> reason).
  """
  input_dir = os.path.join(data_dir, INPUT_DIR)
  if not os.path.isdir(input_dir):
    raise FileNotFoundError(f"{input_dir}: no such folder (expected "
                            f"{data_dir}/input/<name>.* and "
                            f"{data_dir}/<target>/<name>.png)")
  files = {}
  for path in image_files.scan_inputs([input_dir]).files:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in files:
      if duplicates is not None:
        duplicates[name] = (f"{path}: same name as {files[name]} (one target "
                            f"per name; rename one)")
      continue
    files[name] = path
  return files


def read_split_file(path: str) -> List[str]:
  """Test names, one per line (file names or stems; '#' comments allowed)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--split_file {path}: no such file")
  names = []
  with open(path, "r", encoding="utf-8") as f:
    for line in f:
      line = line.split("#", 1)[0].strip()
      if line:
        names.append(os.path.splitext(os.path.basename(line))[0])
  return names


def split_names(names: Sequence[str], split: str,
                test_names: Optional[Sequence[str]] = None) -> List[str]:
  """The names of `split` ("train", "test" or "all") among sorted `names`."""
  names = sorted(names)
  if splits.check_split(split) == "all":
    return names
  if test_names is not None:
    test = set(test_names)
    return [n for n in names if (n in test) == (split == "test")]
  num_train = len(names) - len(names) // 2  # the first half, rounded up
  return names[:num_train] if split == "train" else names[num_train:]


def find_pairs(data_dir: str, target: str, split: str = "train",
               split_file: Optional[str] = None,
               cache_dir: Optional[str] = None) -> Tuple[Pairs, PairReport]:
  """Matches inputs to targets in one split; reports and skips the rest.

  Args:
    data_dir: folder with input/ and <target>/.
    target: target folder name (the prep-targets operator).
    split: "train", "test" or "all".
    split_file: optional file listing the test names.
    cache_dir: where the decode verdicts are cached when data_dir is
      read-only.

  Returns:
    (pairs, report). Inputs without a target PNG, inputs whose stem another
    input already has, and files the strict reading contract refuses
    (`images.read_image`; verdicts cached in data_dir/nima_manifest.json)
    are skipped and listed in the report.

  Raises:
    FileNotFoundError: data_dir/input or data_dir/<target> does not exist.
  """
  duplicates: Dict[str, str] = {}
  inputs = _input_files(data_dir, duplicates)
  target_dir = os.path.join(data_dir, target)
  if not os.path.isdir(target_dir):
    raise FileNotFoundError(f"{target_dir}: no such folder; run prep-targets "
                            f"--operator {target} first")
  test_names = read_split_file(split_file) if split_file else None
  if test_names is not None:
    unknown = sorted(set(test_names) - set(inputs))
    if unknown:
      logging.warning("%d names in %s have no input image: %s", len(unknown),
                      split_file, ", ".join(unknown[:10]))
  pairs = Pairs([], [], [])
  report = PairReport()
  report.skipped.update(duplicates)
  candidates = []
  for name in split_names(list(inputs), split, test_names):
    target_path = os.path.join(target_dir, name + ".png")
    if not os.path.isfile(target_path):
      report.skipped[name] = f"no target {target}/{name}.png"
      continue
    candidates.append((name, inputs[name], target_path))
  # The strict decode of every file once (cached), so training never meets a
  # file it cannot decode.
  verdicts = image_check.check_files(
      [p for _, i, t in candidates for p in (i, t)],
      cache_file=_manifest_file(data_dir, cache_dir), log=logging.info)
  for name, input_path, target_path in candidates:
    reason = verdicts[input_path] or verdicts[target_path]
    if reason:
      report.skipped[name] = reason
      continue
    pairs.names.append(name)
    pairs.inputs.append(input_path)
    pairs.targets.append(target_path)
  report.found = len(pairs)
  return pairs, report


def _manifest_file(data_dir: str, cache_dir: Optional[str]) -> Optional[str]:
  """Where find_pairs caches its verdicts: data_dir, else cache_dir."""
  for directory in (data_dir, cache_dir):
    if directory and os.access(directory, os.W_OK):
      return os.path.join(directory, MANIFEST_NAME)
  return None


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


def _pair_plans(pairs: Pairs, max_side: Optional[int]):
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
    pairs = with_headers(pairs)
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
def make_train_dataset(pairs: Union[Pairs, EncodedPairs], batch_size: int = 1,
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
    pairs: training pairs: files (`find_pairs`) or records (`EncodedPairs`).
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
    # Headers read on the host (`with_headers`): each file's decode and
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
  # find_pairs decoded every file; one that changed since must not end a
  # run: its batch is skipped (after the batch, so map and batch stay fused:
  # no extra copy of every pair, as in `ava_pipeline.make_dataset`).
  return dataset.ignore_errors(log_warning=True).prefetch(2)


def iterate_pairs(pairs: Pairs, report: Optional[PairReport] = None):
  """Yields (name, input, target) at original size; unreadable pairs skipped.

  Decoding failures are added to `report` (name -> reason) when given.
  """
  for name, input_path, target_path in zip(pairs.names, pairs.inputs,
                                           pairs.targets):
    try:
      source = images.read_image(input_path)
      target = images.read_image(target_path)
    except images.ImageReadError as err:
      logging.warning("skipped %s: %s", name, err)
      if report is not None:
        report.skipped[name] = str(err)
      continue
    if target.shape != source.shape:
      target = images.resize(target, source.shape[:2])
    yield name, source, target
