"""AVA's tf.data pipeline and the NIMA preprocessing it shares.

`preprocessing_config` (gin) says how an image is brought to NIMA's input
size; `decode_size`, `preprocess_tf` and `load_pixels_tf` apply it the same
way in training, evaluation, scoring, the SavedModel scorer and TFDS.
`make_dataset` turns the checked files of `ava.load_split` into
(pixels [0, 255], distribution) batches.

It is apart from `data/ava.py` (AVA.txt, splits, the file check), which
holds no graph code: scoring, serving and the TFDS builder use this
preprocessing without AVA's files, and reading AVA's files needs none of it.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import gin
import numpy as np
import tensorflow as tf

from nima_enhance.data import ava
from nima_enhance.data import images


@gin.configurable
def preprocessing_config(mode: str = "paper",
                         image_size: Tuple[int, int] = (480, 640),
                         resize_size: int = 256,
                         random_flip: bool = True) -> Dict[str, object]:
  """How images are brought to the network.

  Args:
    mode: "paper": every image is resized to `image_size` (480x640, the
      paper's "all images are scaled to 480x640"; aspect ratio is not kept, so
      batches are static and TPU-friendly). "crop": the common NIMA recipe:
      resize to resize_size x resize_size, random crop to `image_size` for
      training (e.g. 224x224), centre crop for evaluation.
    image_size: network input (height, width).
    resize_size: "crop" mode's square resize before cropping.
    random_flip: horizontal flips during training (both modes).

  Returns:
    a plain dict, stored in model_spec.json so scoring repeats it exactly.
  """
  if mode not in ("paper", "crop"):
    raise ValueError(f"preprocessing_config.mode must be 'paper' or 'crop', "
                     f"got {mode!r}")
  return {"mode": mode, "image_size": [int(image_size[0]), int(image_size[1])],
          "resize_size": int(resize_size), "random_flip": bool(random_flip)}


def decode_size(preprocessing: Dict[str, object]) -> Tuple[int, int]:
  """The size `preprocess_tf` first resizes to: the reduced-decode target.

  Every reader of images for NIMA (training, evaluation, nima-score, the
  SavedModel scorer, TFDS) passes it to the decoder, so a large JPEG is
  decoded at the same reduced scale everywhere (`images.read_image`,
  `images.decode_image_tf(target_size=)`).
  """
  if preprocessing["mode"] == "paper":
    height, width = preprocessing["image_size"]
    return int(height), int(width)
  side = int(preprocessing["resize_size"])
  return side, side


def preprocess_tf(image: tf.Tensor, preprocessing: Dict[str, object],
                  training: bool, seed: Optional[int] = None) -> tf.Tensor:
  """float [0, 1] image -> float pixels [0, 255] of the network's input size."""
  return crop_flip_tf(images.resize_tf(image, decode_size(preprocessing))
                      * 255.0, preprocessing, training, seed)


def crop_flip_tf(image: tf.Tensor, preprocessing: Dict[str, object],
                 training: bool, seed: Optional[int] = None) -> tf.Tensor:
  """An image already at `decode_size` -> the network's input (crop, flip)."""
  height, width = preprocessing["image_size"]
  if preprocessing["mode"] == "crop":
    side = preprocessing["resize_size"]
    if training:
      image = tf.image.random_crop(image, [height, width, 3], seed=seed)
    else:
      top, left = (side - height) // 2, (side - width) // 2
      image = image[top:top + height, left:left + width, :]
  if training and preprocessing["random_flip"]:
    # A reverse over a computed axis list, [1] or [] (range(1, 1 + flip)),
    # rather than random_flip_left_right (a cond: a function call per image
    # in the tf.data map function) or a boolean_mask of [1] (~6 small ops,
    # each ~20 us of dispatch in the map function).
    flip = tf.cast(tf.random.uniform([], seed=seed) < 0.5, tf.int32)
    image = tf.reverse(image, tf.range(1, 1 + flip))
  image.set_shape([height, width, 3])
  return image


def pipeline_preprocessing(preprocessing: Dict[str, object]
                           ) -> Dict[str, object]:
  """The input pipeline's part of `preprocessing` when the training step
  flips (`flip_batch_tf`): the same, without the random flip.

  The flip is the one augmentation that keeps the image's size; in the
  tf.data map function it cost ~0.2 ms per AVA photo in 480x640 (a new
  float buffer for every other image: ~10% of decoding and resizing it;
  mirroring the decoded uint8 pixels instead cost as much), while on an
  accelerator a select over the batch costs next to nothing. Training
  (`train.nima_task`) builds its pipeline from this and flips in its
  step; evaluation and scoring never flip.
  """
  return dict(preprocessing, random_flip=False)


