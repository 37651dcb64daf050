"""TFDS builder `mit_adobe_fivek_pairs`: enhancement pairs as TFRecords.

The manual directory has the enhancer's layout (`nima_enhance.data.fivek`):
`input/<name>.*` and `<target>/<name>.png` (16-bit PNGs from prep-targets). One
builder config per target operator; the split (first half of the sorted names
trains, second half tests) and the skipping of unusable pairs are the ones of
`fivek.find_pairs`. TIFF inputs are re-encoded as 16-bit PNG at build time so
the training graph decodes every example with `images.decode_image_tf`.

With `use_beam` set (build-tfds does when the `beam` extra is installed) the
examples are made by an Apache Beam pipeline (TFDS's Beam support: the same
`_example` function per pair, on the DirectRunner or a distributed runner);
otherwise by a Python generator.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from nima_enhance.data import fivek
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.data.tfds import compat

_DESCRIPTION = """Pairs (input photo, enhanced target) in the layout of MIT-Adobe
FiveK after prep-targets: each example holds the input's and the target's
encoded bytes and the image name."""

_CITATION = """@inproceedings{fivek,
  author={Bychkovsky, Vladimir and Paris, Sylvain and Chan, Eric and Durand,
          Fr{\\'e}do}, title={Learning Photographic Global Tonal Adjustment
          with a Database of Input / Output Image Pairs}, booktitle={CVPR},
  year={2011}}"""


class MitAdobeFivekPairsConfig(tfds.core.BuilderConfig):
  """One config per target folder (the prep-targets operator name)."""

  def __init__(self, *, target: str, **kwargs):
    super().__init__(name=kwargs.pop("name", target), **kwargs)
    self.target = target


class MitAdobeFivekPairs(compat.LocalBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """FiveK-style (input, target) pairs (manual download)."""

  name = "mit_adobe_fivek_pairs"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      MitAdobeFivekPairsConfig(target="local_laplacian",
                               description="Detail/tone targets (local "
                               "Laplacian filter)."),
      MitAdobeFivekPairsConfig(target="nonlocal_dehaze",
                               description="Dehazing targets (non-local "
                               "dehazing)."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Place in the manual directory:

  input/<name>.{jpg,png,tif,...}   the input photos (e.g. FiveK's)
  <target>/<name>.png              16-bit targets written by
                                   `prep-targets --operator <target>`

<target> is the builder config name (local_laplacian or nonlocal_dehaze).
Inputs without a target and unreadable files are skipped and counted in the
dataset metadata.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "name": tfds.features.Text(),
            "input_bytes": tfds.features.Tensor(shape=(), dtype=np.str_),
            "target_bytes": tfds.features.Tensor(shape=(), dtype=np.str_),
        }),
        supervised_keys=("input_bytes", "target_bytes"),
        homepage="https://data.csail.mit.edu/graphics/fivek/",
        citation=_CITATION,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    target = self.builder_config.target
    skipped: Dict[str, int] = {}
    generators = {}
    for split in ("train", "test"):
      pairs, report = fivek.find_pairs(manual_dir, target, split)
      logging.info("mit_adobe_fivek_pairs/%s %s: %s", target, split,
                   report.summary())
      skipped[split] = len(report.skipped)
      generators[split] = self._generate_examples(pairs)
    self.info.metadata["skipped"] = skipped
    return generators

  #: Make the examples with Beam (set before download_and_prepare, with a
  #: DownloadConfig carrying the runner; see readers.build).
  use_beam = False

  def _generate_examples(self, pairs):
    items = list(zip(pairs.names, pairs.inputs, pairs.targets))
    if self.use_beam:
      beam = tfds.core.lazy_imports.apache_beam
      return beam.Create(items) | beam.FlatMap(_example)
    return (example for item in items for example in _example(item))


def _example(item: Tuple[str, str, str]) -> List[Tuple[str, Dict[str, object]]]:
  """One pair's example (key, features), or none if a file does not decode."""
  name, input_path, target_path = item
  with open(input_path, "rb") as f:
    input_bytes = f.read()
  with open(target_path, "rb") as f:
    target_bytes = f.read()
  try:
    if images.sniff_format(input_bytes) == "tiff":
      # The graph decoder has no TIFF support; keep 16 bits through PNG.
      pixels = images.decode_image_bytes(input_bytes, source=input_path)
      input_bytes = image_write.encode_image(pixels, "png", bit_depth=16)
    images.decode_image_bytes(target_bytes, source=target_path)
  except images.ImageReadError as err:
    # find_pairs decoded both files strictly already; one that changed since
    # is skipped here rather than failing the whole build.
    logging.warning("mit_adobe_fivek_pairs: skipped %s: %s", name, err)
    return []
  return [(name, {"name": name, "input_bytes": input_bytes,
                  "target_bytes": target_bytes})]
