"""TFLite export of the NIMA scorer and the CAN enhancer (files, metadata).

`export_tflite` restores the latest checkpoint of a model dir and writes
`<export_dir>/<version>/model.tflite` plus `tflite_metadata.json` beside it
(the input contract and the agreement measured at export), versioned and
written atomically like the SavedModel export (`export.export_model`).

Scorer file (signature "serving_default"):
  pixels [1, H, W, 3] at the network's fixed input size (model_spec.json's
  `image_size`), RGB, already decoded and resized as in evaluation
  (`scoring.eval_pixels_tf`):
    --quantize none / float16: float32 in [0, 255];
    --quantize int8: uint8 in [0, 255] (quantization scale 1, zero point 0:
      the calibration includes a 0..255 ramp so the pixel grid maps 1:1).
  -> distribution float32 [1, 10], mean float32 [1], std float32 [1]
  (int8 runs the ops in integers and dequantizes the outputs, except the
  ops tflite_quantize.FLOAT_IN_INT8 names for the backbone: small_cnn's
  mean/std pooling, concatenation and LayerNorm; its convolutions and dense
  layers are int8; tflite_metadata.json lists every float op).

Enhancer file: images float32 [1, H, W, 3] in [0, 1] at the `--input_size`
fixed at export -> images float32 [1, H, W, 3] clipped to [0, 1]; none or
float16 only (int8 is refused: an image-to-image network's outputs would be
quantized to 8 bits of its calibration range, and no target asks for it).

float16 stores the weights as float16: half the file, about the float32
latency on this CPU (tools/benchmarks/tflite.py).

Converting and measuring agreement: `tflite_convert`. Running the files:
`tflite_runner` (re-exported here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from nima_enhance import metrics
from nima_enhance import scoring
from nima_enhance.data import ava
from nima_enhance.data import images
from nima_enhance.enhance import inference as enhancement
from nima_enhance.serving import export
from nima_enhance.serving import tflite_convert
from nima_enhance.serving import tflite_quantize
from nima_enhance.serving import tflite_runner

# The runner's names, re-exported: one module for callers of the export.
MODEL_FILE = tflite_runner.MODEL_FILE
METADATA_FILE = tflite_runner.METADATA_FILE
SIGNATURE = tflite_runner.SIGNATURE
TfliteError = tflite_runner.TfliteError
TfliteModel = tflite_runner.TfliteModel
TfliteScorer = tflite_runner.TfliteScorer
TfliteEnhancer = tflite_runner.TfliteEnhancer
load_tflite = tflite_runner.load_tflite
read_metadata = tflite_runner.read_metadata
float_ops_of = tflite_quantize.float_ops_of
resolve_tflite = tflite_runner.resolve_tflite
score_files_with_tflite = tflite_runner.score_files_with_tflite
# int8: up to NUM_AGREEMENT images (an eighth at most) are held out of the
# calibration for the agreement check written to the metadata; the next
# NUM_CALIBRATION calibrate. Min/max calibration clips whatever the sample
# did not reach, so all recorded images calibrate (64 of them left
# small_cnn's held-out means further off; docs/serving.md).
NUM_CALIBRATION = 256
NUM_AGREEMENT = 32
_SCORER_OUTPUTS = ("distribution", "mean", "std")


def _backbone(spec: Dict[str, object]) -> Optional[str]:
  return (spec.get("build_nima") or {}).get("backbone")


def recorded_training_images(spec: Dict[str, object]) -> List[str]:
  """Existing files among the training images model_spec.json names."""
  recorded = spec.get("training_images") or {}
  ava_dir = recorded.get("ava_dir")
  if not ava_dir:
    return []
  paths = [ava.image_path(ava_dir, i) for i in recorded.get("image_ids", [])]
  return [p for p in paths if os.path.isfile(p)]


def _image_sources(spec: Dict[str, object], model_dir: str,
                   representative_dir: Optional[str], required: bool
                  ) -> Tuple[List[str], Optional[str]]:
  """(usable image paths in a seeded order, where they came from)."""
  if representative_dir:
    if not os.path.isdir(representative_dir):
      raise TfliteError(f"--representative_dir {representative_dir}: not a "
                        "folder")
    paths, source = images.list_images([representative_dir]), representative_dir
  else:
    paths = recorded_training_images(spec)
    source = f"{model_dir}/model_spec.json training_images" if paths else None
  paths = sorted(p for p in paths
                 if images.file_problem(p, graph_only=True) is None)
  if required and not paths:
    where = (f"in {representative_dir}" if representative_dir else
             f"recorded in {model_dir}/model_spec.json (training_images)")
    raise TfliteError(f"int8 needs calibration images: no usable image {where}"
                      "; give --representative_dir with training images")
  order = np.random.RandomState(0).permutation(len(paths))
  return [paths[i] for i in order], source


def _export_scorer(model_dir: str, spec: Dict[str, object], quantize: str,
                   representative_dir: Optional[str], out_dir: str,
                   int8_float_ops: Optional[str] = None
                  ) -> Dict[str, object]:
  bundle = scoring.load_nima(model_dir)
  preprocessing = bundle.preprocessing
  height, width = (int(v) for v in preprocessing["image_size"])
  model = bundle.model

  def fn(pixels):
    distribution = model(pixels, training=False)
    with tf.name_scope(tflite_quantize.SCORES_SCOPE):
      return (distribution, metrics.mean_score(distribution),
              metrics.std_score(distribution))

  paths, source = _image_sources(spec, model_dir, representative_dir,
                                 required=quantize == "int8")
  num_held_out = min(NUM_AGREEMENT, len(paths) // 8)
  held_out = paths[:num_held_out]
  calibration = paths[num_held_out:num_held_out + NUM_CALIBRATION]
  representative = None
  if quantize == "int8":
    representative = [tflite_convert.input_ramp(height, width)] + list(
        tflite_convert.eval_pixels_of_files(calibration, preprocessing))
  default = int8_float_ops is None
  content, kept_float = tflite_convert.convert(
      fn, tf.TensorSpec([1, height, width, 3], tf.float32, name="pixels"),
      _SCORER_OUTPUTS, quantize, representative,
      tflite_quantize.float_pattern(_backbone(spec)) if default
      else int8_float_ops, ("mean", "std") if default else ())
  for name, pattern in (
      ("output tail", tflite_quantize.FLOAT_TAIL),
      (_backbone(spec), tflite_quantize.FLOAT_IN_INT8.get(_backbone(spec)))):
    if (quantize == "int8" and default and pattern and
        not any(re.search(pattern, t) for t in kept_float)):
      raise TfliteError(f"int8: the {name} ops to keep in float ({pattern}) "
                        "were not found in the graph")
  model_path = os.path.join(out_dir, MODEL_FILE)
  with open(model_path, "wb") as f:
    f.write(content)
  candidate = TfliteScorer(model_path, {"preprocessing": preprocessing})
  scale, zero_point = candidate.input_quantization
  pixel_dtype = candidate.input_dtype
  agreement_paths = held_out or calibration
  agreement = tflite_convert.scorer_agreement(bundle, candidate,
                                              agreement_paths)
  # int8: what its two unavoidable roundings alone cost this checkpoint
  # (tflite_quantize.int8_floor): an agreement no better than these is the
  # checkpoint's sensitivity, not the quantizer's.
  floor = (tflite_quantize.int8_floor(bundle, agreement_paths,
                                      tflite_convert.scorer_agreement)
           if quantize == "int8" else None)
  return {
      "preprocessing": preprocessing,
      "input": {
          "name": "pixels", "shape": [1, height, width, 3],
          "dtype": pixel_dtype, "range": [0, 255], "color": "RGB",
          "quantization": ({"scale": float(scale),
                            "zero_point": int(zero_point)}
                           if pixel_dtype != "float32" else None),
          "resize": ("antialiased bilinear to image_size" if
                     preprocessing["mode"] == "paper" else
                     "antialiased bilinear to resize_size square, centre "
                     "crop to image_size"),
          "decode": "JPEG/PNG/GIF/BMP to RGB (gray repeated, alpha "
                    "dropped) in [0, 1], times 255 after resizing"},
      "outputs": {"distribution": "float32[1, 10] over scores 1..10",
                  "mean": "float32[1]", "std": "float32[1]"},
      "float_ops": (tflite_quantize.float_ops_of(model_path)
                    if quantize == "int8" else None),
      "float_ops_kept_on_purpose": ({"tensors": kept_float,
                                     "why": tflite_quantize.float_reasons(
                                         _backbone(spec)) if default else
                                            f"asked for: {int8_float_ops}"}
                                    if kept_float else None),
      "calibration": ({"images": len(calibration) + 1, "source": source,
                       "plus": "one 0..255 ramp (pins the input range)"}
                      if quantize == "int8" else None),
      "agreement_with_checkpoint": (
          dict(agreement, held_out=bool(held_out),
               source=source) if agreement else None),
      "int8_rounding_floor": floor,
  }


def _check_image(representative_dir: Optional[str],
                 size: Tuple[int, int]) -> Tuple[np.ndarray, str]:
  """The enhancer check image: a real photo if given, else seeded texture."""
  if representative_dir:
    for path in sorted(images.list_images([representative_dir])):
      try:
        return images.resize(images.read_image(path), size), path
      except images.ImageReadError:
        continue
  rng = np.random.RandomState(0)
  coarse = rng.uniform(0.0, 1.0, (max(2, size[0] // 8), max(2, size[1] // 8),
                                  3)).astype(np.float32)
  fine = rng.uniform(-0.1, 0.1, (*size, 3)).astype(np.float32)
  return np.clip(images.resize(coarse, size) + fine, 0.0, 1.0), "seeded noise"


def _export_enhancer(model_dir: str, quantize: str,
                     representative_dir: Optional[str],
                     input_size: Optional[Tuple[int, int]], out_dir: str
                    ) -> Dict[str, object]:
  if quantize == "int8":
    raise TfliteError("the enhancer exports with --quantize none or float16 "
                      "(no int8)")
  if input_size is None:
    raise TfliteError("the enhancer's TFLite file has a fixed size: give "
                      "--input_size HxW")
  height, width = (int(v) for v in input_size)
  if height < 1 or width < 1:
    raise TfliteError(f"--input_size must be positive, got {height}x{width}")
  bundle = enhancement.load_enhancer(model_dir, jit_compile=False)
  # tile_size=0: the SavedModel module's one-piece graph (a fixed-size TFLite
  # input needs no band schedule); the check below runs the module
  # export_model serves (band schedule and all) on the same image.
  module = export.make_enhancer_module(bundle.model, tile_size=0)

  def fn(images01):
    return (module.enhance(images01)["images"],)

  content, _ = tflite_convert.convert(
      fn, tf.TensorSpec([1, height, width, 3], tf.float32, name="images"),
      ("images",), quantize)
  model_path = os.path.join(out_dir, MODEL_FILE)
  with open(model_path, "wb") as f:
    f.write(content)
  image, source = _check_image(representative_dir, (height, width))
  served = export.make_enhancer_module(bundle.model)
  reference = served.enhance(tf.constant(image[None]))["images"][0].numpy()
  got = TfliteEnhancer(model_path, {})(image)
  return {
      "input": {"name": "images", "shape": [1, height, width, 3],
                "dtype": "float32", "range": [0, 1], "color": "RGB",
                "quantization": None},
      "outputs": {"images": "float32[1, H, W, 3] in [0, 1] (clipped)"},
      "agreement_with_saved_model": {
          "image": source,
          "max_abs_diff": float(np.abs(got - reference).max())},
  }


def export_tflite(model_dir: str, export_dir: str, kind: Optional[str] = None,
                  quantize: str = "none",
                  representative_dir: Optional[str] = None,
                  input_size: Optional[Tuple[int, int]] = None,
                  version: Optional[int] = None,
                  int8_float_ops: Optional[str] = None) -> str:
  """Exports the latest checkpoint of model_dir as a versioned .tflite.

  Writes `export_dir/<version>/model.tflite` and `tflite_metadata.json` in a
  hidden temporary folder renamed into place when complete.

  Args:
    model_dir: a nima-train (scorer) or enhance-train (enhancer) model dir.
    export_dir: base folder of the versions.
    kind: "scorer" or "enhancer"; None takes it from model_spec.json.
    quantize: "none", "float16" or "int8" (scorer only).
    representative_dir: images for int8 calibration and the agreement check;
      default: the training images model_spec.json records, if present.
    input_size: (height, width) of the enhancer's fixed input (required for
      the enhancer; the scorer takes model_spec.json's image_size).
    version: integer version folder; default: current time in seconds.
    int8_float_ops: scorer int8 only, for comparisons (the benchmark's int8
      variants): a regular expression of TFLite tensor names to keep in
      float instead of `tflite_quantize.float_pattern(backbone)`; "" is
      full-integer. None: the shipped choice.

  Returns:
    the path of the written model.tflite.

  Raises:
    TfliteError, saved_model.ExportError: the request does not fit the model
      dir.
    FileNotFoundError: no model_spec.json or no checkpoint.
  """
  if quantize not in tflite_convert.QUANTIZATIONS:
    raise TfliteError("quantize must be one of "
                      f"{', '.join(tflite_convert.QUANTIZATIONS)}, "
                      f"got {quantize!r}")
  spec = export._read_spec(model_dir)  # pylint: disable=protected-access
  kind = export._kind_of(spec, model_dir, kind)  # pylint: disable=protected-access
  if kind == export.SCORER and input_size is not None:
    raise TfliteError("--input_size is for the enhancer; the scorer's size "
                      "is the image_size it was trained with")
  os.makedirs(export_dir, exist_ok=True)
  tmp_dir = tempfile.mkdtemp(prefix=".tmp-tflite-", dir=export_dir)
  try:
    if kind == export.SCORER:
      details = _export_scorer(model_dir, spec, quantize, representative_dir,
                               tmp_dir, int8_float_ops)
      checkpoint = tf.train.latest_checkpoint(model_dir)
    else:
      details = _export_enhancer(model_dir, quantize, representative_dir,
                                 input_size, tmp_dir)
      checkpoint = tf.train.latest_checkpoint(model_dir)
    metadata = {
        "kind": kind, "format": "tflite", "quantize": quantize,
        "model_file": MODEL_FILE, "signature": SIGNATURE,
        "size_bytes": os.path.getsize(os.path.join(tmp_dir, MODEL_FILE)),
        **details,
        "training_step": export._training_step(checkpoint),  # pylint: disable=protected-access
        "source_checkpoint": os.path.abspath(checkpoint),
        "source_model_dir": os.path.abspath(model_dir),
        "tensorflow_version": tf.__version__}
    with open(os.path.join(tmp_dir, METADATA_FILE), "w",
              encoding="utf-8") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
      f.write("\n")
    final = os.path.join(export_dir, str(
        export._free_version(export_dir, version)))  # pylint: disable=protected-access
    os.rename(tmp_dir, final)
  except BaseException:
    shutil.rmtree(tmp_dir, ignore_errors=True)
    raise
  return os.path.join(final, MODEL_FILE)


__all__ = ["export_tflite", "float_ops_of", "load_tflite",
           "score_files_with_tflite", "TfliteModel", "TfliteScorer",
           "TfliteEnhancer", "TfliteError", "read_metadata", "resolve_tflite"]
