"""Training, restoring, running and evaluating the CAN enhancer.

The library side of enhance-train, enhance-eval, enhance and gamma-sweep (the
binaries only parse flags). A trained enhancer is rebuilt from the
`model_spec.json` the training loop writes (build_can arguments, NIMA model
dir) and its latest checkpoint, so no gin file is needed after training.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from nima_enhance import model_dir as model_dir_lib
from nima_enhance.data import fivek
from nima_enhance.data import image_files
from nima_enhance.data import images
from nima_enhance.models import can
from nima_enhance.models import can_streaming


@dataclasses.dataclass
class EnhancerBundle:
  """A restored CAN with its model_spec.json, callable on float images.

  By default the CAN runs by the bounded-memory band schedule of
  `models/can_streaming.py` (exact; memory depends on the width, not the
  height), with the band size chosen from `memory_budget_gb` and the width.
  `tile_size` N > 0 forces N-row bands; 0 runs the whole image in one piece
  (float32: the Keras model, XLA-compiled when `jit_compile`, as before the
  band schedule existed; bfloat16: the folded one-piece graph).
  """
  model: keras.Model
  spec: Dict[str, object]
  checkpoint: str
  # XLA fuses the padding, normalization and activations between the dilated
  # convolutions of the one-piece pass: 1.6x faster on CPU at 2 MP
  # (tools/benchmarks/can_inference.py), about a second of compilation per
  # new image size. Used only by the one-piece float32 pass (tile_size 0).
  jit_compile: bool = True
  tile_size: Optional[int] = None
  memory_budget_gb: float = can_streaming.DEFAULT_MEMORY_BUDGET_GB
  precision: str = "float32"
  _fn: Optional[object] = None

  def __call__(self, image, output_uint8: bool = False) -> np.ndarray:
    """Enhances one RGB [h, w, 3] image at full size.

    Args:
      image: float [0, 1] or uint8, numpy array or tf.Tensor (a caller that
        converts and drops its numpy copy first saves a copy of the input).
      output_uint8: return round(255 * output) as uint8 (made band by band:
        a quarter of the float output's memory).

    Returns:
      float32 clipped to [0, 1], or uint8.
    """
    if self._fn is None:
      if self.tile_size == 0 and self.precision == "float32":
        model = self.model
        one_piece = tf.function(
            lambda x: tf.clip_by_value(model(x, training=False), 0.0, 1.0),
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)],
            jit_compile=self.jit_compile)
        def whole(image, output_uint8=False):
          pixels = tf.convert_to_tensor(image)
          if pixels.dtype == tf.uint8:
            pixels = tf.cast(pixels, tf.float32) / 255.0
          out = one_piece(tf.cast(pixels, tf.float32)[None])[0].numpy()
          return images.quantize(out) if output_uint8 else out
        self._fn = whole
      else:
        self._fn = can_streaming.StreamingEnhancer(
            self.model, tile_size=self.tile_size,
            memory_budget_gb=self.memory_budget_gb, precision=self.precision)
    return self._fn(image, output_uint8=output_uint8)


def _compact_pixels(image: np.ndarray) -> tf.Tensor:
  """The pixels as a uint8 tensor when they are 8-bit values, else float32.

  A photo decoded from 8 bits holds k / 255 (up to the float rounding of the
  decoder's division); handing the CAN uint8 saves three quarters of the
  input's memory (the band schedule scales it band by band; the result
  differs from the float input's by float rounding only). Checked row block
  by row block, so no full-size temporary.
  """
  quantized = np.empty(image.shape, np.uint8)
  for start in range(0, image.shape[0], 256):
    scaled = image[start:start + 256] * np.float32(255.0)
    rounded = np.round(scaled)
    if (rounded.min(initial=0.0) < 0 or rounded.max(initial=0.0) > 255 or
        np.abs(scaled - rounded).max(initial=0.0) > 1e-3):
      return tf.convert_to_tensor(image, tf.float32)
    quantized[start:start + 256] = rounded
  return tf.convert_to_tensor(quantized)


def load_enhancer(model_dir: str, jit_compile: bool = True,
                  tile_size: Optional[int] = None,
                  memory_budget_gb: float =
                  can_streaming.DEFAULT_MEMORY_BUDGET_GB,
                  precision: str = "float32") -> EnhancerBundle:
  """Rebuilds the CAN recorded in model_dir and restores its latest checkpoint.

  Args:
    model_dir: an enhance-train model dir.
    jit_compile: XLA-compile the one-piece float32 pass (see EnhancerBundle).
    tile_size: band rows; 0 = one piece; None = from memory_budget_gb.
    memory_budget_gb: the CAN's working-memory budget for the default band.
    precision: "float32" or "bfloat16" (see can_streaming.PRECISIONS).

  Raises:
    FileNotFoundError: no model_spec.json or no checkpoint.
    ValueError: model_dir holds another kind of model, or a bad option.
  """
  if precision not in can_streaming.PRECISIONS:
    raise ValueError(f"precision must be one of "
                     f"{', '.join(can_streaming.PRECISIONS)}, got {precision!r}")
  if tile_size is not None and tile_size < 0:
    raise ValueError(f"tile_size must be >= 0, got {tile_size}")
  if memory_budget_gb <= 0:
    raise ValueError(f"memory_budget_gb must be > 0, got {memory_budget_gb}")
  spec, checkpoint = model_dir_lib.open_model_dir(model_dir, "enhancer")
  model = model_dir_lib.build_from_spec(spec, can.build_can)
  model_dir_lib.restore(model, checkpoint)
  return EnhancerBundle(model, spec, checkpoint, jit_compile=jit_compile,
                        tile_size=tile_size, memory_budget_gb=memory_budget_gb,
                        precision=precision)


def psnr(reference: np.ndarray, image: np.ndarray,
         data_range: float = 1.0) -> float:
  """Peak signal-to-noise ratio in dB (inf for identical images)."""
  mse = float(np.mean((np.asarray(reference, np.float64) -
                       np.asarray(image, np.float64)) ** 2))
  if mse == 0.0:
    return float("inf")
  return float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
  """skimage's SSIM on RGB in [0, 1] (data_range 1, channels last)."""
  from skimage.metrics import structural_similarity  # pylint: disable=g-import-not-at-top
  height, width = reference.shape[:2]
  # skimage's default 7x7 window needs both sides >= 7.
  win = min(7, height, width)
  win -= 1 - win % 2
  return float(structural_similarity(reference, image, data_range=1.0,
                                     channel_axis=-1, win_size=max(win, 1)))


class NimaScorer:
  """Scores in-memory [0, 1] images with a NIMA model dir, as nima-score does."""

  def __init__(self, nima_model_dir: str):
    from nima_enhance import metrics  # pylint: disable=g-import-not-at-top
    from nima_enhance import scoring  # pylint: disable=g-import-not-at-top
    self.bundle = scoring.load_nima(nima_model_dir)
    preprocessing = self.bundle.preprocessing
    model = self.bundle.model
    self._fn = tf.function(
        lambda x: metrics.mean_score(model(
            scoring.eval_pixels_tf(x, preprocessing)[None], training=False))[0],
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])

  def __call__(self, image: np.ndarray) -> float:
    return float(self._fn(tf.convert_to_tensor(image.astype(np.float32))))


def resolve_target(target: Optional[str],
                   model_dir: Optional[str] = None) -> str:
  """--target, else gin's enhancer_target.name, else the trained model's.

  Raises:
    ConfigError: none of them names a target.
  """
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  from nima_enhance.train import enhancer_task  # pylint: disable=g-import-not-at-top
  if target:
    return target
  target = enhancer_task.default_target()
  if not target and model_dir:
    spec_path = os.path.join(model_dir, "model_spec.json")
    if os.path.isfile(spec_path):
      with open(spec_path, "r", encoding="utf-8") as f:
        target = json.load(f).get("target")
  if not target:
    raise config.ConfigError("no target: pass --target (e.g. local_laplacian) "
                             "or a gin file binding enhancer_target.name")
  return target


def train_enhancer(data_dir: str, target: str, model_dir: str,
                   nima_model_dir: Optional[str] = None,
                   split_file: Optional[str] = None,
                   strategy: Optional[tf.distribute.Strategy] = None,
                   seed: int = 0, data_source: str = "files",
                   gamma: Optional[float] = None) -> Dict[str, object]:
  """enhance-train's code path: find pairs, build the task, run train_loop.

  Gin must already be parsed; `gamma` (when given) overrides
  perceptual_loss.gamma for this run only (the sweep passes each point's
  gamma so). Skipped pairs are logged and written to
  model_dir/skipped_train.txt. With data_source "tfds", data_dir is a TFDS
  data_dir holding `mit_adobe_fivek_pairs/<target>` (built by build-tfds)
  and the records' train split trains (EnhancerTfdsTask).
  """
  from nima_enhance.train import enhancer_task  # pylint: disable=g-import-not-at-top
  from nima_enhance.train import loop  # pylint: disable=g-import-not-at-top
  os.makedirs(model_dir, exist_ok=True)
  if _tfds_source(data_source, split_file):
    task = enhancer_task.EnhancerTfdsTask(data_dir, target,
                                          nima_model_dir=nima_model_dir,
                                          gamma=gamma)
    logging.info("train: %d pairs from TFDS mit_adobe_fivek_pairs/%s in %s "
                 "(skipped at build time: %s)", len(task.pairs), target,
                 data_dir, task.skipped_at_build)
    return loop.train_loop(task, model_dir, strategy=strategy, seed=seed)
  pairs, report = fivek.find_pairs(data_dir, target, "train", split_file,
                                   cache_dir=model_dir)
  write_skipped(report, model_dir, "train")
  task = enhancer_task.EnhancerTask(data_dir, target,
                                    nima_model_dir=nima_model_dir,
                                    split_file=split_file, pairs=pairs,
                                    gamma=gamma)
  result = loop.train_loop(task, model_dir, strategy=strategy, seed=seed)
  result["skipped_pairs"] = len(report.skipped)  # the binary's exit code
  return result


def _tfds_source(data_source: str, split_file: Optional[str]) -> bool:
  """True for "tfds"; refuses a split file there (the records hold the split)."""
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  if data_source not in ("files", "tfds"):
    raise config.ConfigError(f"data source must be 'files' or 'tfds', got "
                             f"{data_source!r}")
  if data_source == "tfds" and split_file:
    raise config.ConfigError("--split_file applies to --data_source files; "
                             "the TFDS records keep the split they were "
                             "built with")
  return data_source == "tfds"


def write_skipped(report: fivek.PairReport, directory: str, split: str) -> None:
  """Logs the report and writes directory/skipped_<split>.txt when non-empty."""
  logging.info("%s: %s", split, report.summary())
  if report.skipped:
    logging.warning("%d %s pairs skipped: %s", len(report.skipped), split,
                    ", ".join(sorted(report.skipped)[:20]))
    lines = "".join(f"{n}\t{r}\n" for n, r in sorted(report.skipped.items()))
    images.atomic_write_bytes(os.path.join(directory, f"skipped_{split}.txt"),
                              lines.encode("utf-8"))


def _stats(values: Sequence[float]) -> Dict[str, float]:
  values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
  if not values.size:
    return {"mean": float("nan"), "std": float("nan"), "median": float("nan"),
            "min": float("nan"), "max": float("nan"), "count": 0}
  return {"mean": float(values.mean()), "std": float(values.std()),
          "median": float(np.median(values)), "min": float(values.min()),
          "max": float(values.max()), "count": int(values.size)}


def evaluate_enhancer(data_dir: str, target: str, model_dir: str,
                      output_dir: str, nima_model_dir: Optional[str] = None,
                      split: str = "test", split_file: Optional[str] = None,
                      num_grids: int = 8, save_outputs: bool = False,
                      max_images: Optional[int] = None,
                      tile_size: Optional[int] = None,
                      memory_budget_gb: float =
                      can_streaming.DEFAULT_MEMORY_BUDGET_GB,
                      precision: str = "float32",
                      data_source: str = "files") -> Dict[str, object]:
  """enhance-eval's code path: metrics, NIMA statistics, figures.

  Every test pair is enhanced at its original size. Writes to output_dir:
  eval.json (summary and per-image rows), nima_scores.png (box plot of the
  NIMA mean scores of input / reference / output, the paper's Fig. 6),
  grids/<name>.png (input | reference | output, Figs. 7-10) for the first
  `num_grids` images, and outputs/<name>.png when `save_outputs`.

  Args:
    nima_model_dir: NIMA for the score statistics; default: the one recorded
      at training; none at all skips the NIMA statistics.
    tile_size, memory_budget_gb, precision: CAN inference (load_enhancer).
    data_source: "files" (data_dir/input, data_dir/<target>) or "tfds"
      (data_dir is a TFDS data_dir with `mit_adobe_fivek_pairs/<target>`;
      its own train/test split).

  Returns:
    the eval.json dictionary.
  """
  from nima_enhance import enhance_report  # pylint: disable=g-import-not-at-top
  enhancer = load_enhancer(model_dir, tile_size=tile_size,
                           memory_budget_gb=memory_budget_gb,
                           precision=precision)
  os.makedirs(output_dir, exist_ok=True)
  # The split the enhancer was trained with, unless told otherwise.
  split_file = split_file or enhancer.spec.get("split_file")
  if _tfds_source(data_source, split_file):
    from nima_enhance.data.tfds import readers  # pylint: disable=g-import-not-at-top
    report = fivek.PairReport()
    pair_images = readers.iterate_fivek_pairs(data_dir, target, split)
  else:
    pairs, report = fivek.find_pairs(data_dir, target, split, split_file)
    pair_images = fivek.iterate_pairs(pairs, report)
  nima_dir = nima_model_dir or enhancer.spec.get("nima_model_dir")
  scorer = NimaScorer(nima_dir) if nima_dir else None
  rows: List[Dict[str, object]] = []
  for name, source, reference in pair_images:
    if max_images is not None and len(rows) >= max_images:
      break
    output = enhancer(source)
    row = {"name": name, "height": int(source.shape[0]),
           "width": int(source.shape[1]),
           "psnr_input": psnr(reference, source),
           "psnr_output": psnr(reference, output),
           "ssim_input": ssim(reference, source),
           "ssim_output": ssim(reference, output)}
    if scorer is not None:
      row.update(nima_input=scorer(source), nima_reference=scorer(reference),
                 nima_output=scorer(output))
    rows.append(row)
    if len(rows) <= num_grids:
      enhance_report.comparison_grid(
          os.path.join(output_dir, "grids", f"{name}.png"),
          [source, reference, output], ["input", f"reference ({target})",
                                        f"output (gamma={enhancer.spec.get('gamma')})"])
    if save_outputs:
      images.write_image(os.path.join(output_dir, "outputs", f"{name}.png"),
                         output, bit_depth=16)
  write_skipped(report, output_dir, split)
  if not rows:
    raise FileNotFoundError(f"{data_dir}: no readable {split} pairs for "
                            f"target {target} ({report.summary()})")
  result = {
      "model_dir": os.path.abspath(model_dir), "checkpoint": enhancer.checkpoint,
      "target": target, "split": split, "gamma": enhancer.spec.get("gamma"),
      "nima_model_dir": nima_dir, "num_images": len(rows),
      "skipped": dict(sorted(report.skipped.items())),
  }
  for key in ("psnr_input", "psnr_output", "ssim_input", "ssim_output",
              "nima_input", "nima_reference", "nima_output"):
    if key in rows[0]:
      result[key] = _stats([r[key] for r in rows])
  if scorer is not None:
    enhance_report.box_plot(
        os.path.join(output_dir, "nima_scores.png"),
        {"input": [r["nima_input"] for r in rows],
         "reference": [r["nima_reference"] for r in rows],
         f"output (gamma={enhancer.spec.get('gamma')})":
             [r["nima_output"] for r in rows]},
        title=f"NIMA mean scores, {len(rows)} {split} images")
  result["per_image"] = rows
  images.atomic_write_bytes(os.path.join(output_dir, "eval.json"),
                            json.dumps(result, indent=2).encode("utf-8"))
  return result


def enhance_files(enhancer: EnhancerBundle, paths: Sequence[str],
                  output_dir: str, fmt: str = "png", bit_depth: int = 8
                 ) -> Dict[str, object]:
  """Enhances files at full size into output_dir/<stem>.<png|jpg>.

  Inputs whose stems collide keep their extension in the output name
  (a.png -> a.png.png, a.tif -> a.tif.png; `image_files.output_names`).

  Returns:
    {"written": [paths], "skipped": {path: reason}}.

  Raises:
    ValueError: output_dir holds an input (outputs never replace inputs).
  """
  ext = {"png": "png", "jpeg": "jpg", "jpg": "jpg"}.get(fmt.lower())
  if ext is None:
    raise ValueError(f"format must be png or jpeg, got {fmt!r}")
  if ext == "jpg" and bit_depth != 8:
    raise ValueError("JPEG output is 8-bit only (use --format png for 16)")
  image_files.refuse_overwrite(paths, output_dir)
  names = image_files.output_names(paths, ext)
  written, skipped = [], {}
  for path in paths:
    try:
      image = images.read_image(path)
    except images.ImageReadError as err:
      logging.warning("skipped %s", err)
      skipped[path] = str(err)
      continue
    out_path = os.path.join(output_dir, names[path])
    pixels = (_compact_pixels(image) if isinstance(enhancer, EnhancerBundle)
              else tf.convert_to_tensor(image, tf.float32))
    del image  # one copy of the input only, while the CAN runs
    try:
      if isinstance(enhancer, EnhancerBundle) and bit_depth == 8:
        # 8-bit output made band by band; the float copy for write_image is
        # made once the CAN's memory is free (k / 255 quantizes back to k).
        enhanced = enhancer(pixels, output_uint8=True)
      else:
        enhanced = enhancer(pixels)
    except (MemoryError, tf.errors.ResourceExhaustedError,
            tf.errors.InvalidArgumentError) as err:
      # One photo that does not fit (or that the graph rejects) must not end
      # a batch run: name it, skip it, go on.
      reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
      logging.warning("skipped %s: %s", path, reason)
      skipped[path] = f"{path}: enhancement failed ({type(err).__name__}: " \
                      f"{reason[:200]})"
      continue
    del pixels
    if enhanced.dtype == np.uint8:
      # write_image takes float; one float copy, scaled in place.
      enhanced = enhanced.astype(np.float32)
      enhanced /= np.float32(255.0)
    images.write_image(out_path, enhanced, bit_depth=bit_depth)
    written.append(out_path)
    logging.info("%s -> %s", path, out_path)
  return {"written": written, "skipped": skipped}
