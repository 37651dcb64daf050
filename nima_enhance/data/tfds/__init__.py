"""TFDS builders for the project's data sets, and readers for training.

`ava` and `mit_adobe_fivek_pairs` turn the loose-file layouts (AVA.txt +
images/, and FiveK pairs input/ + <target>/) into sharded TFRecords through
`tfds.core.GeneratorBasedBuilder` with a manual download directory. Images are
stored as their original encoded bytes and decoded at training time by
`images.decode_image_tf`, so the TFDS path and the loose-file path feed the
network identical pixels. Importing this package registers both builders.
"""

from nima_enhance.data.tfds.ava_builder import Ava
from nima_enhance.data.tfds.fivek_builder import MitAdobeFivekPairs
from nima_enhance.data.tfds.readers import ava_train_dataset
from nima_enhance.data.tfds.readers import build
from nima_enhance.data.tfds.readers import fivek_pairs_dataset
from nima_enhance.data.tfds.readers import load_builder

__all__ = ["Ava", "MitAdobeFivekPairs", "ava_train_dataset", "build",
           "fivek_pairs_dataset", "load_builder"]
