"""Training losses: NIMA's EMD loss (eq. 2, r = 2).

The enhancer's perceptual loss (eq. 1) lives here too once the enhancer lands.
Losses return per-example values; the training loop averages them over the
global batch so every strategy scales gradients the same way.
"""

from __future__ import annotations

import tensorflow as tf

from nima_enhance.metrics import emd  # pylint: disable=unused-import


def emd_loss(true_probs, pred_probs, r: float = 2.0) -> tf.Tensor:
  """Per-example EMD training loss (r = 2 as in the paper and Hou et al.)."""
  return emd(true_probs, pred_probs, r=r)
