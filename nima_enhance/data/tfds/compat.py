"""Works around tensorflow-datasets quirks for builders defined in a package."""

from __future__ import annotations

import os
import sys

from etils import epath
from tensorflow_datasets.core import utils as tfds_utils


class LocalBuilderMixin:
  """Gives a builder class its source path without importlib_resources.

  tensorflow-datasets 4.9 finds a builder's code through
  `importlib_resources`, which it only declares as a dependency for Python <
  3.9, so a fresh install fails with ModuleNotFoundError on the first build.
  Our builders are plain modules of this package: their path is the module
  file's folder (where a checksums.tsv would live; they download nothing).
  """

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    module = sys.modules[cls.__module__]
    return epath.Path(os.path.abspath(module.__file__))
