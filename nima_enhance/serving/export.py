"""SavedModel export of the NIMA scorer and the CAN enhancer.

`export_model` restores the latest checkpoint of a model dir and writes a
SavedModel in TF Serving's versioned layout, `<export_dir>/<seconds>/`, with
the signatures of docs/serving.md:

scorer (serving_default = score_image_bytes)
  score_image_bytes(images: string[batch])  JPEG/PNG/GIF/BMP bytes
  score_images(images: float32[batch, h, w, 3] in [0, 255])
    -> {"distribution": float32[batch, 10], "mean": float32[batch],
        "std": float32[batch]}

enhancer (serving_default = enhance_image_bytes)
  enhance_image_bytes(image: string[])  one encoded image, any size
    -> {"image": string[]}  8-bit RGB PNG of the same size
  enhance(images: float32[batch, h, w, 3] in [0, 1])
    -> {"images": float32[batch, h, w, 3] in [0, 1]}
  enhance_image_bytes_rest(image: string[]) -> {"image_bytes": string[]}
    the same PNG under a name TF Serving's REST API base64-encodes

Decoding and resizing happen inside the graph with the project's one image path
(`images.decode_image_tf`, `ava_pipeline.preprocess_tf(training=False)` with
the preprocessing recorded in model_spec.json), so a served score equals what
nima-score computes from the checkpoint. The graph holds only stock TensorFlow
ops: the SavedModel loads with plain `tf.saved_model.load` (or TF Serving)
without this package.

Beside the graph, `assets.extra/` (TF Serving's place for files it does not
read) holds `operative_config.gin` (copied from the model dir) and
`model_metadata.json` (kind, architecture, preprocessing, training step,
source checkpoint, signatures).

The clients that load what this module writes (`nima-score --saved_model`,
`enhance --saved_model`) are in `serving/saved_model.py`, which also holds the
names both sides share (`ASSETS_EXTRA`, `METADATA_FILE`, `ExportError`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Dict, Optional

import tensorflow as tf

from nima_enhance import metrics
from nima_enhance import model_dir as model_dir_lib
from nima_enhance import scoring
from nima_enhance.data import ava_pipeline
from nima_enhance.data import image_headers
from nima_enhance.data import images
from nima_enhance.enhance import inference as enhancement
from nima_enhance.models import can_streaming
from nima_enhance.serving import saved_model

SCORER = "scorer"
ENHANCER = "enhancer"
KINDS = (SCORER, ENHANCER)
# model_spec.json "task" written by each training task (model_dir.KINDS).
_TASK_OF_KIND = {kind: task for task, kind in model_dir_lib.KINDS.items()}
OPERATIVE_CONFIG_FILE = "operative_config.gin"
# Bit depth of enhance_image_bytes' PNG (see export_enhancer for why 8).
ENHANCED_PNG_BIT_DEPTH = 8

SIGNATURES = {
    SCORER: {
        "score_image_bytes": {
            "inputs": {"images": "string[batch]: encoded JPEG/PNG/GIF/BMP"},
            "outputs": {"distribution": "float32[batch, 10]",
                        "mean": "float32[batch]", "std": "float32[batch]"}},
        "score_images": {
            "inputs": {"images": "float32[batch, height, width, 3] in 0..255"},
            "outputs": {"distribution": "float32[batch, 10]",
                        "mean": "float32[batch]", "std": "float32[batch]"}},
    },
    ENHANCER: {
        "enhance_image_bytes": {
            "inputs": {"image": "string[]: one encoded JPEG/PNG/GIF/BMP"},
            "outputs": {"image": "string[]: 8-bit RGB PNG, input size"}},
        "enhance": {
            "inputs": {"images": "float32[batch, height, width, 3] in 0..1"},
            "outputs": {"images": "float32[batch, height, width, 3] in 0..1"}},
        "enhance_image_bytes_rest": {
            "inputs": {"image": "string[]: one encoded JPEG/PNG/GIF/BMP"},
            "outputs": {"image_bytes": "string[]: 8-bit RGB PNG, input size"}},
    },
}
DEFAULT_SIGNATURE = {SCORER: "score_image_bytes",
                     ENHANCER: "enhance_image_bytes"}


# ---------------------------------------------------------------------------
# Graph pieces shared by the signatures


def _checked_decode_tf(image_bytes: tf.Tensor,
                       target_size=None) -> tf.Tensor:
  """The reading contract in graph (`images.decode_image_tf`).

  EXIF orientation, alpha over white, JPEG/PNG/GIF/BMP/WebP, and the pixel
  limit in force when the signature is traced (`export_model`'s max_pixels),
  checked from the header before decoding. Empty, unsupported, oversized or
  undecodable bytes raise InvalidArgumentError with the reason, for that
  request only. `target_size`: the scorer's first resize
  (`ava_pipeline.decode_size`), so large JPEGs are decoded reduced, as in
  training.
  """
  return images.decode_image_tf(image_bytes, target_size=target_size)


def _scores(distribution: tf.Tensor) -> Dict[str, tf.Tensor]:
  return {"distribution": distribution,
          "mean": metrics.mean_score(distribution),
          "std": metrics.std_score(distribution)}


def _pixel_spec(preprocessing: Dict[str, object]) -> tf.TensorSpec:
  height, width = preprocessing["image_size"]
  return tf.TensorSpec([int(height), int(width), 3], tf.float32)


def make_scorer_module(model, preprocessing: Dict[str, object]) -> tf.Module:
  """A tf.Module with the scorer's two serving functions.

  Args:
    model: NIMA keras model, [b, h, w, 3] pixels in [0, 255] -> [b, 10].
    preprocessing: model_spec.json's "preprocessing" dict.

  Returns:
    module with `score_image_bytes` and `score_images` tf.functions; its
    `variables` track the model's weights so tf.saved_model.save stores them.
  """
  preprocessing = dict(preprocessing)
  pixel_spec = _pixel_spec(preprocessing)
  module = tf.Module(name="nima_scorer")
  # Tracking the variables (not the keras object) keeps Keras' own object
  # graph out of the SavedModel: the loader needs nothing but TensorFlow.
  module.model_variables = list(model.variables)

  def predict(pixels):
    return _scores(model(pixels, training=False))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name="images")])
  def score_image_bytes(images_bytes):
    pixels = tf.map_fn(
        lambda b: scoring.eval_pixels_tf(
            _checked_decode_tf(b, ava_pipeline.decode_size(preprocessing)),
            preprocessing),
        images_bytes, fn_output_signature=pixel_spec)
    return predict(pixels)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
  def score_images(images_255):
    # preprocess_tf works on one image (centre crop by slicing), so a batch
    # goes through it image by image, exactly as the bytes path does.
    pixels = tf.map_fn(
        lambda x: scoring.eval_pixels_tf(x / 255.0, preprocessing),
        images_255, fn_output_signature=pixel_spec)
    return predict(pixels)

  module.score_image_bytes = score_image_bytes
  module.score_images = score_images
  return module


def make_enhancer_module(model, tile_size: Optional[int] = None,
                         memory_budget_gb: Optional[float] = None,
                         precision: str = "float32") -> tf.Module:
  """A tf.Module with the enhancer's two serving functions.

  The CAN runs in graph by the exact bounded-memory band schedule of
  `models/can_streaming.py` (a tf.while_loop over row bands), so TF Serving
  enhances any photo size in memory that depends on its width only; the band
  size is chosen in graph from the budget and each image's short side.

  Args:
    model: CAN keras model, RGB [b, h, w, 3] in [0, 1] -> same shape.
    tile_size: band rows; None = from memory_budget_gb; 0 = the whole image
      in one piece (float32: the Keras model's own graph, as TFLite needs).
    memory_budget_gb: the CAN's working-memory budget per image (default
      can_streaming.DEFAULT_MEMORY_BUDGET_GB).
    precision: "float32" or "bfloat16" compute dtype.

  Returns:
    module with `enhance_image_bytes` and `enhance` tf.functions.
  """
  if precision not in can_streaming.PRECISIONS:
    raise saved_model.ExportError(
        f"precision must be one of {', '.join(can_streaming.PRECISIONS)}, "
        f"got {precision!r}")
  budget = (can_streaming.DEFAULT_MEMORY_BUDGET_GB if memory_budget_gb is None
            else float(memory_budget_gb))
  module = tf.Module(name="can_enhancer")
  if tile_size == 0 and precision == "float32":
    module.model_variables = list(model.variables)

    def run(batch):
      # The CAN's output is unclipped (training needs the gradient outside
      # [0, 1]); served images are clipped, as enhance and enhance-eval do.
      return tf.clip_by_value(model(batch, training=False), 0.0, 1.0)
    quantized_of = None
  else:
    folded = can_streaming.fold_can(model)
    # Folded weights (normalization inside the kernels), stored as variables.
    module.folded_weights = [tf.Variable(w, trainable=False)
                             for w in can_streaming.weight_list(folded)]
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32

    def run(batch):
      return tf.map_fn(
          lambda image: can_streaming.enhance_image(
              image, module.folded_weights, folded.dilations, folded.slope,
              tile_size, budget, dtype),
          batch, fn_output_signature=tf.TensorSpec([None, None, 3],
                                                   tf.float32))

    def quantized_of(image):
      return can_streaming.enhance_image(
          image, module.folded_weights, folded.dilations, folded.slope,
          tile_size, budget, dtype, output_uint8=True)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
  def enhance(images01):
    return {"images": run(images01)}

  def png_of(image_bytes):
    decoded = _checked_decode_tf(image_bytes)
    if quantized_of is not None:
      # Quantized band by band: no float copy of the whole output. A JPEG
      # holds k / 255 exactly: it enters the loop as uint8 (as in enhance),
      # so its float decode (576 MB at 48 MP) is freed before the loop.
      is_jpeg = tf.equal(image_headers.header_tf(image_bytes)[0],
                         image_headers.JPEG)
      return tf.io.encode_png(tf.cond(
          is_jpeg,
          lambda: quantized_of(tf.cast(tf.round(decoded * 255.0), tf.uint8)),
          lambda: quantized_of(decoded)))
    enhanced = run(decoded[None])[0]
    # tf.round rounds half to even like np.round in image_write.quantize, so the
    # PNG holds the same values `enhance --bit_depth 8` writes.
    quantized = tf.cast(tf.round(enhanced * 255.0), tf.uint8)
    return tf.io.encode_png(quantized)

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image")])
  def enhance_image_bytes(image_bytes):
    return {"image": png_of(image_bytes)}

  # TF Serving's REST API base64-encodes a string output only when its name
  # ends in "_bytes"; the contract's "image" would reach JSON clients as raw
  # binary. Same graph, REST-safe output name.
  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image")])
  def enhance_image_bytes_rest(image_bytes):
    return {"image_bytes": png_of(image_bytes)}

  module.enhance = enhance
  module.enhance_image_bytes = enhance_image_bytes
  module.enhance_image_bytes_rest = enhance_image_bytes_rest
  return module


# ---------------------------------------------------------------------------
# Export


def _read_spec(model_dir: str) -> Dict[str, object]:
  try:
    return model_dir_lib.read_model_spec(model_dir)
  except json.JSONDecodeError as err:
    raise saved_model.ExportError(
        f"{model_dir}/model_spec.json: not valid JSON ({err.msg})") from None


def _kind_of(spec: Dict[str, object], model_dir: str,
             kind: Optional[str]) -> str:
  task = spec.get("task")
  inferred = model_dir_lib.KINDS.get(task)
  if kind is None:
    if inferred is None:
      raise saved_model.ExportError(f"{model_dir}: unknown model task {task!r}")
    return inferred
  if kind not in KINDS:
    raise saved_model.ExportError(
        f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
  if inferred != kind:
    raise saved_model.ExportError(
        f"{model_dir} holds a {task!r} model; --kind {kind} needs one "
        f"trained as {_TASK_OF_KIND[kind]!r}")
  return kind


def _training_step(checkpoint: str) -> Optional[int]:
  """The loop's `step` variable stored in the checkpoint (None if absent)."""
  try:
    return int(tf.train.load_variable(checkpoint,
                                      "step/.ATTRIBUTES/VARIABLE_VALUE"))
  except (tf.errors.NotFoundError, ValueError):
    return None


def _free_version(export_dir: str, version: Optional[int]) -> int:
  """`version` or the current time in seconds, bumped past existing versions.

  TF Serving serves the largest integer, so a later export must never get a
  smaller or equal number than an earlier one, even within the same second.
  """
  existing = [int(n) for n in os.listdir(export_dir) if n.isdigit()]
  if version is not None:
    if version in existing:
      raise saved_model.ExportError(
          f"{os.path.join(export_dir, str(version))} exists")
    return version
  candidate = int(time.time())
  if existing:
    candidate = max(candidate, max(existing) + 1)
  return candidate


def export_model(model_dir: str, export_dir: str, kind: Optional[str] = None,
                 version: Optional[int] = None,
                 max_pixels: Optional[int] = None,
                 precision: str = "float32") -> str:
  """Exports the latest checkpoint of model_dir as a versioned SavedModel.

  The SavedModel is written to a hidden temporary folder inside export_dir
  and renamed to `export_dir/<version>` only when complete, so TF Serving (which
  polls export_dir for integer names) never sees a partial model.

  Args:
    model_dir: a model dir written by nima-train (scorer) or enhance-train
      (enhancer): model_spec.json, checkpoints, operative_config.gin.
    export_dir: base folder of the versions.
    kind: "scorer" or "enhancer"; None takes it from model_spec.json.
    version: integer version folder; default: current time in seconds.
    max_pixels: the bytes signatures' pixel limit, checked from the header
      before decoding (default: images.get_max_pixels(), 200 MP).
    precision: "float32" or "bfloat16", the compute dtype of the exported
      graph (scorer: `load_nima`'s mixed_bfloat16; enhancer: the band
      schedule's activations, can_streaming). Recorded in the metadata.

  Returns:
    the path of the written version folder.

  Raises:
    saved_model.ExportError: kind does not match the model dir, or the
      version exists.
    FileNotFoundError: no model_spec.json or no checkpoint.
  """
  if precision not in can_streaming.PRECISIONS:
    raise saved_model.ExportError(
        f"precision must be one of {', '.join(can_streaming.PRECISIONS)}, "
        f"got {precision!r}")
  spec = _read_spec(model_dir)
  kind = _kind_of(spec, model_dir, kind)
  if kind == SCORER:
    bundle = scoring.load_nima(model_dir, precision=precision)
    module = make_scorer_module(bundle.model, bundle.preprocessing)
    checkpoint = bundle.checkpoint
    signatures = {
        "score_image_bytes": module.score_image_bytes,
        "score_images": module.score_images}
    architecture = {"build_nima": spec.get("build_nima", {})}
    extra = {"preprocessing": bundle.preprocessing,
             "input_pixels": "decoded to RGB [0, 1], preprocessed as in "
                             "evaluation, scaled to [0, 255]",
             "score_buckets": list(range(1, 11))}
  else:
    bundle = enhancement.load_enhancer(model_dir)
    module = make_enhancer_module(bundle.model, precision=precision)
    checkpoint = bundle.checkpoint
    signatures = {
        "enhance_image_bytes": module.enhance_image_bytes,
        "enhance": module.enhance,
        "enhance_image_bytes_rest": module.enhance_image_bytes_rest}
    architecture = {"build_can": spec.get("build_can", {})}
    extra = {"preprocessing": None,
             "input_pixels": "RGB in [0, 1] at the original size",
             "png_bit_depth": ENHANCED_PNG_BIT_DEPTH,
             "target": spec.get("target"), "gamma": spec.get("gamma")}
  # serving_default first: TF Serving's REST API without a signature_name.
  signatures = {"serving_default": signatures[DEFAULT_SIGNATURE[kind]],
                **signatures}
  metadata = {
      "kind": kind, "task": spec.get("task"), **architecture, **extra,
      "training_step": _training_step(checkpoint),
      "source_checkpoint": os.path.abspath(checkpoint),
      "source_model_dir": os.path.abspath(model_dir),
      "default_signature": DEFAULT_SIGNATURE[kind],
      "signatures": SIGNATURES[kind],
      "tensorflow_version": tf.__version__,
      "precision": precision,
      "max_pixels": int(max_pixels or images.get_max_pixels())}

  os.makedirs(export_dir, exist_ok=True)
  tmp_dir = tempfile.mkdtemp(prefix=".tmp-export-", dir=export_dir)
  try:
    # The bytes signatures are traced here, with the export's pixel limit.
    with images.pixel_limit(max_pixels):
      tf.saved_model.save(module, tmp_dir, signatures=signatures)
    extra_dir = os.path.join(tmp_dir, saved_model.ASSETS_EXTRA)
    os.makedirs(extra_dir, exist_ok=True)
    operative = os.path.join(model_dir, OPERATIVE_CONFIG_FILE)
    if os.path.isfile(operative):
      shutil.copyfile(operative, os.path.join(extra_dir, OPERATIVE_CONFIG_FILE))
      metadata["operative_config"] = (
          f"{saved_model.ASSETS_EXTRA}/{OPERATIVE_CONFIG_FILE}")
    else:
      metadata["operative_config"] = None
    with open(os.path.join(extra_dir, saved_model.METADATA_FILE), "w",
              encoding="utf-8") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
      f.write("\n")
    # Pick the number only now: a slow save must not reuse a number taken by
    # an export that finished meanwhile.
    final = os.path.join(export_dir, str(_free_version(export_dir, version)))
    os.rename(tmp_dir, final)
  except BaseException:
    shutil.rmtree(tmp_dir, ignore_errors=True)
    raise
  return final


__all__ = ["export_model", "make_scorer_module", "make_enhancer_module",
           "KINDS", "SIGNATURES"]
