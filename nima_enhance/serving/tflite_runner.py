"""Running the TFLite files nima-export writes (scorer and enhancer).

`load_tflite` opens a `model.tflite` with the `tflite_metadata.json` beside
it; `TfliteScorer` stands in for a NimaBundle in `scoring.score_files`, so
`nima-score --tflite` reads, decodes and resizes images with the very code
`--model_dir` uses and only the network runs in the interpreter. Input
contract: nima_enhance/serving/tflite.py and docs/serving.md.

Interpreter: `tf.lite.Interpreter` from the installed TensorFlow (2.21),
which warns that it moves to the `ai-edge-litert` package; the warning is
silenced here and the files are plain TFLite flatbuffers, which
`ai_edge_litert.interpreter.Interpreter` runs unchanged (docs/serving.md).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from nima_enhance import scoring
from nima_enhance.data import ava

SCORER = "scorer"
ENHANCER = "enhancer"
MODEL_FILE = "model.tflite"
METADATA_FILE = "tflite_metadata.json"
SIGNATURE = "serving_default"


class TfliteError(ValueError):
  """A TFLite file or export request that cannot be used as asked."""


def _interpreter(model_path: str, num_threads: Optional[int]):
  with warnings.catch_warnings():
    # tf.lite.Interpreter's deprecation notice (see the module docstring).
    warnings.simplefilter("ignore", UserWarning)
    try:
      interpreter = tf.lite.Interpreter(model_path=model_path,
                                        num_threads=num_threads)
    except (ValueError, RuntimeError) as err:
      first = str(err).strip().splitlines()[0] if str(err).strip() else ""
      raise TfliteError(f"{model_path}: not a TFLite model ({first[:200]})"
                       ) from None
  if SIGNATURE not in interpreter.get_signature_list():
    raise TfliteError(f"{model_path}: no {SIGNATURE!r} signature; not "
                      "written by nima-export --format tflite?")
  return interpreter


class TfliteModel:
  """One .tflite file from export_tflite and its metadata; batch-1 runner."""

  def __init__(self, model_path: str, metadata: Dict[str, object],
               num_threads: Optional[int] = None):
    self.path = model_path
    self.metadata = metadata
    self._interpreter = _interpreter(model_path, num_threads)
    self._runner = self._interpreter.get_signature_runner(SIGNATURE)
    (self._input_name, detail), = self._runner.get_input_details().items()
    self._input_dtype = detail["dtype"]
    self._input_shape = tuple(int(d) for d in detail["shape"])
    self._scale, self._zero_point = detail["quantization"]

  @property
  def input_shape(self) -> Tuple[int, ...]:
    return self._input_shape

  @property
  def input_dtype(self) -> str:
    return np.dtype(self._input_dtype).name

  @property
  def input_quantization(self) -> Tuple[float, int]:
    """(scale, zero point) of an integer input; (0.0, 0) for float."""
    return float(self._scale), int(self._zero_point)

  def run(self, x: np.ndarray) -> Dict[str, np.ndarray]:
    """Runs one input [1, ...] given as floats in the file's float range."""
    x = np.asarray(x, np.float32)
    if tuple(x.shape) != self._input_shape:
      raise TfliteError(f"{self.path}: input must have shape "
                        f"{list(self._input_shape)}, got {list(x.shape)}")
    if self._input_dtype != np.float32:
      info = np.iinfo(self._input_dtype)
      x = np.clip(np.round(x / self._scale + self._zero_point),
                  info.min, info.max).astype(self._input_dtype)
    return self._runner(**{self._input_name: x})


class TfliteScorer(TfliteModel):
  """A scorer file, usable wherever scoring.score_files takes a NimaBundle."""

  @property
  def preprocessing(self) -> Dict[str, object]:
    return self.metadata["preprocessing"]

  def predict(self, pixels: tf.Tensor) -> tf.Tensor:
    """[b, H, W, 3] float pixels in [0, 255] -> [b, 10], one image a call."""
    pixels = np.asarray(pixels, np.float32)
    rows = [self.run(p[None])["distribution"][0] for p in pixels]
    return tf.constant(np.stack(rows) if rows else
                       np.zeros([0, ava.NUM_BUCKETS], np.float32))


class TfliteEnhancer(TfliteModel):
  """An enhancer file: float [H, W, 3] in [0, 1] at its fixed size."""

  def __call__(self, image: np.ndarray) -> np.ndarray:
    return self.run(np.asarray(image, np.float32)[None])["images"][0]


def resolve_tflite(path: str) -> str:
  """A .tflite file, a version folder, or an export base (largest version)."""
  if os.path.isfile(path):
    return path
  if os.path.isfile(os.path.join(path, MODEL_FILE)):
    return os.path.join(path, MODEL_FILE)
  if os.path.isdir(path):
    versions = [int(n) for n in os.listdir(path) if n.isdigit() and
                os.path.isfile(os.path.join(path, n, MODEL_FILE))]
    if versions:
      return os.path.join(path, str(max(versions)), MODEL_FILE)
  raise FileNotFoundError(f"{path}: no TFLite model ({MODEL_FILE}) here or in "
                          "an integer version folder below it")


def read_metadata(model_path: str) -> Dict[str, object]:
  """tflite_metadata.json beside a .tflite file (TfliteError if absent)."""
  path = os.path.join(os.path.dirname(os.path.abspath(model_path)),
                      METADATA_FILE)
  if not os.path.isfile(path):
    raise TfliteError(f"{model_path}: no {METADATA_FILE} beside it (the "
                      "input contract nima-export --format tflite writes)")
  with open(path, "r", encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as err:
      raise TfliteError(f"{path}: not valid JSON ({err.msg})") from None


def load_tflite(path: str, num_threads: Optional[int] = None) -> TfliteModel:
  """Opens an exported .tflite (file, version folder or export base)."""
  model_path = resolve_tflite(path)
  metadata = read_metadata(model_path)
  cls = {SCORER: TfliteScorer,
         ENHANCER: TfliteEnhancer}.get(metadata.get("kind"))
  if cls is None:
    raise TfliteError(f"{model_path}: unknown kind {metadata.get('kind')!r} "
                      f"in {METADATA_FILE}")
  return cls(model_path, metadata, num_threads)


def score_files_with_tflite(path: str, paths: Sequence[str],
                            batch_size: int = 32,
                            num_threads: Optional[int] = None
                           ) -> Iterator[scoring.ScoredImage]:
  """scoring.score_files with a scorer .tflite in place of the checkpoint.

  Files are checked, read, decoded and resized exactly as for --model_dir
  (the same function runs); only the network runs in the interpreter.
  """
  model = load_tflite(path, num_threads)
  if not isinstance(model, TfliteScorer):
    raise TfliteError(f"{model.path}: an enhancer, not a scorer")
  return scoring.score_files(model, paths, batch_size)


__all__ = ["load_tflite", "score_files_with_tflite", "resolve_tflite",
           "read_metadata", "TfliteModel", "TfliteScorer", "TfliteEnhancer",
           "TfliteError", "MODEL_FILE", "METADATA_FILE", "SIGNATURE"]
