"""The enhancement CNN: a context aggregation network (CAN), paper section 3.

Ten convolutional layers of 32 feature maps: nine 3x3 layers whose dilation
grows as 2^k (k = 0..8) and a final 1x1 layer to RGB without a non-linearity;
leaky ReLU (slope 0.2) after every other layer; adaptive normalization
(Chen et al. 2017) after every 3x3 convolution. Unlike Chen et al. every
intermediate map is *symmetrically* padded before its (VALID) 3x3 convolution,
which the paper calls essential against the artifacts that zero padding causes
at large dilations. The receptive field is 1 + 2 * (1 + 2 + ... + 256) = 1023.

Identity initialisation: each 3x3 kernel's centre tap copies channel i to
channel i (the first layer copies RGB into channels 0-2) and the 1x1 layer
copies channels 0-2 back to RGB, so an untrained CAN reproduces its input.
A small Gaussian perturbation of every weight breaks the symmetry of the other
29 channels (exactly zero weights would give them exactly zero gradients
forever), while keeping the untrained output within ~1e-3 of the input.

Input and output are RGB in [0, 1]. The output is *not* clipped by default:
clipping would zero the fidelity loss's gradient wherever the network
overshoots; the L2 term itself pulls the output back into range. Inference
code (enhance, enhance-eval, export) clips before writing or measuring.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import gin
import keras
import numpy as np

from nima_enhance.models.layers import AdaptiveNormalization
from nima_enhance.models.layers import SymmetricPad2D


def paper_dilations(depth: int = 10) -> List[int]:
  """Dilations 2^k of the depth - 1 3x3 layers (the last layer is 1x1)."""
  return [2 ** k for k in range(depth - 1)]


def receptive_field(dilations: Optional[Sequence[int]] = None) -> int:
  """Receptive field (pixels per side) of the 3x3 layers with these dilations.

  Each 3x3 layer with dilation d widens the field by 2d; the final 1x1 layer
  adds nothing. 1023 for the paper's dilations 1, 2, ..., 256.
  """
  if dilations is None:
    dilations = paper_dilations()
  return 1 + 2 * int(sum(int(d) for d in dilations))


class IdentityKernel(keras.initializers.Initializer):
  """Kernel [kh, kw, in, out] with centre tap i -> i = 1, plus N(0, stddev)."""

  def __init__(self, stddev: float = 1e-4, seed: Optional[int] = None):
    self.stddev = float(stddev)
    self.seed = seed

  def __call__(self, shape, dtype=None):
    kh, kw, cin, cout = (int(s) for s in shape)
    kernel = np.zeros((kh, kw, cin, cout), np.float32)
    for i in range(min(cin, cout)):
      kernel[kh // 2, kw // 2, i, i] = 1.0
    if self.stddev:
      rng = np.random.default_rng(self.seed)
      kernel += rng.normal(0.0, self.stddev, kernel.shape).astype(np.float32)
    return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

  def get_config(self):
    return {"stddev": self.stddev, "seed": self.seed}


@gin.configurable("build_can")
def build_can(width: int = 32,
              depth: int = 10,
              dilations: Optional[Sequence[int]] = None,
              adaptive_norm: bool = True,
              norm_momentum: float = 0.99,
              leaky_slope: float = 0.2,
              init_noise: float = 1e-4,
              clip_output: bool = False,
              seed: int = 0,
              name: str = "can") -> keras.Model:
  """Builds the CAN enhancer.

  Args:
    width: feature maps of every intermediate layer (paper: 32).
    depth: convolutional layers in total (paper: 10); the last one is 1x1.
    dilations: dilation of each of the depth - 1 3x3 layers. None: the paper's
      2^k, k = 0..depth-2. Chen et al.'s CAN is [1, 2, ..., 128, 1].
    adaptive_norm: lambda * x + mu * BN(x) after every 3x3 convolution.
    norm_momentum: momentum of the batch norm's moving statistics, which
      inference uses (0.99 suits the paper's 5e6 steps; short runs need less).
    leaky_slope: negative slope of the leaky ReLUs.
    init_noise: stddev of the perturbation added to the identity kernels.
    clip_output: clip the output to [0, 1] (kills gradients outside; off for
      training, see the module docstring).
    seed: seed of the perturbation (each layer gets seed + layer index).
    name: model name.

  Returns:
    keras.Model mapping float RGB [batch, h, w, 3] in [0, 1] (any h, w >= 1)
    to RGB of the same size.
  """
  if depth < 2:
    raise ValueError(f"build_can.depth must be >= 2, got {depth}")
  dilations = (paper_dilations(depth) if dilations is None
               else [int(d) for d in dilations])
  if len(dilations) != depth - 1:
    raise ValueError(f"build_can.dilations needs depth - 1 = {depth - 1} "
                     f"entries (one per 3x3 layer), got {len(dilations)}")
  if any(d < 1 for d in dilations):
    raise ValueError(f"build_can.dilations must be >= 1, got {dilations}")
  inputs = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
  x = inputs
  for k, rate in enumerate(dilations):
    # A dilated 3x3 kernel reaches `rate` pixels to each side.
    x = SymmetricPad2D(rate, name=f"pad_{k}")(x)
    x = keras.layers.Conv2D(
        width, 3, dilation_rate=rate, padding="valid", name=f"conv_{k}",
        kernel_initializer=IdentityKernel(init_noise, seed + k),
        bias_initializer="zeros")(x)
    if adaptive_norm:
      x = AdaptiveNormalization(momentum=norm_momentum,
                                name=f"adaptive_norm_{k}")(x)
    x = keras.layers.LeakyReLU(negative_slope=leaky_slope,
                               name=f"lrelu_{k}")(x)
  outputs = keras.layers.Conv2D(
      3, 1, padding="valid", name=f"conv_{depth - 1}",
      kernel_initializer=IdentityKernel(init_noise, seed + depth - 1),
      bias_initializer="zeros")(x)
  if clip_output:
    outputs = keras.layers.Lambda(lambda t: keras.ops.clip(t, 0.0, 1.0),
                                  name="clip")(outputs)
  return keras.Model(inputs, outputs, name=name)


def conv_layers(model: keras.Model) -> List[keras.layers.Conv2D]:
  """The CAN's convolutions in order (for tests and complexity tools)."""
  return [layer for layer in model.layers
          if isinstance(layer, keras.layers.Conv2D)]
