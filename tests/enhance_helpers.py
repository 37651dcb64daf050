"""Shared helpers of the enhancer tests: FiveK-style pair folders, NIMA dirs.

Targets are "local-Laplacian-like": a global brightening tone curve (x^0.6,
the kind of global adjustment FiveK's experts make) followed by the project's
own local Laplacian filter (data_prep.local_laplacian, detail_enhancement
preset). The filter is called directly, not through prep-targets, because
the tone curve comes first (prep-targets applies the operator alone; its own
output is checked in tests/test_targets.py). data_prep is part of this
package: if it fails to import, these tests fail (no stand-in filter).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterable, Optional

import numpy as np

from data_prep.local_laplacian import PRESETS, local_laplacian
from nima_enhance.data import image_write
from nima_enhance.data import images

# Real colour and grayscale photographs bundled with scikit-image.
TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
TEST_PHOTOS = ("rocket", "brick", "coins", "page")


def photo(name: str, size=(64, 96)) -> np.ndarray:
  from skimage import data  # pylint: disable=g-import-not-at-top
  image = images.to_float_rgb(np.asarray(getattr(data, name)()), name)
  return images.resize(image, size)


def target_of(image: np.ndarray) -> np.ndarray:
  """Tone curve + local Laplacian detail enhancement (see module docstring)."""
  toned = np.clip(image, 0.0, 1.0) ** 0.6
  return local_laplacian(toned, **PRESETS["detail_enhancement"])


def make_pairs(data_dir: str, names: Iterable[str], size=(64, 96),
               target: str = "local_laplacian") -> Dict[str, np.ndarray]:
  """Writes input/<i>_<name>.png (8-bit) and <target>/<i>_<name>.png (16-bit).

  The numeric prefix fixes the sorted order, so the names given first form
  the training half.
  """
  written = {}
  for i, name in enumerate(names):
    stem = f"{i:02d}_{name}"
    image = photo(name, size)
    image_write.write_image(os.path.join(data_dir, "input", stem + ".png"),
                            image)
    image_write.write_image(os.path.join(data_dir, target, stem + ".png"),
                            target_of(image_write.quantize(image) / 255.0),
                            bit_depth=16)
    written[stem] = image
  return written


def make_nima_dir(model_dir: str, train_steps: int = 0,
                  work_dir: Optional[str] = None) -> str:
  """A NIMA model dir that scoring.load_nima reads (small_cnn backbone).

  train_steps = 0 saves an untrained NIMA with the layout nima-train writes;
  otherwise NIMA is trained by nima-train's code path on a synthetic AVA
  folder with gin/nima/from_scratch_small.gin.
  """
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import ava  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import ava_pipeline  # pylint: disable=g-import-not-at-top
  from nima_enhance.models import nima as nima_lib  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  if train_steps:
    from nima_enhance.data import synthetic  # pylint: disable=g-import-not-at-top
    from nima_enhance.train import loop  # pylint: disable=g-import-not-at-top
    from nima_enhance.train import nima_task  # pylint: disable=g-import-not-at-top
    ava_dir = os.path.join(work_dir or os.path.dirname(model_dir), "ava")
    synthetic.make_synthetic_ava(ava_dir, num_images=64)
    config.parse_gin(["nima/from_scratch_small.gin"],
                     [f"train_loop.num_steps={train_steps}",
                      "train_loop.global_batch_size=16",
                      "train_loop.progress=False"], finalize=False)
    ratings, _ = ava.load_split(ava_dir, "train", cache_dir=model_dir)
    loop.train_loop(nima_task.NimaTask(ava_dir, ratings), model_dir)
    gin.clear_config()
    return model_dir
  os.makedirs(model_dir, exist_ok=True)
  model = nima_lib.build_nima(backbone="small_cnn", weights=None, dropout=0.1)
  tf.train.Checkpoint(model=model).save(os.path.join(model_dir, "ckpt"))
  spec = {"task": "nima",
          "preprocessing": ava_pipeline.preprocessing_config(
              image_size=(96, 128)),
          "build_nima": {"backbone": "small_cnn", "dropout": 0.1}}
  with open(os.path.join(model_dir, "model_spec.json"), "w",
            encoding="utf-8") as f:
    json.dump(spec, f)
  return model_dir


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
  """Independent PSNR (data range 1) for cross-checking the library's."""
  mse = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
  return float(-10.0 * np.log10(mse))
