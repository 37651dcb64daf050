"""Restoring a trained NIMA and scoring images with it.

One path for nima-eval, nima-score, the enhancer's frozen NIMA and export: the
model is rebuilt from `model_spec.json` (written by the training loop) and the
latest checkpoint, and images go through the same decode and evaluation
preprocessing as in training (`ava.preprocess_tf`).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from nima_enhance import metrics
from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data import ava
from nima_enhance.data import images
from nima_enhance.models import nima as nima_lib


@dataclasses.dataclass
class NimaBundle:
  """A restored NIMA with the preprocessing it was trained with."""
  model: keras.Model
  preprocessing: Dict[str, object]
  spec: Dict[str, object]
  checkpoint: Optional[str]
  _predict: Optional[object] = dataclasses.field(default=None, repr=False)

  def predict(self, pixels: tf.Tensor) -> tf.Tensor:
    """The model in inference mode on a batch of preprocessed pixels.

    One tf.function per bundle with a batch-agnostic signature: traced once,
    not again for a last, smaller batch or for the next call of score_files.
    """
    if self._predict is None:
      model = self.model
      height, width = self.preprocessing["image_size"]
      self._predict = tf.function(
          lambda x: model(x, training=False),
          input_signature=[tf.TensorSpec([None, height, width, 3],
                                         tf.float32)])
    return self._predict(pixels)


def load_nima(model_dir: str) -> NimaBundle:
  """Rebuilds NIMA from model_dir and restores its latest checkpoint.

  Raises:
    FileNotFoundError: no model_spec.json or no checkpoint in model_dir.
  """
  spec, checkpoint = model_dir_lib.open_model_dir(model_dir, "nima")
  model = nima_lib.build_nima(weights=None, **spec.get("build_nima", {}))
  model_dir_lib.restore(model, checkpoint)
  model.trainable = False
  return NimaBundle(model, spec["preprocessing"], spec, checkpoint)


def eval_pixels_tf(image: tf.Tensor,
                   preprocessing: Dict[str, object]) -> tf.Tensor:
  """float [0, 1] image -> NIMA input pixels [0, 255] (evaluation path)."""
  return ava.preprocess_tf(image, preprocessing, training=False)


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


def score_files(bundle: NimaBundle, paths: Sequence[str], batch_size: int = 32
               ) -> Iterator[ScoredImage]:
  """Scores image files in order; unreadable files are yielded with an error.

  Files are first checked by their first and last bytes, then
  read and decoded in a parallel tf.data pipeline so the model never waits;
  the model runs in the bundle's one tf.function (`NimaBundle.predict`).
  """
  checked: List[ScoredImage] = []
  good_paths = []
  for path in paths:
    # Head and trailer only; tf.data reads and decodes the whole file.
    problem = images.file_problem(path, graph_only=True)
    checked.append(ScoredImage(path, None,
                               f"{path}: {problem}" if problem else None))
    if problem is None:
      good_paths.append(path)
  results = {}
  if good_paths:
    dataset = tf.data.Dataset.from_tensor_slices(good_paths)
    dataset = dataset.map(
        lambda p: (p, eval_pixels_tf(ava.load_image_tf(p),
                                     bundle.preprocessing)),
        num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors().batch(batch_size).prefetch(
        tf.data.AUTOTUNE)
    for batch_paths, pixels in dataset:
      for p, dist in zip(batch_paths.numpy(), bundle.predict(pixels).numpy()):
        results[p.decode("utf-8")] = dist
  for item in checked:
    if item.error is None:
      if item.path in results:
        item.distribution = results[item.path]
      else:
        item.error = f"{item.path}: cannot decode image"
    yield item


def evaluate_split(bundle: NimaBundle, ava_dir: str, ratings: ava.AvaRatings,
                   batch_size: int = 32) -> Dict[str, float]:
  """Table 1 metrics of the model on `ratings` (already checked files)."""
  dataset = ava.make_dataset(ava_dir, ratings, bundle.preprocessing,
                             batch_size, training=False)
  predict = tf.function(lambda x: bundle.model(x, training=False))
  streaming = metrics.RatingMetrics()
  for pixels, distribution in dataset:
    streaming.update(distribution, predict(pixels))
  return streaming.result()
