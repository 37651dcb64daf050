"""TFLite conversion and the agreement measured at export.

`convert` turns a graph-building function into a .tflite flatbuffer (float32,
float16 weights, or int8 with some ops kept in float by `tflite_quantize`);
`input_ramp` and `eval_pixels_of_files` give the int8 calibration its
pixels (the pixels `nima-score` would feed the file), and `scorer_agreement`
compares two scorers over image files.

It is apart from `serving/tflite.py` (restoring a model dir, choosing the
calibration images, writing the versioned file and its metadata): the
benchmark (tools/benchmarks/tflite.py) converts and measures variants without
exporting, and `tflite_quantize.int8_floor` takes `scorer_agreement` as its
measure.
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
# Private TF module: the only freezing of a concrete function TF offers.
from tensorflow.python.framework import convert_to_constants

from nima_enhance import metrics
from nima_enhance import scoring
from nima_enhance.data import ava_pipeline
from nima_enhance.data import images
from nima_enhance.serving import tflite_quantize
from nima_enhance.serving.tflite_runner import TfliteError

QUANTIZATIONS = ("none", "float16", "int8")


def _frozen(fn, spec: tf.TensorSpec, names: Sequence[str]):
  """A concrete function with the weights as constants and named outputs.

  Keras 3 layers capture their variables as resource handles that
  TFLiteConverter cannot freeze (the file would hold READ_VARIABLE ops on
  uninitialised variables), so the graph is frozen first; the wrapper restores
  the output names that freezing drops.
  """
  frozen = convert_to_constants.convert_variables_to_constants_v2(
      tf.function(fn, input_signature=[spec]).get_concrete_function())

  @tf.function(input_signature=[spec])
  def named(x):
    return dict(zip(names, frozen(x)))

  holder = tf.Module()
  holder.frozen = frozen
  return named.get_concrete_function(), holder


def convert(fn, spec: tf.TensorSpec, names: Sequence[str], quantize: str,
            representative: Optional[Iterator[np.ndarray]] = None,
            float_tensors: Optional[str] = None,
            float_outputs: Sequence[str] = ()) -> Tuple[bytes, List[str]]:
  """Converts fn (one [1, ...] float32 input -> tuple of outputs) to TFLite.

  Args:
    fn: python callable building the graph; returns a tuple in `names` order.
    spec: its fixed input spec (batch 1).
    names: output names of the signature.
    quantize: "none", "float16" or "int8" (integer, uint8 input).
    representative: for int8, an iterable of float32 [1, ...] inputs.
    float_tensors: for int8, a regular expression on TFLite tensor names:
      the ops producing matching tensors stay float32 (dequantized in,
      quantized out); None or no match: full-integer.
    float_outputs: for int8 with float_tensors, signature outputs (of
      `names`) whose producing ops stay float32 as well.

  Returns:
    (the .tflite flatbuffer, names of the tensors kept in float).

  Raises:
    TfliteError: an op without an int8 kernel, or int8 without calibration.
  """
  if quantize not in QUANTIZATIONS:
    raise TfliteError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, "
                      f"got {quantize!r}")
  concrete, holder = _frozen(fn, spec, names)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete],
                                                              holder)
  if quantize == "float16":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  elif quantize == "int8":
    if representative is None:
      raise TfliteError("int8 needs a representative dataset")
    samples = list(representative)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    # Outputs stay float32: the scores are read as floats on the host anyway.
  try:
    if quantize != "int8" or not float_tensors:
      return converter.convert(), []
    return tflite_quantize.quantize_except(converter,
                                           re.compile(float_tensors),
                                           float_outputs)
  except Exception as err:  # pylint: disable=broad-except
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    raise TfliteError(f"TFLite conversion ({quantize}) failed: "
                      f"{first[:300]}") from None


def input_ramp(height: int, width: int) -> np.ndarray:
  """[1, h, w, 3] float32 pixels covering 0..255 exactly (calibration pin).

  Added to the int8 calibration so the input range is exactly [0, 255]: the
  uint8 input then has scale 1 and zero point 0 and takes pixels as they are.
  """
  ramp = np.linspace(0.0, 255.0, height * width, dtype=np.float32)
  ramp = np.round(ramp).reshape(height, width)
  return np.repeat(ramp[None, :, :, None], 3, axis=-1)


def eval_pixels_of_files(paths: Sequence[str],
                         preprocessing: Dict[str, object]
                        ) -> Iterator[np.ndarray]:
  """[1, H, W, 3] float pixels in [0, 255] of each readable file.

  The reading path of `scoring.score_files` (nima-score): `images.read_image`
  (orientation, alpha, formats) with the reduced JPEG decode toward
  `ava_pipeline.decode_size`, then `scoring.eval_pixels` (the one resize
  rule), so the int8 calibration sees the pixels the file will be given.
  Unreadable files are skipped (they were filtered by `images.file_problem`
  already).
  """
  target = ava_pipeline.decode_size(preprocessing)
  for path in paths:
    try:
      image = images.read_image(path, target_size=target)
    except images.ImageReadError:
      continue
    yield scoring.eval_pixels(image, preprocessing)[None]


def scorer_agreement(reference, candidate, paths: Sequence[str],
                     batch_size: int = 8) -> Optional[Dict[str, float]]:
  """Mean/distribution agreement of two scorers over image files.

  Args:
    reference, candidate: NimaBundle-likes (preprocessing, predict).
    paths: image files.
    batch_size: images per checkpoint batch (8 keeps a 480x640 MobileNet
      near 2 GB).

  Returns:
    {"images", "max_abs_mean_diff", "srcc_means",
    "max_abs_distribution_diff"}, or None when no image could be scored.
  """
  ref = {s.path: s for s in scoring.score_files(reference, paths, batch_size)
         if s.error is None}
  got = {s.path: s for s in scoring.score_files(candidate, paths, batch_size)
         if s.error is None}
  common = [p for p in paths if p in ref and p in got]
  if not common:
    return None
  ref_means = np.array([ref[p].mean for p in common])
  got_means = np.array([got[p].mean for p in common])
  dist_diff = max(float(np.abs(ref[p].distribution - got[p].distribution)
                        .max()) for p in common)
  srcc = metrics.srcc(ref_means, got_means) if len(common) > 2 else None
  return {"images": len(common),
          "max_abs_mean_diff": float(np.abs(ref_means - got_means).max()),
          # None, not NaN (invalid JSON), when the means do not vary.
          "srcc_means": (float(srcc) if srcc is not None and np.isfinite(srcc)
                         else None),
          "max_abs_distribution_diff": dist_diff}
