"""The embedded default: the whole paper pipeline on bundled real photos.

`run_demo` chains the same library calls the binaries make (nima-train,
nima-eval, nima-score, prep-targets, enhance-train, enhance-eval, nima-export)
on data built from scikit-image's bundled photographs, so it needs no download
and finishes in minutes on a laptop CPU. Its NIMA learns *technical* quality
from synthetic degradations (blur, noise, JPEG, exposure, contrast), not AVA
aesthetics; the report says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Callable, Dict, List

import gin
import numpy as np
from skimage import data as skimage_data

from data_prep import targets
from nima_enhance import config
from nima_enhance import demo_report
from nima_enhance import scoring
from nima_enhance.data import ava
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.data import synthetic
from nima_enhance.enhance import evaluate
from nima_enhance.enhance import train as enhance_train
from nima_enhance.serving import export
from nima_enhance.train import loop
from nima_enhance.train import nima_task


@dataclasses.dataclass
class DemoSettings:
  """Sizes of the demo; `quick` trades quality for a ~3 minute run."""
  num_rating_images: int
  rating_image_size: tuple
  nima_steps: int
  enhance_max_side: int
  crops_per_photo: int
  can_steps: int
  gamma: float

  @classmethod
  def create(cls, quick: bool) -> "DemoSettings":
    if quick:
      return cls(num_rating_images=320, rating_image_size=(48, 64),
                 nima_steps=150, enhance_max_side=96, crops_per_photo=1,
                 can_steps=60, gamma=0.02)
    return cls(num_rating_images=800, rating_image_size=(96, 128),
               nima_steps=500, enhance_max_side=128, crops_per_photo=2,
               can_steps=200, gamma=0.02)


# Colour photographs bundled with scikit-image used for the enhancement pairs.
ENHANCE_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field",
                  "immunohistochemistry", "motorcycle", "retina", "rocket")


class _Stages:
  """Progress lines: stage counter, elapsed time, and a timing table."""

  def __init__(self, total: int, log: Callable[[str], None]):
    self.total = total
    self.log = log
    self.index = 0
    self.start = time.perf_counter()
    self.timings: List[tuple] = []
    self._stage_start = self.start
    self._name = None

  def begin(self, name: str) -> None:
    self._finish()
    self.index += 1
    self._name = name
    self._stage_start = time.perf_counter()
    self.log(f"[{self.index}/{self.total}] {name} "
             f"(elapsed {time.perf_counter() - self.start:.0f}s)")

  def _finish(self) -> None:
    if self._name is not None:
      self.timings.append((self._name,
                           time.perf_counter() - self._stage_start))
      self._name = None

  def done(self) -> float:
    self._finish()
    return time.perf_counter() - self.start


def _enhancement_photos() -> Dict[str, np.ndarray]:
  photos = {}
  for name in ENHANCE_PHOTOS:
    array = (skimage_data.stereo_motorcycle()[0] if name == "motorcycle"
             else getattr(skimage_data, name)())
    photos[name] = images.to_float_rgb(np.asarray(array), name)
  return photos


def make_enhancement_pairs_inputs(data_dir: str, settings: DemoSettings,
                                  seed: int) -> List[str]:
  """Writes D/input/<photo>_<k>.png: crops of the bundled colour photos."""
  rng = np.random.RandomState(seed)
  input_dir = os.path.join(data_dir, "input")
  os.makedirs(input_dir, exist_ok=True)
  names = []
  for photo_name, photo in sorted(_enhancement_photos().items()):
    for k in range(settings.crops_per_photo):
      if k == 0:
        crop = photo  # the whole photograph
      else:
        h, w = photo.shape[:2]
        ch, cw = int(h * 0.6), int(w * 0.6)
        top, left = rng.randint(0, h - ch + 1), rng.randint(0, w - cw + 1)
        crop = photo[top:top + ch, left:left + cw]
      name = f"{photo_name}_{k}"
      image_write.write_image(os.path.join(input_dir, f"{name}.png"),
                              images.resize_max_side(crop,
                                                     settings.enhance_max_side),
                              bit_depth=8)
      names.append(name)
  return names


def _configure(gin_files, bindings) -> None:
  """The configuration of one stage: NIMA training, then enhancer training.

  The two stages use gin files written for two binaries (both bind
  train_loop), so each stage starts from a clean configuration; within a
  stage every run passes what differs (the enhancer's gamma) explicitly.
  """
  gin.clear_config()
  config.parse_gin(gin_files, bindings, finalize=False)


def run_demo(output_dir: str, quick: bool = False, seed: int = 0,
             log: Callable[[str], None] = print) -> Dict[str, object]:
  """Runs the whole pipeline and writes output_dir/report.html.

  Args:
    output_dir: everything goes here (data, model dirs, exports, report).
    quick: smaller data and fewer steps (about three minutes on two cores).
    seed: seeds data generation and training.
    log: progress lines.

  Returns:
    the summary written to output_dir/summary.json.
  """

  settings = DemoSettings.create(quick)
  stages = _Stages(8, log)
  os.makedirs(output_dir, exist_ok=True)
  paths = {k: os.path.join(output_dir, k) for k in
           ("ava", "nima", "fivek", "can_l2", "can_nima", "eval_l2",
            "eval_nima", "exports", "figures")}
  for key in ("nima", "can_l2", "can_nima", "exports"):
    # A rerun starts these from scratch (resuming a finished run would skip
    # training and silently reuse old models).
    shutil.rmtree(paths[key], ignore_errors=True)
  log("Demo NIMA is trained on synthetic degradations of scikit-image's "
      "bundled photos, not on AVA.")

  stages.begin(f"Rating set: {settings.num_rating_images} degraded crops of "
               "bundled photos (AVA layout)")
  shutil.rmtree(paths["ava"], ignore_errors=True)
  info = synthetic.make_synthetic_ava(
      paths["ava"], num_images=settings.num_rating_images,
      image_size=settings.rating_image_size, seed=seed)

  stages.begin(f"Training NIMA from scratch ({settings.nima_steps} steps, "
               "nima-train's code path)")
  h, w = settings.rating_image_size
  _configure(["nima/from_scratch_small.gin"],
             [f"preprocessing_config.image_size = ({h}, {w})",
              f"train_loop.num_steps = {settings.nima_steps}"])
  train_ratings, train_report = ava.load_split(paths["ava"], "train",
                                               cache_dir=paths["nima"],
                                               seed=seed)
  log(f"  train: {train_report.summary()}")
  nima_result = loop.train_loop(nima_task.NimaTask(paths["ava"], train_ratings),
                                paths["nima"], seed=seed)

  stages.begin("Evaluating NIMA on held-out crops (Table 1 metrics)")
  bundle = scoring.load_nima(paths["nima"])
  test_ratings, test_report = ava.load_split(paths["ava"], "test", seed=seed)
  log(f"  test: {test_report.summary()}")
  nima_metrics = scoring.evaluate_split(bundle, paths["ava"], test_ratings)
  log("  accuracy {accuracy:.3f}  LCC {lcc:.3f}  SRCC {srcc:.3f}  "
      "EMD {emd:.3f}".format(**nima_metrics))
  examples = _distribution_examples(bundle, paths["ava"], test_ratings, info)
  demo_report.distribution_figure(
      os.path.join(paths["figures"], "nima_distributions.png"), examples)

  stages.begin("Local Laplacian targets for the enhancement pairs "
               "(prep-targets' code path)")
  shutil.rmtree(paths["fivek"], ignore_errors=True)
  make_enhancement_pairs_inputs(paths["fivek"], settings, seed)
  target_counts = targets.prepare_targets(
      os.path.join(paths["fivek"], "input"), paths["fivek"],
      "local_laplacian", workers=1, progress=False, log=lambda s: None)
  log(f"  {target_counts['written']} targets written")

  can_results = {}
  _configure(["demo/enhance_small.gin"],
             [f"train_loop.num_steps = {settings.can_steps}",
              f"make_train_dataset.max_side = {settings.enhance_max_side}",
              "train_loop.image_summary_every = 0"])
  for key, gamma in (("can_l2", 0.0), ("can_nima", settings.gamma)):
    stages.begin(f"Training CAN with gamma = {gamma:g} "
                 f"({settings.can_steps} steps, enhance-train's code path)")
    can_results[key] = enhance_train.train_enhancer(
        paths["fivek"], "local_laplacian", paths[key],
        nima_model_dir=paths["nima"], seed=seed, gamma=gamma)

  stages.begin("Evaluating both enhancers at full size (enhance-eval's code "
               "path)")
  evals = {}
  for key in ("can_l2", "can_nima"):
    evals[key] = evaluate.evaluate_enhancer(
        paths["fivek"], "local_laplacian", paths[key],
        paths["eval_" + key.split("_")[1]], nima_model_dir=paths["nima"])
  comparisons = demo_report.enhancement_figures(
      paths["fivek"], paths["figures"], paths["can_l2"], paths["can_nima"],
      evals)

  stages.begin("Exporting both SavedModels (nima-export's code path)")
  exported = {
      "scorer": export.export_model(paths["nima"],
                                    os.path.join(paths["exports"], "nima"),
                                    kind="scorer"),
      "enhancer": export.export_model(paths["can_nima"],
                                      os.path.join(paths["exports"], "can"),
                                      kind="enhancer")}
  total = stages.done()
  summary = {
      "quick": quick, "seed": seed, "settings": dataclasses.asdict(settings),
      "nima": {k: nima_metrics[k] for k in ("accuracy", "lcc", "srcc", "emd",
                                           "num_images")},
      "nima_training": {"steps": nima_result["step"],
                        "examples_per_sec": nima_result["examples_per_sec"]},
      "enhancement": {key: {k: evals[key][k] for k in
                            ("psnr_input", "psnr_output", "ssim_input",
                             "ssim_output", "nima_input", "nima_reference",
                             "nima_output", "num_images", "gamma")}
                      for key in evals},
      "can_training": {key: {"steps": r["step"],
                             "steps_per_sec": r["steps_per_sec"]}
                       for key, r in can_results.items()},
      "exports": exported,
      "timings": [{"stage": n, "seconds": round(s, 1)}
                  for n, s in stages.timings],
      "total_seconds": round(total, 1),
  }
  image_write.atomic_write_bytes(os.path.join(output_dir, "summary.json"),
                                 json.dumps(summary, indent=2).encode("utf-8"))
  report = demo_report.write_report(output_dir, summary, comparisons)
  log(f"Done in {total:.0f}s. Report: {report}")
  return summary


def _distribution_examples(bundle, ava_dir: str, ratings, info,
                           count: int = 4) -> List[Dict[str, object]]:
  """A clean and several degraded held-out crops with true/predicted pmfs."""
  kinds = dict(zip(info["ids"], info["degradations"]))
  severity = dict(zip(info["ids"], info["severities"]))
  # The cleanest crop, then the most severe crop of each degradation kind.
  worst: Dict[str, str] = {}
  for image_id in ratings.image_ids:
    kind = kinds.get(image_id)
    if kind and (kind not in worst or
                 severity[image_id] > severity[worst[kind]]):
      worst[kind] = image_id
  degraded = sorted((i for k, i in worst.items() if k != "none"),
                    key=lambda i: -severity[i])
  chosen = ([worst["none"]] if "none" in worst else []) + degraded
  chosen = chosen[:count]
  paths = [ava.image_path(ava_dir, i) for i in chosen]
  scored = {s.path: s for s in scoring.score_files(bundle, paths)}
  index = {i: n for n, i in enumerate(ratings.image_ids)}
  return [{"id": i, "image": images.read_image(p),
           "degradation": f"{kinds[i]} ({severity[i]:.2f})",
           "true": ratings.distributions[index[i]],
           "predicted": scored[p].distribution}
          for i, p in zip(chosen, paths)]

