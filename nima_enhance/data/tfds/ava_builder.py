"""TFDS builder `ava`: AVA ratings and images as sharded TFRecords.

Reads the AVA layout from the manual directory (`AVA.txt`, `images/<id>.jpg`,
optional `aesthetics_image_lists/generic_test.jpgl`), splits it exactly as the
loose-file path does (`ava.split_ids`) and drops unusable files with the same
decoder check (`ava.check_images`). How many files were skipped, per split and
per reason, is stored in the builder's metadata (`info.metadata["skipped"]`)
and logged.
"""

from __future__ import annotations

import os
from typing import Dict

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from nima_enhance.data.tfds import compat

from nima_enhance.data import ava

_DESCRIPTION = """AVA (Murray et al., CVPR 2012): ~255k photographs with the
histogram of 1..10 aesthetic ratings given by DPChallenge voters. Each example
holds the image file's original bytes, its id, the vote counts and the
normalized rating distribution that NIMA is trained to predict."""

_CITATION = """@inproceedings{murray2012ava,
  title={AVA: A large-scale database for aesthetic visual analysis},
  author={Murray, Naila and Marchesotti, Luca and Perronnin, Florent},
  booktitle={CVPR}, year={2012}}"""


class Ava(compat.LocalBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """AVA aesthetic ratings with images (manual download)."""

  name = "ava"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: encoded bytes, 10-bucket "
                            "distributions, corrupt files skipped."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download AVA (e.g. from the authors' mirror) and place in the manual directory
(`--manual_dir` / `download_config.manual_dir`, default
`<data_dir>/downloads/manual/`):

  AVA.txt                                    the ratings file
  images/<image id>.jpg                      the photographs
  aesthetics_image_lists/generic_test.jpgl   optional: the official test ids

Without generic_test.jpgl a seeded 80/20 split by image id is used (as the
loose-file pipeline does). Missing, truncated and non-image files are skipped
and counted in the dataset metadata.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            # Original bytes: decoded by images.decode_image_tf, the same
            # decoder the loose-file pipeline uses.
            "image_bytes": tfds.features.Tensor(shape=(), dtype=np.str_),
            "image_id": tfds.features.Text(),
            "rating_counts": tfds.features.Tensor(shape=(ava.NUM_BUCKETS,),
                                                  dtype=np.int64),
            "distribution": tfds.features.Tensor(shape=(ava.NUM_BUCKETS,),
                                                 dtype=np.float32),
        }),
        supervised_keys=("image_bytes", "distribution"),
        homepage="https://github.com/imfing/ava_downloader",
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    ratings = ava.parse_ava_txt(os.path.join(manual_dir, "AVA.txt"))
    skipped: Dict[str, Dict[str, int]] = {}
    generators = {}
    for split in ("train", "test"):
      ids = ava.split_ids(manual_dir, ratings.image_ids, split)
      # The manual dir may be read-only: the verdict cache then goes nowhere.
      report = ava.check_images(manual_dir, ids)
      skipped[split] = {"total": len(report.skipped),
                        **report.counts_by_reason()}
      logging.info("ava %s: %s", split, report.summary())
      for image_id, reason in sorted(report.skipped.items())[:20]:
        logging.warning("ava %s: skipped %s: %s", split, image_id, reason)
      generators[split] = self._generate_examples(
          manual_dir, ratings.subset(report.good))
    self.info.metadata["skipped"] = skipped
    return generators

  def _generate_examples(self, manual_dir: str, ratings: ava.AvaRatings):
    distributions = ratings.distributions
    for i, image_id in enumerate(ratings.image_ids):
      with tf.io.gfile.GFile(ava.image_path(manual_dir, image_id), "rb") as f:
        data = f.read()
      counts = np.rint(distributions[i] * ratings.vote_counts[i]).astype(
          np.int64)
      yield image_id, {
          "image_bytes": data,
          "image_id": image_id,
          "rating_counts": counts,
          "distribution": distributions[i].astype(np.float32),
      }