def flip_batch_tf(pixels: tf.Tensor, preprocessing: Dict[str, object],
                  seed: Optional[int] = None) -> tf.Tensor:
  """The training flip of a batch [b, h, w, c]: each image mirrored
  left-right with probability 1/2 (none unless preprocessing's
  random_flip), one draw per image, as `crop_flip_tf` draws it."""
  if not preprocessing["random_flip"]:
    return pixels
  flip = tf.random.uniform(tf.shape(pixels)[:1], seed=seed) < 0.5
  return tf.where(flip[:, None, None, None], tf.reverse(pixels, [2]), pixels)


def load_image_tf(path: tf.Tensor,
                  preprocessing: Optional[Dict[str, object]] = None
                 ) -> tf.Tensor:
  """A file through the graph decoder, reduced toward `decode_size`."""
  return images.decode_image_tf(
      tf.io.read_file(path),
      target_size=decode_size(preprocessing) if preprocessing else None)


def load_pixels_tf(image_bytes: tf.Tensor, preprocessing: Dict[str, object],
                   training: bool, seed: Optional[int] = None,
                   plan: Optional[tf.Tensor] = None,
                   all_planned: bool = False,
                   plans: Optional[np.ndarray] = None) -> tf.Tensor:
  """Encoded bytes -> the network's input: `preprocess_tf` of the decode.

  The same pixels (up to float rounding) through the fast reader
  (`images.decode_resized_tf`: one header parse, the reduced JPEG decode
  resized from uint8, straight to [0, 255]). `plan`: the file's
  `images.decode_plan_tf` for `decode_size` (from the header
  `ava.check_images` read): no header parse in the graph (`all_planned`: no
  plan is `images.PARSE_PLAN`; `plans`: every plan that can come, so the
  graph holds only their branches; see `images.decode_planned_tf`).
  """
  if plan is None:
    image = images.decode_resized_tf(image_bytes, decode_size(preprocessing),
                                     scale=255.0)
  else:
    image = images.decode_planned_tf(image_bytes, plan,
                                     decode_size(preprocessing), scale=255.0,
                                     all_planned=all_planned, plans=plans)
  return crop_flip_tf(image, preprocessing, training, seed)


def make_dataset(ava_dir: str, ratings: ava.AvaRatings,
                 preprocessing: Dict[str, object], batch_size: int,
                 training: bool, seed: int = 0, start_example: int = 0,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 num_parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
  """(pixels [0, 255], distribution) batches for NIMA.

  Training: the whole file list is sharded by input pipeline, shuffled as a
  whole every epoch (seeded), repeated, and the first `start_example` elements
  are skipped (resume) before any decoding; batches drop the remainder so
  shapes are static. Evaluation: one ordered pass, last batch kept.
  """
  paths = [ava.image_path(ava_dir, i) for i in ratings.image_ids]
  # Files with a known header (`ava.load_split` attaches what
  # `ava.check_images` read) get their decode planned here, once; the
  # others (PARSE_PLAN) have their header parsed in the graph.
  plans = (np.full(len(paths), images.PARSE_PLAN, np.int32)
           if ratings.headers is None else
           images.decode_plan_tf(ratings.headers,
                                 decode_size(preprocessing)).numpy())
  all_planned = bool(np.all(plans != images.PARSE_PLAN))
  dataset = tf.data.Dataset.from_tensor_slices(
      (paths, ratings.distributions.astype(np.float32), plans))
  if input_context is not None and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
  if training:
    dataset = dataset.shuffle(len(paths), seed=seed,
                              reshuffle_each_iteration=True).repeat()
    if start_example:
      dataset = dataset.skip(start_example)

  def load(path, distribution, plan):
    return (load_pixels_tf(tf.io.read_file(path), preprocessing, training,
                           plan=plan, all_planned=all_planned,
                           plans=np.unique(plans)), distribution)

  options = tf.data.Options()
  # Ordered output (still decoded in parallel): a resumed run must see exactly
  # the batches an uninterrupted run would.
  options.deterministic = True
  dataset = dataset.map(load, num_parallel_calls=num_parallel_calls)
  # A file that changed after the manifest check must not stop a long run.
  # Training skips the batch holding it: between map and batch the skip
  # blocks tf.data's map-and-batch fusion, whose map writes each image
  # straight into the batch (unfused, every 480x640 float image is copied
  # once more: ~10% of the AVA pipeline). Evaluation skips the file only.
  if training:
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.ignore_errors(log_warning=True)
  else:
    dataset = dataset.ignore_errors(log_warning=True).batch(batch_size)
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
