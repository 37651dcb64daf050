"""The input folder and fast settings of the prep-targets tests.

Shared by tests/test_targets.py (local pool) and tests/test_beam_pipeline.py
(the same job on Apache Beam), which compare against each other.
"""

import os

from nima_enhance.data import image_write
from nima_enhance.data import images

# The fast local Laplacian with few samples: seconds per folder, still the
# real filter.
FAST_LLF = dict(sigma_r=0.2, alpha=0.5, beta=1.0, domain="linear",
                levels=None, method="fast", num_samples=8)


def write_input_dir(folder: str, real_photos, with_16bit_png: bool = False
                   ) -> str:
  """Writes small real photos and two unusable files into `folder`.

  coffee.png and rocket.jpg are readable; truncated.jpg (half a JPEG) and
  notes.jpg (text) are not. with_16bit_png adds chelsea.png at 16 bits.
  """
  os.makedirs(folder, exist_ok=True)
  image_write.write_image(os.path.join(folder, "coffee.png"),
                          images.resize(real_photos["coffee"], (40, 60)))
  image_write.write_image(os.path.join(folder, "rocket.jpg"),
                          images.resize(real_photos["rocket"], (36, 48)))
  if with_16bit_png:
    image_write.write_image(os.path.join(folder, "chelsea.png"),
                            images.resize(real_photos["chelsea"], (30, 44)),
                            bit_depth=16)
  data = image_write.encode_image(
      images.resize(real_photos["chelsea"], (30, 40)), "jpeg")
  with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
    f.write(data[:len(data) // 2])
  with open(os.path.join(folder, "notes.jpg"), "w", encoding="utf-8") as f:
    f.write("not an image")
  return folder
