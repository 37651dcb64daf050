"""Restoring a trained NIMA and scoring images with it.

One path for nima-eval, nima-score, the enhancer's frozen NIMA and export: the
model is rebuilt from `model_spec.json` (written by the training loop) and the
latest checkpoint, and images go through the same decode and evaluation
preprocessing as in training (`ava_pipeline.preprocess_tf`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import json
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from nima_enhance import metrics
from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.data import images
# A restored NIMA lives with the model (models/nima.py) so that the enhancer's
# training task can load one without importing this higher layer.
from nima_enhance.models.nima import NimaBundle  # pylint: disable=unused-import
from nima_enhance.models.nima import load_nima  # pylint: disable=unused-import


def eval_pixels_tf(image: tf.Tensor,
                   preprocessing: Dict[str, object]) -> tf.Tensor:
  """float [0, 1] image -> NIMA input pixels [0, 255] (evaluation path)."""
  return ava_pipeline.preprocess_tf(image, preprocessing, training=False)


def eval_pixels(image: np.ndarray,
                preprocessing: Dict[str, object]) -> np.ndarray:
  """float [0, 1] [h, w, 3] numpy image -> NIMA input pixels, as score_files
  prepares a decoded file (the same traced function)."""
  return _pixels_fn(preprocessing)(
      tf.convert_to_tensor(image, tf.float32)).numpy()


def score_array(bundle, image: np.ndarray) -> np.ndarray:
  """The [10] distribution of one float [0, 1] [h, w, 3] image.

  The one in-memory scoring path (the `Scorer` API on arrays, enhance-eval's
  NIMA statistics): the image is prepared as `score_files` prepares a decoded
  file and goes through the bundle's `predict`. `bundle` is a NimaBundle or
  anything with its `preprocessing` and `predict` (a TFLite scorer).
  """
  pixels = eval_pixels(image, bundle.preprocessing)
  return np.asarray(bundle.predict(pixels[None]))[0]


@dataclasses.dataclass
class ScoredImage:
  path: str
  distribution: Optional[np.ndarray]  # [10], None when skipped
  error: Optional[str] = None

  @property
  def mean(self) -> float:
    return float(metrics.mean_score(self.distribution))

  @property
  def std(self) -> float:
    return float(metrics.std_score(self.distribution))


# One preprocessing tf.function per preprocessing dict (traced once per
# process, not per score_files call).
_PIXEL_FNS: Dict[str, object] = {}


def _pixels_fn(preprocessing: Dict[str, object]):
  key = json.dumps(preprocessing, sort_keys=True)
  if key not in _PIXEL_FNS:
    _PIXEL_FNS[key] = tf.function(
        lambda x: eval_pixels_tf(x, preprocessing),
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
  return _PIXEL_FNS[key]


# On a CPU, NIMA's forward pass costs about twice as much per image in calls
# of 8-32 images at 480x640 as in calls of 1-4 (a large call's activations
# outgrow the caches), and short calls let the next files decode while the
# model runs: on 24 MP JPEGs the pipeline scored 8.1, 6.9 and 5.6 images/s
# with calls of 1, 2 and 4 (tools/benchmarks/nima_scoring.py measures the
# model per call size). On a CPU the model is therefore called on at most
# one 480x640 input's pixels (6 images at 224x224); an accelerator gets the
# whole batch in one call.
CPU_CALL_PIXELS = 480 * 640


def model_call_size(batch_size: int, height: int, width: int) -> int:
  """Images per forward call for a batch of `batch_size` height x width inputs.

  `batch_size` where TensorFlow sees a GPU or TPU; on a CPU the most images
  whose pixels fit `CPU_CALL_PIXELS` (at least 1, at most `batch_size`).
  """
  if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices(
      "TPU"):
    return batch_size
  return max(1, min(batch_size, CPU_CALL_PIXELS // max(1, height * width)))


# The decode plan's own pixel-limit check is given no limit: the header was
# checked in Python (`images.decode_jpeg_with`) against the limit in force
# at the call, which a limit read when the function was traced could
# contradict.
_NO_PIXEL_LIMIT = 1 << 62
_PLANNED_FNS: Dict[str, object] = {}


def _planned_fn(preprocessing: Dict[str, object]):
  """(JPEG bytes, int64 [4] header) -> NIMA input pixels, one traced call.

  The evaluation pipeline's reader (`ava_pipeline.load_pixels_tf` on the file's
  `images.decode_plan_tf`): the decode at the reduced scale, the resize
  rule read straight from its uint8 pixels and scaled to [0, 255] in the
  same pass, no header parse in the graph.
  """
  key = json.dumps(preprocessing, sort_keys=True)
  if key not in _PLANNED_FNS:
    size = ava_pipeline.decode_size(preprocessing)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string),
                                  tf.TensorSpec([4], tf.int64)])
    def planned(data, header):
      plan = images.decode_plan_tf(header, size, max_pixels=_NO_PIXEL_LIMIT)
      return ava_pipeline.load_pixels_tf(data, preprocessing, training=False,
                                         plan=plan)

    _PLANNED_FNS[key] = planned
  return _PLANNED_FNS[key]


def file_pixels_fn(preprocessing: Dict[str, object]):
  """path -> NIMA input pixels [H, W, 3] in [0, 255], as nima-score reads.

  The reading contract (`images.read_image`: a JPEG decoded reduced toward
  `ava_pipeline.decode_size` in the DCT domain) and the evaluation
  preprocessing.
  A JPEG is read in one traced call from its bytes (`_planned_fn`, under
  the contract's checks: `images.decode_jpeg_with`): the decode and the
  resize from its uint8 pixels: against decoding to float and resizing
  that, ~10% less CPU on a 24 MP JPEG and half on a 480x640 one
  (tools/benchmarks/nima_scoring.py: the "new reading" stage, the folder's
  CPU per image);
  the same pixels up to float rounding (~1e-5 of 255). Other formats go
  through `images.decode_image_bytes` and the evaluation preprocessing.
  Raises ImageReadError.
  """
  to_pixels = _pixels_fn(preprocessing)
  planned = _planned_fn(preprocessing)
  target = ava_pipeline.decode_size(preprocessing)

  def load(path: str) -> np.ndarray:
    try:
      with open(path, "rb") as f:
        data = f.read()
    except OSError:  # a folder, missing, unreadable: the contract names it
      return to_pixels(images.read_image(path, target_size=target)).numpy()
    pixels = images.decode_jpeg_with(data, planned, source=path)
    if pixels is None:
      pixels = to_pixels(images.decode_image_bytes(
          data, source=path, target_size=target)).numpy()
    return pixels

  return load


def score_files(bundle: NimaBundle, paths: Sequence[str], batch_size: int = 32,
                num_threads: int = 4) -> Iterator[ScoredImage]:
  """Scores image files in order; unreadable files are yielded with an error.

  Every file goes through the reading contract (`images.read_image`: EXIF
  orientation, alpha over white, every supported format, pixel limit, strict
  decode; a large JPEG decoded at 1/2, 1/4 or 1/8 scale) and the evaluation
  preprocessing in `num_threads` threads, up to two batches ahead of the
  model, which runs in the bundle's one tf.function (`NimaBundle.predict`)
  on calls of `model_call_size` images while the next files are read.

  Raises:
    ValueError: batch_size < 1.
  """
  return score_pixels(bundle, paths, file_pixels_fn(bundle.preprocessing),
                      batch_size, num_threads)


def score_pixels(bundle: NimaBundle, paths: Sequence[str],
                 load: Callable[[str], np.ndarray], batch_size: int = 32,
                 num_threads: int = 4) -> Iterator[ScoredImage]:
  """`score_files`' pipeline with another reader `load(path) -> pixels`.

  `load` returns the network's input [H, W, 3] in [0, 255] or raises
  ImageReadError (the file is yielded with that error). Benchmarks time a
  previous reading path through it (the same threads, read-ahead and model
  calls as nima-score).

  Raises:
    ValueError: batch_size < 1.
  """
  if batch_size < 1:
    raise ValueError(f"batch size must be >= 1, got {batch_size}")
  height, width = bundle.preprocessing["image_size"]
  call = model_call_size(batch_size, height, width)

  def read(path):
    try:
      return ScoredImage(path, None), load(path)
    except images.ImageReadError as err:
      return ScoredImage(path, None, str(err)), None

  return _pipeline(bundle, iter(paths), read, batch_size, call, num_threads,
                   (height, width))


def _pipeline(bundle, remaining, read, batch_size, call, num_threads, size):
  """Reads up to 2 * batch_size ahead; the model runs on `call` ready images."""
  pending: collections.deque = collections.deque()
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:

    def refill():
      for path in itertools.islice(remaining, 2 * batch_size - len(pending)):
        pending.append(pool.submit(read, path))

    refill()
    ready: List[tuple] = []
    while pending:
      ready.append(pending.popleft().result())
      refill()
      good = [(item, px) for item, px in ready if px is not None]
      if len(good) < call and pending:
        continue
      if good:
        # One image (a CPU's call): a view, not a copy of its pixels.
        batch = (good[0][1][None] if len(good) == 1 else
                 np.stack([px for _, px in good])).reshape(-1, *size, 3)
        for (item, _), dist in zip(good, bundle.predict(batch).numpy()):
          item.distribution = dist
      yield from (item for item, _ in ready)
      ready = []


def evaluate_split(bundle: NimaBundle, ava_dir: str, ratings: ava.AvaRatings,
                   batch_size: int = 32) -> Dict[str, float]:
  """Table 1 metrics of the model on `ratings` (already checked files)."""
  dataset = ava_pipeline.make_dataset(ava_dir, ratings, bundle.preprocessing,
                                      batch_size, training=False)
  predict = tf.function(lambda x: bundle.model(x, training=False))
  streaming = metrics.RatingMetrics()
  for pixels, distribution in dataset:
    streaming.update(distribution, predict(pixels))
  return streaming.result()
