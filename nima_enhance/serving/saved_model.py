"""Loading exported SavedModels: the clients behind `--saved_model`.

`nima-score --saved_model`, `enhance --saved_model` and the `Scorer` /
`Enhancer` API read what `serving/export.py` writes through this module: a
version folder (or the export base, whose largest integer version is taken),
its `assets.extra/model_metadata.json`, and one of its signatures
(docs/serving.md).

It is apart from `export.py` because reading needs none of the writing side
(the tf.Module builders, checkpoint restore, the CAN band schedule's
folding): the clients import only this, and `export.py` imports it for the
layout names both sides share (`ASSETS_EXTRA`, `METADATA_FILE`) and
`ExportError`, so imports run one way.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Dict, Iterator, List, Sequence

import numpy as np
import tensorflow as tf

from nima_enhance import scoring
from nima_enhance.data import image_write
from nima_enhance.data import images

# TF Serving's folder for files it does not read, and the export's metadata
# file in it (written by export.export_model).
ASSETS_EXTRA = "assets.extra"
METADATA_FILE = "model_metadata.json"


class ExportError(ValueError):
  """The model dir cannot be exported as asked (wrong kind, no checkpoint).

  Also raised when an exported SavedModel lacks the signature a client asks
  for (a scorer loaded as an enhancer).
  """


def resolve_saved_model(path: str) -> str:
  """A SavedModel folder, or an export base whose largest version is taken."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  if os.path.isdir(path):
    versions = [int(n) for n in os.listdir(path) if n.isdigit() and
                os.path.isfile(os.path.join(path, n, "saved_model.pb"))]
    if versions:
      return os.path.join(path, str(max(versions)))
  raise FileNotFoundError(f"{path}: no SavedModel (saved_model.pb) here or in "
                          "an integer version folder below it")


def read_metadata(saved_model: str) -> Dict[str, object]:
  """model_metadata.json of an exported SavedModel ({} if absent)."""
  path = os.path.join(resolve_saved_model(saved_model), ASSETS_EXTRA,
                      METADATA_FILE)
  if not os.path.isfile(path):
    return {}
  with open(path, "r", encoding="utf-8") as f:
    return json.load(f)


def load_signature(saved_model: str, name: str):
  """(loaded SavedModel, its `name` signature); ExportError if it has none.

  Keep the first with the second: it owns the variables.
  """
  path = resolve_saved_model(saved_model)
  loaded = tf.saved_model.load(path)
  if name not in loaded.signatures:
    raise ExportError(f"{path}: no {name!r} signature (has "
                      f"{', '.join(sorted(loaded.signatures))}); wrong kind?")
  # Keep `loaded` alive with the signature: it owns the variables.
  return loaded, loaded.signatures[name]


def score_files_with_saved_model(saved_model: str, paths: Sequence[str],
                                 batch_size: int = 32
                                ) -> Iterator[scoring.ScoredImage]:
  """Scores image files in order with an exported scorer's score_image_bytes.

  Mirrors `scoring.score_files`: files that are missing, empty or not a
  JPEG/PNG/GIF/BMP image are yielded with an error; so is a file the graph's
  decoder rejects (a batch with one is retried image by image).

  Args:
    saved_model: a version folder or the export base (largest version).
    paths: image files.
    batch_size: images per request.

  Yields:
    scoring.ScoredImage per path, in order.
  """
  _, signature = load_signature(saved_model, "score_image_bytes")

  def score(batch: List[bytes]) -> np.ndarray:
    return signature(images=tf.constant(batch, tf.string))[
        "distribution"].numpy()

  pending: List[scoring.ScoredImage] = []
  data: List[bytes] = []

  def flush() -> Iterator[scoring.ScoredImage]:
    good = [i for i, item in enumerate(pending) if item.error is None]
    if good:
      try:
        for i, dist in zip(good, score([data[i] for i in good])):
          pending[i].distribution = dist
      except tf.errors.InvalidArgumentError:
        for i in good:
          try:
            pending[i].distribution = score([data[i]])[0]
          except tf.errors.InvalidArgumentError:
            pending[i].error = f"{pending[i].path}: cannot decode image"
    yield from pending
    pending.clear()
    data.clear()

  for path in paths:
    item = scoring.ScoredImage(path, None)
    content = b""
    try:
      # The strict numpy read of the contract first (the graph accepts JPEGs
      # libjpeg calls corrupt); TIFF, which graphs cannot decode, is sent as
      # a 16-bit PNG of its pixels (8 and 16 bits kept exactly).
      pixels = images.read_image(path)
      with open(path, "rb") as f:
        content = f.read()
      if images.sniff_format(content) not in images.GRAPH_FORMATS:
        content = image_write.encode_image(pixels, "png", bit_depth=16)
      del pixels
    except images.ImageReadError as err:
      item.error = str(err)
    except OSError as err:
      item.error = f"{path}: cannot read ({err.strerror})"
    pending.append(item)
    data.append(content)
    if sum(1 for p in pending if p.error is None) >= batch_size:
      yield from flush()
  yield from flush()


@dataclasses.dataclass
class SavedModelEnhancer:
  """An exported enhancer, callable like enhancement.EnhancerBundle."""
  path: str
  metadata: Dict[str, object]
  _loaded: object
  _enhance: Callable[..., Dict[str, tf.Tensor]]

  def __call__(self, image: np.ndarray) -> np.ndarray:
    """Enhances one float RGB [h, w, 3] image in [0, 1]; clipped to [0, 1]."""
    batch = tf.convert_to_tensor(image, tf.float32)[None]
    return self._enhance(images=batch)["images"][0].numpy()


def load_enhancer(saved_model: str) -> SavedModelEnhancer:
  """Loads an exported enhancer for `enhance --saved_model`.

  The float `enhance` signature is used (not the PNG one) so that the binary's
  --bit_depth 16 and JPEG output work as with --model_dir.

  Args:
    saved_model: a version folder or the export base (largest version).

  Returns:
    callable float [h, w, 3] in [0, 1] -> float [h, w, 3] in [0, 1].
  """
  path = resolve_saved_model(saved_model)
  loaded, signature = load_signature(path, "enhance")
  return SavedModelEnhancer(path, read_metadata(path), loaded, signature)


__all__ = ["score_files_with_saved_model", "load_enhancer", "load_signature",
           "resolve_saved_model", "read_metadata", "SavedModelEnhancer",
           "ExportError", "ASSETS_EXTRA", "METADATA_FILE"]
