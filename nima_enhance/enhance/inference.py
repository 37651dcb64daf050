"""Enhancer inference: restore a trained CAN, enhance in bounded memory, write files.

A trained enhancer is rebuilt from the `model_spec.json` the training loop
writes (docs/architecture.md, "Model dirs") and its latest checkpoint, so no
gin file is needed after training. Photos of any size run by the band schedule
of `models/can_streaming.py`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data import image_files
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.models import can
from nima_enhance.models import can_streaming


@dataclasses.dataclass
class EnhancerBundle:
  """A restored CAN with its model_spec.json, callable on float images.

  By default the CAN runs by the bounded-memory band schedule of
  `models/can_streaming.py` (exact; memory depends on the width, not the
  height), with the band size chosen from `memory_budget_gb` and the width.
  `tile_size` N > 0 forces N-row bands; 0 runs the whole image in one piece
  (float32: the Keras model, XLA-compiled when `jit_compile`, as before the
  band schedule existed; bfloat16: the folded one-piece graph).
  """
  model: keras.Model
  spec: Dict[str, object]
  checkpoint: str
  # XLA fuses the padding, normalization and activations between the dilated
  # convolutions of the one-piece pass: 1.6x faster on CPU at 2 MP
  # (tools/benchmarks/can_inference.py), about a second of compilation per
  # new image size. Used only by the one-piece float32 pass (tile_size 0).
  jit_compile: bool = True
  tile_size: Optional[int] = None
  memory_budget_gb: float = can_streaming.DEFAULT_MEMORY_BUDGET_GB
  precision: str = "float32"
  _fn: Optional[object] = None

  def __call__(self, image, output_uint8: bool = False,
               as_tensor: bool = False):
    """Enhances one RGB [h, w, 3] image at full size.

    Args:
      image: float [0, 1] or uint8, numpy array or tf.Tensor (a caller that
        converts and drops its numpy copy first saves a copy of the input).
      output_uint8: return round(255 * output) as uint8 (made band by band:
        a quarter of the float output's memory).
      as_tensor: the band schedule returns a tf.Tensor (see
        `can_streaming.StreamingEnhancer`); the one-piece pass returns numpy
        regardless.

    Returns:
      float32 clipped to [0, 1], or uint8 (numpy array, or tf.Tensor).
    """
    if self._fn is None:
      if self.tile_size == 0 and self.precision == "float32":
        model = self.model
        one_piece = tf.function(
            lambda x: tf.clip_by_value(model(x, training=False), 0.0, 1.0),
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)],
            jit_compile=self.jit_compile)
        def whole(image, output_uint8=False, as_tensor=False):
          del as_tensor  # numpy in any case
          pixels = tf.convert_to_tensor(image)
          if pixels.dtype == tf.uint8:
            pixels = tf.cast(pixels, tf.float32) / 255.0
          out = one_piece(tf.cast(pixels, tf.float32)[None])[0].numpy()
          return image_write.quantize(out) if output_uint8 else out
        self._fn = whole
      else:
        self._fn = can_streaming.StreamingEnhancer(
            self.model, tile_size=self.tile_size,
            memory_budget_gb=self.memory_budget_gb, precision=self.precision)
    return self._fn(image, output_uint8=output_uint8, as_tensor=as_tensor)


def _compact_pixels(image: np.ndarray) -> tf.Tensor:
  """The pixels as a uint8 tensor when they are 8-bit values, else float32.

  A photo decoded from 8 bits holds k / 255 (up to the float rounding of the
  decoder's division); handing the CAN uint8 saves three quarters of the
  input's memory (the band schedule scales it band by band; the result
  differs from the float input's by float rounding only). Checked row block
  by row block, so no full-size temporary.
  """
  quantized = np.empty(image.shape, np.uint8)
  for start in range(0, image.shape[0], 256):
    scaled = image[start:start + 256] * np.float32(255.0)
    rounded = np.round(scaled)
    if (rounded.min(initial=0.0) < 0 or rounded.max(initial=0.0) > 255 or
        np.abs(scaled - rounded).max(initial=0.0) > 1e-3):
      return tf.convert_to_tensor(image, tf.float32)
    quantized[start:start + 256] = rounded
  return tf.convert_to_tensor(quantized)


def load_enhancer(model_dir: str, jit_compile: bool = True,
                  tile_size: Optional[int] = None,
                  memory_budget_gb: float =
                  can_streaming.DEFAULT_MEMORY_BUDGET_GB,
                  precision: str = "float32") -> EnhancerBundle:
  """Rebuilds the CAN recorded in model_dir and restores its latest checkpoint.

  Args:
    model_dir: an enhance-train model dir.
    jit_compile: XLA-compile the one-piece float32 pass (see EnhancerBundle).
    tile_size: band rows; 0 = one piece; None = from memory_budget_gb.
    memory_budget_gb: the CAN's working-memory budget for the default band.
    precision: "float32" or "bfloat16" (see can_streaming.PRECISIONS).

  Raises:
    FileNotFoundError: no model_spec.json or no checkpoint.
    ValueError: model_dir holds another kind of model, or a bad option.
  """
  can_streaming.check_options(tile_size, memory_budget_gb, precision)
  spec, checkpoint = model_dir_lib.open_model_dir(model_dir, "enhancer")
  model = model_dir_lib.build_from_spec(spec, can.build_can)
  model_dir_lib.restore(model, checkpoint)
  return EnhancerBundle(model, spec, checkpoint, jit_compile=jit_compile,
                        tile_size=tile_size, memory_budget_gb=memory_budget_gb,
                        precision=precision)


def enhance_files(enhancer: EnhancerBundle, paths: Sequence[str],
                  output_dir: str, fmt: str = "png", bit_depth: int = 8
                 ) -> Dict[str, object]:
  """Enhances files at full size into output_dir/<stem>.<png|jpg>.

  Inputs whose stems collide keep their extension in the output name
  (a.png -> a.png.png, a.tif -> a.tif.png; `image_files.output_names`).

  Returns:
    {"written": [paths], "skipped": {path: reason}}.

  Raises:
    ValueError: output_dir holds an input (outputs never replace inputs).
  """
  ext = {"png": "png", "jpeg": "jpg", "jpg": "jpg"}.get(fmt.lower())
  if ext is None:
    raise ValueError(f"format must be png or jpeg, got {fmt!r}")
  if ext == "jpg" and bit_depth != 8:
    raise ValueError("JPEG output is 8-bit only (use --format png for 16)")
  image_files.refuse_overwrite(paths, output_dir)
  names = image_files.output_names(paths, ext)
  written, skipped = [], {}
  for path in paths:
    out_path = os.path.join(output_dir, names[path])
    try:
      _enhance_file(enhancer, path, out_path, bit_depth)
    except images.ImageReadError as err:
      logging.warning("skipped %s", err)
      skipped[path] = str(err)
      continue
    except (MemoryError, tf.errors.ResourceExhaustedError,
            tf.errors.InvalidArgumentError) as err:
      # One photo that does not fit (or that the graph rejects) must not end
      # a batch run: name it, skip it, go on. (The output is written
      # atomically, so a failure leaves no partial file.)
      reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
      logging.warning("skipped %s: %s", path, reason)
      skipped[path] = f"{path}: enhancement failed ({type(err).__name__}: " \
                      f"{reason[:200]})"
      continue
    written.append(out_path)
    logging.info("%s -> %s", path, out_path)
  return {"written": written, "skipped": skipped}


def _enhance_file(enhancer, path: str, out_path: str, bit_depth: int) -> None:
  """Reads, enhances and writes one photo, holding one copy at a time.

  Raises:
    images.ImageReadError: the photo cannot be read.
    MemoryError, tf.errors.OpError: decoding, the CAN or encoding failed.
  """
  image = images.read_image(path)
  bundle = isinstance(enhancer, EnhancerBundle)
  pixels = (_compact_pixels(image) if bundle
            else tf.convert_to_tensor(image, tf.float32))
  del image  # one copy of the input only, while the CAN runs
  if bundle and bit_depth == 8:
    # 8-bit output made band by band and kept as a tensor: transposed and
    # encoded in TensorFlow's allocator, which still holds the CAN's working
    # memory, instead of numpy copies on top of it (docs/can_streaming.md).
    enhanced = enhancer(pixels, output_uint8=True, as_tensor=True)
  else:
    enhanced = enhancer(pixels)
  del pixels
  image_write.write_image(out_path, enhanced, bit_depth=bit_depth)
