"""A small AVA-layout rating set made from scikit-image's bundled real photos.

Used by the tests, the README's first steps and the demo, where the real AVA
(32 GB) is not available. Crops of real photographs get one known degradation
(blur, noise, JPEG, under/over exposure, flat contrast) of random severity; the
rating histogram of each crop is ~200 simulated votes whose mean falls with the
severity. A NIMA trained on it learns technical quality, not AVA aesthetics.

The folder it writes is exactly AVA's layout (AVA.txt with 15 columns,
images/<id>.jpg), so every AVA code path runs on it unchanged.
"""

from __future__ import annotations

import io
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import data as skimage_data

from nima_enhance.data import image_write
from nima_enhance.data import images

DEGRADATIONS = ("none", "blur", "noise", "jpeg", "underexpose", "overexpose",
                "flat_contrast")
# Bundled colour and grayscale photographs (no download needed).
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
               "immunohistochemistry", "retina", "camera", "coins", "moon",
               "clock", "brick", "grass", "gravel", "cell")


def bundled_photos(names=PHOTO_NAMES) -> Dict[str, np.ndarray]:
  """scikit-image's bundled photographs as float32 RGB [0, 1]."""
  photos = {}
  for name in names:
    array = getattr(skimage_data, name)()
    photos[name] = images.to_float_rgb(np.asarray(array), name)
  return photos


def degrade(image: np.ndarray, kind: str, severity: float,
            rng: np.random.RandomState) -> np.ndarray:
  """Applies one degradation of severity in [0, 1] to a float RGB image."""
  s = float(np.clip(severity, 0.0, 1.0))
  if kind == "none" or s == 0.0:
    return image
  if kind == "blur":
    sigma = 0.3 + 3.2 * s
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))
  if kind == "noise":
    return np.clip(image + rng.normal(0.0, 0.01 + 0.2 * s, image.shape), 0, 1)
  if kind == "jpeg":
    quality = int(round(60 - 57 * s))
    buffer = io.BytesIO()
    Image.fromarray(image_write.quantize(image)).save(buffer, "JPEG",
                                                      quality=quality)
    return np.asarray(Image.open(buffer), np.float32) / 255.0
  if kind == "underexpose":
    return image * (1.0 - 0.85 * s)
  if kind == "overexpose":
    return np.clip(image * (1.0 + 3.0 * s), 0.0, 1.0)
  if kind == "flat_contrast":
    return 0.5 + (image - 0.5) * (1.0 - 0.9 * s)
  raise ValueError(f"unknown degradation {kind!r}")


def rating_counts(mean: float, rng: np.random.RandomState, votes: int = 200,
                  spread: float = 1.4) -> np.ndarray:
  """Vote counts for buckets 1..10 around `mean` (AVA's mean std is ~1.4)."""
  samples = np.clip(np.round(rng.normal(mean, spread, votes)), 1, 10)
  return np.bincount(samples.astype(int) - 1, minlength=10)


def quality_mean(severity: float, rng: np.random.RandomState) -> float:
  """Mean rating: ~7.5 for clean crops, ~2.5 for the worst, plus rater noise."""
  return float(np.clip(7.5 - 5.0 * severity + rng.normal(0.0, 0.25), 1.0, 10.0))


def random_crop(photo: np.ndarray, size: Tuple[int, int],
                rng: np.random.RandomState) -> np.ndarray:
  """A crop of a random scale (1/3 to all of the short side), resized to size."""
  height, width = photo.shape[:2]
  aspect = size[1] / size[0]
  short = min(height, width / aspect)
  crop_h = int(short * rng.uniform(0.35, 1.0))
  crop_w = min(width, int(round(crop_h * aspect)))
  top = rng.randint(0, height - crop_h + 1)
  left = rng.randint(0, width - crop_w + 1)
  crop = photo[top:top + crop_h, left:left + crop_w]
  return images.resize(crop, size)


def make_synthetic_ava(output_dir: str, num_images: int = 300,
                       image_size: Tuple[int, int] = (96, 128), seed: int = 0,
                       bad_files: bool = True,
                       photos: Optional[Dict[str, np.ndarray]] = None
                      ) -> Dict[str, object]:
  """Writes an AVA-layout folder of degraded real-photo crops.

  Args:
    output_dir: destination (AVA.txt, images/).
    num_images: good images to write.
    image_size: crop (height, width).
    seed: seeds every random choice.
    bad_files: also list three broken entries in AVA.txt: a truncated JPEG, a
      text file named .jpg, and an id whose file is missing.
    photos: source photos (default: scikit-image's bundled photographs).

  Returns:
    dict with "ids" (good), "bad_ids" (id -> kind), "degradations",
    "severities", "means".
  """
  rng = np.random.RandomState(seed)
  photos = photos if photos is not None else bundled_photos()
  names = sorted(photos)
  image_dir = os.path.join(output_dir, "images")
  os.makedirs(image_dir, exist_ok=True)
  lines: List[str] = []
  ids, kinds, severities, means = [], [], [], []
  for index in range(num_images):
    image_id = str(100000 + index)
    photo = photos[names[rng.randint(len(names))]]
    crop = random_crop(photo, image_size, rng)
    kind = DEGRADATIONS[rng.randint(len(DEGRADATIONS))]
    severity = 0.0 if kind == "none" else rng.uniform(0.1, 1.0)
    degraded = degrade(crop, kind, severity, rng)
    mean = quality_mean(severity, rng)
    counts = rating_counts(mean, rng)
    image_write.write_image(os.path.join(image_dir, f"{image_id}.jpg"),
                            degraded, jpeg_quality=95)
    lines.append(_ava_line(index + 1, image_id, counts))
    ids.append(image_id)
    kinds.append(kind)
    severities.append(severity)
    means.append(float(np.dot(counts, np.arange(1, 11)) / counts.sum()))
  bad_ids = {}
  if bad_files:
    good_jpeg = open(os.path.join(image_dir, f"{ids[0]}.jpg"), "rb").read()
    broken = {"truncated": good_jpeg[:len(good_jpeg) // 2],
              "not_an_image": b"<html>404 Not Found</html>\n",
              "missing": None}
    for offset, (kind, data) in enumerate(broken.items()):
      image_id = str(900000 + offset)
      if data is not None:
        with open(os.path.join(image_dir, f"{image_id}.jpg"), "wb") as f:
          f.write(data)
      lines.append(_ava_line(len(lines) + 1, image_id,
                             rating_counts(5.0, rng)))
      bad_ids[image_id] = kind
  image_write.atomic_write_bytes(os.path.join(output_dir, "AVA.txt"),
                                 ("\n".join(lines) + "\n").encode("utf-8"))
  return {"ids": ids, "bad_ids": bad_ids, "degradations": kinds,
          "severities": severities, "means": means}


def _ava_line(index: int, image_id: str, counts: np.ndarray) -> str:
  # Semantic tags 0 0 and challenge id 1: unused by NIMA, present for format.
  return " ".join([str(index), image_id] + [str(int(c)) for c in counts]
                  + ["0", "0", "1"])
