"""`small_cnn`: a NIMA backbone that learns from random weights on a CPU.

Used by gin/nima/from_scratch_small.gin (the demo and the tests), where no
ImageNet weights exist. Measured on 2 CPU cores, a plain 8-layer CNN with batch
norm was unstable at small batches and reached SRCC 0.45 in minutes; this design
instead:

* keeps full resolution in the first block, so noise and blur (pixel-scale
  degradations) are visible before any downsampling;
* uses no batch norm (unstable at batch 16-32) and a small fixed-scale input;
* pools each of the four stages by both the global mean and the global standard
  deviation of every channel: means capture exposure, standard deviations
  capture contrast and high-frequency energy (sharpness, noise, JPEG blocking),
  so the head sees the statistics that separate the degradations directly;
* layer-normalizes the pooled statistics so one Adam learning rate fits all.
"""

from __future__ import annotations

from typing import Optional

import keras

from nima_enhance.models.backbones import register_backbone


class GlobalMeanStdPooling(keras.layers.Layer):
  """[b, h, w, c] -> [b, 2c]: per-channel spatial mean and standard deviation."""

  def call(self, inputs):
    mean = keras.ops.mean(inputs, axis=(1, 2))
    variance = keras.ops.mean(
        keras.ops.square(inputs - mean[:, None, None, :]), axis=(1, 2))
    return keras.ops.concatenate([mean, keras.ops.sqrt(variance + 1e-6)],
                                 axis=-1)


# Fixed (not gin-bound) so a checkpoint's architecture is fully named by its
# backbone name, which model_spec.json records.
STAGE_WIDTHS = (16, 32, 64, 96)


@register_backbone("small_cnn")
def build_small_cnn(inputs, weights: Optional[str] = None):
  """Four conv stages (first at full resolution), mean+std pooled per stage."""
  if weights == "imagenet":
    raise ValueError("backbone 'small_cnn' has no ImageNet weights; use "
                     "weights=None (train from scratch)")
  widths = STAGE_WIDTHS
  x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="small_rescale")(
      inputs)
  pooled = []
  for stage, width in enumerate(widths):
    strides = 1 if stage == 0 else 2
    x = keras.layers.Conv2D(width, 3, strides=strides, padding="same",
                            activation="relu", name=f"small_conv{stage}a")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                            name=f"small_conv{stage}b")(x)
    pooled.append(GlobalMeanStdPooling(name=f"small_pool{stage}")(x))
  features = keras.layers.Concatenate(name="small_features")(pooled)
  features = keras.layers.LayerNormalization(name="small_norm")(features)
  return keras.layers.Dense(128, activation="relu", name="small_fc")(features)
