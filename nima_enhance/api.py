"""The public Python API: `Scorer` and `Enhancer`, the path behind the binaries.

  scorer = nima_enhance.Scorer.load("runs/nima")   # model dir, SavedModel or .tflite
  for result in scorer.score(["a.jpg", pil_image, uint8_array]):
    print(result.name, result.mean, result.std, result.skipped)

  enhancer = nima_enhance.Enhancer.load("runs/can")  # model dir, SavedModel or .tflite
  out = enhancer.enhance(uint8_array)                # same dtype back
  enhancer.enhance_files(["a.jpg"], "out/")

One class per model, whatever form it is stored in, with the same results:
files go through the project's one reading path (`data/images.py`: EXIF
orientation, alpha over white, every supported format, damaged files skipped
with the reason), arrays and PIL images are converted the same way
(`images.to_float_rgb`), and the resize NIMA was evaluated with is recorded with
the model (docs/architecture.md, "Model dirs"). `nima-score` and `enhance` are
thin wrappers over these classes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
from PIL import ImageOps
import tensorflow as tf

from nima_enhance import metrics
from nima_enhance import model_dir as model_dir_lib
from nima_enhance import scoring
from nima_enhance.data import image_files
from nima_enhance.data import images
from nima_enhance.enhance import inference as enhancement
from nima_enhance.models import can_streaming
from nima_enhance.serving import saved_model
from nima_enhance.serving import tflite_runner

# What `Scorer.score` and `Enhancer.enhance` take: a path, a numpy array
# (uint8, uint16 or float in [0, 1]; grey, RGB or with alpha) or a PIL image.
ImageInput = Union[str, os.PathLike, np.ndarray, "PIL.Image.Image"]


@dataclasses.dataclass(frozen=True)
class Score:
  """One image's result: the score, or why the image was skipped.

  Attributes:
    name: the path, or "array[i]" / "image[i]" (its position in the input).
    distribution: [10] probabilities of the scores 1..10; None if skipped.
    mean, std: of the distribution; None if skipped.
    skipped: the reason the image was not scored (None when scored).
  """
  name: str
  distribution: Optional[np.ndarray]
  mean: Optional[float]
  std: Optional[float]
  skipped: Optional[str] = None

  @classmethod
  def of(cls, name: str, distribution: Optional[np.ndarray],
         skipped: Optional[str] = None) -> "Score":
    if distribution is None:
      return cls(name, None, None, None, skipped or f"{name}: not scored")
    distribution = np.asarray(distribution, np.float32)
    return cls(name, distribution, float(metrics.mean_score(distribution)),
               float(metrics.std_score(distribution)), None)


def _kind(path: str) -> str:
  """"model_dir", "saved_model" or "tflite": what `path` holds."""
  if os.path.isfile(os.path.join(path, model_dir_lib.SPEC_NAME)):
    return "model_dir"
  if path.endswith(".tflite"):
    return "tflite"
  try:
    saved_model.resolve_saved_model(path)
    return "saved_model"
  except FileNotFoundError:
    pass
  try:
    tflite_runner.resolve_tflite(path)
    return "tflite"
  except FileNotFoundError:
    raise FileNotFoundError(
        f"{path}: not a model dir ({model_dir_lib.SPEC_NAME}), a SavedModel "
        "(saved_model.pb) or a TFLite model (.tflite)") from None


_KINDS = ("model_dir", "saved_model", "tflite")


def _checked_kind(kind: Optional[str]) -> Optional[str]:
  if kind is not None and kind not in _KINDS:
    raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
  return kind


def _load_tflite(path: str, threads: Optional[int], expected: type):
  """The .tflite model at path; TfliteError if it is the other kind."""
  backend = tflite_runner.load_tflite(path, threads)
  if not isinstance(backend, expected):
    names = {tflite_runner.TfliteScorer: "a scorer",
             tflite_runner.TfliteEnhancer: "an enhancer"}
    found = next(n for cls, n in names.items() if isinstance(backend, cls))
    raise tflite_runner.TfliteError(f"{backend.path}: {found}, not "
                                    f"{names[expected]}")
  return backend


def as_array(image, name: str) -> np.ndarray:
  """A numpy array, tf.Tensor or PIL image as a numpy array (PIL images get
  their EXIF orientation applied, as files do)."""
  if hasattr(image, "getexif") and hasattr(image, "mode"):  # a PIL image
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
      image = image.convert("RGBA" if "A" in image.getbands() or
                            "transparency" in image.info else "RGB")
    return np.asarray(image)
  if isinstance(image, tf.Tensor):
    return image.numpy()
  if not isinstance(image, np.ndarray):
    raise images.ImageReadError(f"{name}: not an image (got "
                                f"{type(image).__name__})")
  return image


def _is_path(item) -> bool:
  return isinstance(item, (str, os.PathLike))


class Scorer:
  """A NIMA scorer: mean, std and distribution of the 1..10 rating per image."""

  def __init__(self, backend, kind: str, path: str, batch_size: int = 32):
    """Use `Scorer.load`. backend: a NimaBundle or TfliteScorer (both have
    `preprocessing` and `predict`), or a SavedModel folder."""
    self._backend = backend
    self.kind = kind
    self.path = path
    self.batch_size = batch_size
    self._signature = None

  @classmethod
  def load(cls, path: str, batch_size: int = 32,
           tflite_threads: Optional[int] = None,
           kind: Optional[str] = None,
           precision: str = "float32") -> "Scorer":
    """Opens a nima-train model dir, an exported SavedModel (a version folder
    or the export base) or an exported .tflite scorer.

    Args:
      path: the model.
      batch_size: images per batch when scoring files.
      tflite_threads: TFLite interpreter threads (default: its own).
      kind: "model_dir", "saved_model" or "tflite"; None: found from path.
      precision: "float32" or "bfloat16" for a model dir (`load_nima`); an
        export runs at the precision it was exported with.

    Raises:
      FileNotFoundError: nothing loadable at path.
      ValueError: an enhancer, not a scorer (or a damaged spec/metadata), or
        precision other than float32 for an export.
    """
    kind = _checked_kind(kind) or _kind(path)
    if precision != "float32" and kind != "model_dir":
      raise ValueError(f"{path}: precision {precision!r} applies to a model "
                       "dir; an export runs at the precision it was "
                       "exported with (nima-export --precision)")
    if kind == "model_dir":
      backend = scoring.load_nima(path, precision=precision)
    elif kind == "tflite":
      backend = _load_tflite(path, tflite_threads, tflite_runner.TfliteScorer)
    else:
      backend = saved_model.resolve_saved_model(path)
    return cls(backend, kind, path, batch_size)

  def score(self, inputs: Union[ImageInput, Iterable[ImageInput]]
           ) -> List[Score]:
    """Scores images given as paths, numpy arrays or PIL images, in order.

    A path to a folder scores the images in it; an image that cannot be read
    (damaged, unsupported, wrong shape) is returned with `skipped` set.
    """
    if _is_path(inputs) or isinstance(inputs, np.ndarray) or hasattr(
        inputs, "getexif"):
      inputs = [inputs]
    inputs = list(inputs)
    scans = {i: image_files.scan_inputs([os.fspath(x)])
             for i, x in enumerate(inputs) if _is_path(x)}
    scored = {s.name: s for s in self.score_files(
        [f for scan in scans.values() for f in scan.files])}
    results: List[Score] = []
    for i, item in enumerate(inputs):
      if i in scans:
        results.extend(Score.of(p, None, reason)
                       for p, reason in scans[i].skipped.items())
        results.extend(scored[f] for f in scans[i].files)
        continue
      name = f"{'array' if isinstance(item, np.ndarray) else 'image'}[{i}]"
      try:
        image = images.to_float_rgb(as_array(item, name), name)
        results.append(Score.of(name, self._score_array(image)))
      except (images.ImageReadError, ValueError,
              tf.errors.InvalidArgumentError) as err:
        results.append(Score.of(name, None, str(err).splitlines()[0]))
    return results

  def score_files(self, paths: Sequence[str]) -> Iterable[Score]:
    """Scores image files in order (batched, decoding ahead of the model)."""
    if self.kind == "saved_model":
      scored = saved_model.score_files_with_saved_model(
          self._backend, paths, self.batch_size)
    else:
      scored = scoring.score_files(self._backend, paths, self.batch_size)
    for item in scored:
      yield Score.of(item.path, item.distribution, item.error)

  def _score_array(self, image: np.ndarray) -> np.ndarray:
    if self.kind == "saved_model":
      if self._signature is None:
        # (loaded module, signature): the module owns the variables.
        self._signature = saved_model.load_signature(self._backend,
                                                     "score_images")
      return self._signature[1](images=tf.constant(image[None] * 255.0))[
          "distribution"][0].numpy()
    return scoring.score_array(self._backend, image)


class Enhancer:
  """A trained CAN enhancer: full-size images in, enhanced images out."""

  def __init__(self, backend, kind: str, path: str):
    """Use `Enhancer.load`. backend: callable float [h, w, 3] -> [h, w, 3]."""
    self._backend = backend
    self.kind = kind
    self.path = path

  @classmethod
  def load(cls, path: str, tile_size: Optional[int] = None,
           memory_budget_gb: float = can_streaming.DEFAULT_MEMORY_BUDGET_GB,
           precision: str = "float32", jit_compile: bool = True,
           tflite_threads: Optional[int] = None,
           kind: Optional[str] = None) -> "Enhancer":
    """Opens an enhance-train model dir, an exported SavedModel or .tflite.

    tile_size, memory_budget_gb, precision and jit_compile apply to a model
    dir (the bounded-memory band schedule, docs/can_streaming.md); an export
    carries its own schedule. kind: as for `Scorer.load`.
    """
    kind = _checked_kind(kind) or _kind(path)
    if kind == "model_dir":
      backend = enhancement.load_enhancer(
          path, jit_compile=jit_compile, tile_size=tile_size,
          memory_budget_gb=memory_budget_gb, precision=precision)
    elif kind == "tflite":
      backend = _load_tflite(path, tflite_threads,
                             tflite_runner.TfliteEnhancer)
    else:
      backend = saved_model.load_enhancer(path)
    return cls(backend, kind, path)

  def enhance(self, image: ImageInput) -> np.ndarray:
    """Enhances one image at full size.

    Args:
      image: a numpy array (uint8, uint16 or float in [0, 1]; grey, RGB or
        with alpha), a PIL image or a path.

    Returns:
      [h, w, 3] RGB of the input's type: uint8 / uint16 for uint8 / uint16
      arrays (PIL images are such arrays), else float32 in [0, 1].
    """
    if _is_path(image):
      pixels, dtype = images.read_image(os.fspath(image)), np.dtype(np.float32)
    else:
      array = as_array(image, "image")
      pixels = images.to_float_rgb(array, "image")
      dtype = (array.dtype if array.dtype in (np.uint8, np.uint16)
               else np.dtype(np.float32))
    out = np.clip(np.asarray(self._backend(pixels), np.float32), 0.0, 1.0)
    if dtype == np.float32:
      return out
    top = np.iinfo(dtype).max
    return np.round(out * top).astype(dtype)

  def enhance_files(self, paths: Sequence[str], output_dir: str,
                    fmt: str = "png", bit_depth: int = 8) -> Dict[str, object]:
    """Enhances image files (folders expanded) into output_dir.

    Returns:
      {"written": [output paths], "skipped": {path: reason}}.

    Raises:
      ValueError: output_dir holds an input (outputs never replace inputs).
    """
    scan = image_files.scan_inputs([os.fspath(p) for p in paths])
    os.makedirs(output_dir, exist_ok=True)
    result = enhancement.enhance_files(self._backend, scan.files, output_dir,
                                       fmt=fmt, bit_depth=bit_depth)
    result["skipped"] = {**scan.skipped, **result["skipped"]}
    return result


__all__ = ["Enhancer", "Score", "Scorer"]
