"""Gin configuration helpers shared by every binary.

Binaries call `parse_gin(gin_files, gin_bindings)`; library code only declares
configurables. `gin.tf` is deliberately not used (it imports `tf.estimator`, which
TF 2.16+ no longer ships), so the operative config is written by
`write_operative_config` on the chief.
"""

from __future__ import annotations

import importlib
import importlib.resources
import os
from typing import Optional, Sequence

import gin

from nima_enhance.data import images

_REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gin")


# Modules that declare gin configurables; imported before parsing so that any
# binary accepts any binding of the project (e.g. a shared gin file).
CONFIGURABLE_MODULES = (
    "nima_enhance.models.nima",
    "nima_enhance.data.ava",
    "nima_enhance.train.loop",
    "nima_enhance.train.nima_task",
    "nima_enhance.models.can",
    "nima_enhance.losses",
    "nima_enhance.data.fivek",
    "nima_enhance.train.enhancer_task",
    # ava_train_dataset; also lets the TFDS readers load after gin is locked.
    "nima_enhance.data.tfds.readers",
    "data_prep.local_laplacian",
    "data_prep.dehaze",
    "data_prep.targets",
)


def import_configurables() -> None:
  """Imports every module that registers gin configurables."""
  for name in CONFIGURABLE_MODULES:
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as err:
      if err.name != name:  # A real missing dependency, not an absent module.
        raise


class ConfigError(ValueError):
  """A gin file or binding that cannot be used; the message is one line."""


def gin_search_dirs() -> list[str]:
  """Folders searched for relative gin file names, in order."""
  dirs = []
  if os.path.isdir(_REPO_GIN_DIR):
    dirs.append(_REPO_GIN_DIR)
  try:
    packaged = importlib.resources.files("nima_enhance.configs")
    if packaged.is_dir():
      dirs.append(str(packaged))
  except (ModuleNotFoundError, TypeError):
    pass
  return dirs


def resolve_gin_file(name: str) -> str:
  """Finds a gin file given as a path, `gin/nima/x.gin` or `nima/x.gin`.

  Raises:
    ConfigError: naming the file and the folders searched.
  """
  if os.path.isfile(name):
    return name
  candidates = [name]
  if name.startswith("gin/") or name.startswith("gin" + os.sep):
    candidates.append(name[4:])
  if not name.endswith(".gin"):
    candidates += [c + ".gin" for c in list(candidates)]
  for directory in gin_search_dirs():
    for candidate in candidates:
      path = os.path.join(directory, candidate)
      if os.path.isfile(path):
        return path
  raise ConfigError(f"--gin_file {name}: no such file (looked in the current "
                    f"folder and {', '.join(gin_search_dirs()) or 'no gin dirs'})")


def parse_gin(gin_files: Optional[Sequence[str]] = None,
              gin_bindings: Optional[Sequence[str]] = None,
              finalize: bool = True) -> None:
  """Parses gin files and bindings; errors become a one-line ConfigError."""
  files = [resolve_gin_file(f) for f in (gin_files or [])]
  import_configurables()
  gin.add_config_file_search_path(_REPO_GIN_DIR)
  for directory in gin_search_dirs():
    gin.add_config_file_search_path(directory)
  for path in files:
    try:
      gin.parse_config_file(path)
    except Exception as err:  # pylint: disable=broad-except
      raise ConfigError(f"--gin_file {path}: {_first_line(err)}") from None
  for binding in gin_bindings or []:
    try:
      gin.parse_config(binding)
    except Exception as err:  # pylint: disable=broad-except
      raise ConfigError(f"--gin_bindings {binding!r}: {_first_line(err)}") from None
  if finalize:
    gin.finalize()


def write_operative_config(model_dir: str) -> str:
  """Writes `operative_config.gin` atomically to model_dir; returns the path."""
  path = os.path.join(model_dir, "operative_config.gin")
  images.atomic_write_bytes(path, gin.operative_config_str().encode("utf-8"))
  return path


def _first_line(err: Exception) -> str:
  text = str(err).strip()
  return text.splitlines()[0] if text else type(err).__name__
