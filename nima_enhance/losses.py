"""Training losses: NIMA's EMD loss (eq. 2, r = 2) and the perceptual loss (eq. 1).

Losses return per-example values; the training loop averages them over the
global batch so every strategy scales gradients the same way.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import gin
import keras
import tensorflow as tf

from nima_enhance import metrics
from nima_enhance.data import ava_pipeline
from nima_enhance.metrics import emd  # pylint: disable=unused-import


def emd_loss(true_probs, pred_probs, r: float = 2.0) -> tf.Tensor:
  """Per-example EMD training loss (r = 2 as in the paper and Hou et al.)."""
  return emd(true_probs, pred_probs, r=r)


FIDELITIES = ("l2", "l1", "huber")


def fidelity_loss(reference, enhanced, fidelity: str = "l2",
                  huber_delta: float = 0.1) -> tf.Tensor:
  """Per-example data fidelity f(x_r, c(x)): mean over pixels and channels.

  Args:
    reference: [b, h, w, 3] target images in [0, 1].
    enhanced: [b, h, w, 3] network output.
    fidelity: "l2" (mean squared error, the paper's choice), "l1" (mean
      absolute error) or "huber" (quadratic below `huber_delta`, linear above).
    huber_delta: Huber's threshold in [0, 1] pixel units.

  Returns:
    float32 [b].
  """
  diff = tf.cast(enhanced, tf.float32) - tf.cast(reference, tf.float32)
  if fidelity == "l2":
    per_pixel = tf.square(diff)
  elif fidelity == "l1":
    per_pixel = tf.abs(diff)
  elif fidelity == "huber":
    absolute = tf.abs(diff)
    quadratic = tf.minimum(absolute, huber_delta)
    per_pixel = 0.5 * tf.square(quadratic) + huber_delta * (absolute -
                                                            quadratic)
  else:
    raise ValueError(f"perceptual_loss.fidelity must be one of {FIDELITIES}, "
                     f"got {fidelity!r}")
  return tf.reduce_mean(per_pixel, axis=[1, 2, 3])


def nima_input_pixels(enhanced, nima_preprocessing: Optional[Dict] = None
                     ) -> tf.Tensor:
  """The enhanced batch as NIMA input pixels in [0, 255], differentiably.

  Values are clipped to [0, 1] first: NIMA never saw out-of-range pixels, and
  the quality term must not be able to raise the score with them (clipping
  passes gradients for every in-range pixel). With `nima_preprocessing` (the
  dict stored with a trained NIMA), each image is resized exactly as NIMA was
  evaluated (`ava_pipeline.preprocess_tf`, as `scoring.eval_pixels_tf`);
  without it NIMA sees the image at its own size (the paper's setting, where
  NIMA and the CAN both use 480x640).
  """
  enhanced = tf.clip_by_value(tf.cast(enhanced, tf.float32), 0.0, 1.0)
  if nima_preprocessing is None:
    return enhanced * 255.0
  height, width = nima_preprocessing["image_size"]
  return tf.map_fn(
      lambda image: ava_pipeline.preprocess_tf(image, nima_preprocessing,
                                               training=False),
      enhanced,
      fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))


@gin.configurable("perceptual_loss",
                  denylist=["reference", "enhanced", "nima_model",
                            "nima_preprocessing", "return_components"])
def perceptual_loss(reference, enhanced,
                    nima_model: Optional[keras.Model] = None,
                    gamma: float = 1e-4,
                    fidelity: str = "l2",
                    nima_preprocessing: Optional[Dict] = None,
                    huber_delta: float = 0.1,
                    return_components: bool = False
                   ) -> Union[tf.Tensor, Tuple[tf.Tensor, Dict[str, tf.Tensor]]]:
  """Eq. 1: f(x_r, c(x)) + gamma * (10 - NIMA(c(x))), per example.

  NIMA is used frozen: it is called with training=False (batch norm uses its
  moving statistics, dropout is off) and the caller must keep its variables
  out of the optimizer; gradients still flow through it into `enhanced`.

  Args:
    reference: [b, h, w, 3] reference images x_r in [0, 1].
    enhanced: [b, h, w, 3] enhanced images c(x).
    nima_model: a trained NIMA (pixels [0, 255] -> [b, 10] probabilities);
      unused, and may be None, when gamma == 0.
    gamma: weight of the quality term (paper: 1e-4). 0 skips NIMA entirely,
      which is plain L2 training (Chen et al.).
    fidelity: "l2" (paper), "l1" or "huber"; see `fidelity_loss`.
    nima_preprocessing: NIMA's preprocessing dict (resize as NIMA was
      evaluated); None feeds NIMA the image at its own size.
    huber_delta: threshold of the Huber fidelity.
    return_components: also return a dict of per-batch means for logging:
      "fidelity", and when gamma > 0 "quality" (10 - score) and "nima_mean".

  Returns:
    float32 [b] loss, or (loss, components) with `return_components`.
  """
  fid = fidelity_loss(reference, enhanced, fidelity, huber_delta)
  components = {"fidelity": tf.reduce_mean(fid)}
  if gamma == 0:
    loss = fid
  else:
    if nima_model is None:
      raise ValueError(f"perceptual_loss.gamma={gamma} needs a NIMA model "
                       "(set gamma = 0 for plain fidelity training)")
    probs = nima_model(nima_input_pixels(enhanced, nima_preprocessing),
                       training=False)
    score = metrics.mean_score(tf.cast(probs, tf.float32))
    quality = 10.0 - score
    loss = fid + gamma * quality
    components["quality"] = tf.reduce_mean(quality)
    components["nima_mean"] = tf.reduce_mean(score)
  if return_components:
    return loss, components
  return loss
