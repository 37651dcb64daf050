"""The one configuration module: parsing gin and reading what it binds.

The rule (docs/architecture.md, "Configuration"): gin binds entry points and
factories (`train_loop`, `build_nima`, `build_can`, `perceptual_loss`, the
Tasks); those pass plain values down. Binaries call
`parse_gin(gin_files, gin_bindings)`; when a value must be known before its
configurable runs (the model spec records `build_can`'s arguments, the
enhancer task needs `perceptual_loss.gamma` to decide whether to load NIMA),
it is read here, by `configured_arguments`, and nowhere else: this is the only
module that calls `gin.query_parameter`.

Includes (`include 'enhance/common_paper.gin'`) are resolved here too, through
the same search as `--gin_file`, so gin never falls back to its package-path
reader (which logs an ERROR line for every relative include).

`gin.tf` is deliberately not used (it imports `tf.estimator`, which TF 2.16+ no
longer ships), so the operative config is written by `train.loop` on the
chief. This module imports no other module of the project: it is the lowest
layer (docs/architecture.md, "Layers"), so data pipelines can raise
`ConfigError` without an upward import.
"""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import os
import re
from typing import Callable, Dict, Optional, Sequence

import gin

_REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gin")


# Modules that declare gin configurables; imported before parsing so that any
# binary accepts any binding of the project (e.g. a shared gin file).
CONFIGURABLE_MODULES = (
    "nima_enhance.models.nima",
    "nima_enhance.data.ava",
    "nima_enhance.data.ava_pipeline",
    "nima_enhance.train.loop",
    "nima_enhance.train.nima_task",
    "nima_enhance.models.can",
    "nima_enhance.losses",
    "nima_enhance.data.fivek_pipeline",
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


# `include 'name.gin'` on a line of its own (gin's include statement).
_INCLUDE = re.compile(r"""^\s*include\s+(['"])(?P<name>[^'"]+)\1\s*(#.*)?$""",
                      re.MULTILINE)


def _resolve_include(name: str, including: str) -> str:
  """An include's path: next to the including file, else the gin folders."""
  beside = os.path.join(os.path.dirname(including), name)
  if not os.path.isabs(name) and os.path.isfile(beside):
    return beside
  try:
    return resolve_gin_file(name)
  except ConfigError:
    raise ConfigError(f"--gin_file {including}: include {name!r}: no such "
                      f"file (looked beside it and in "
                      f"{', '.join(gin_search_dirs()) or 'no gin dirs'})"
                     ) from None


def _parse_gin_file(path: str, _seen: Sequence[str] = ()) -> None:
  """gin.parse_config_file, with includes resolved here (see module doc).

  The text between includes is parsed in order, padded with blank lines so
  that gin's line numbers are the file's own; each included file is parsed
  at its include, recursively, and its errors name that file.
  """
  real = os.path.realpath(path)
  if real in _seen:
    raise ConfigError(f"--gin_file {path}: includes itself")
  with open(path, "r", encoding="utf-8") as f:
    text = f.read()
  position = 0
  for match in _INCLUDE.finditer(text):
    _parse_gin_text(path, text, position, match.start())
    _parse_gin_file(_resolve_include(match.group("name"), path),
                    (*_seen, real))
    position = match.end()
  _parse_gin_text(path, text, position, len(text))


def _parse_gin_text(path: str, text: str, start: int, end: int) -> None:
  try:
    gin.parse_config("\n" * text.count("\n", 0, start) + text[start:end])
  except Exception as err:  # pylint: disable=broad-except
    raise ConfigError(f"--gin_file {path}: {_first_line(err)}") from None


def parse_gin(gin_files: Optional[Sequence[str]] = None,
              gin_bindings: Optional[Sequence[str]] = None,
              finalize: bool = True) -> None:
  """Parses gin files and bindings; errors become a one-line ConfigError."""
  files = [resolve_gin_file(f) for f in (gin_files or [])]
  import_configurables()
  for path in files:
    _parse_gin_file(path)
  for binding in gin_bindings or []:
    try:
      gin.parse_config(binding)
    except Exception as err:  # pylint: disable=broad-except
      raise ConfigError(f"--gin_bindings {binding!r}: {_first_line(err)}") from None
  if finalize:
    gin.finalize()


def configured_arguments(function: Callable, keys: Optional[Sequence[str]] = None,
                         name: Optional[str] = None,
                         **explicit) -> Dict[str, object]:
  """The arguments a gin-configurable `function` runs with: explicit values,
  else its gin binding, else its default.

  The one "binding or default" of the project (the only gin.query_parameter).

  Args:
    function: a `@gin.configurable` function (its signature gives the names
      and defaults).
    keys: the parameters wanted; None: every parameter.
    name: its gin name; default `function.__name__`.
    **explicit: values the caller passes itself (they win over gin, as in a
      call).

  Returns:
    {parameter: value}, in signature order.
  """
  name = name or function.__name__
  parameters = inspect.signature(function).parameters
  unknown = sorted(set(explicit) - set(parameters))
  if unknown:
    raise TypeError(f"{name}() got unexpected arguments {unknown}")
  args = {}
  for key, parameter in parameters.items():
    if keys is not None and key not in keys:
      continue
    if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
      continue
    if key in explicit:
      args[key] = explicit[key]
      continue
    try:
      args[key] = gin.query_parameter(f"{name}.{key}")
    except ValueError:  # Not bound (gin raises ValueError for that).
      args[key] = parameter.default
  return args


def _first_line(err: Exception) -> str:
  text = str(err).strip()
  return text.splitlines()[0] if text else type(err).__name__
