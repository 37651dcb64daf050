"""Non-local dehazing benchmark: speed, scaling, strips vs whole, air-light error.

    python tools/benchmarks/dehaze.py [--airlight_only]

1. MP/s at 0.25/1/4 MP and the scaling ratio: a synthetic hazy version of a
   real photo (coffee, depth from the motorcycle disparity), resized up; the
   full pipeline runs, air-light estimation and the WLS regulariser included.
2. The strip path against one whole-image strip at 1 MP (max difference).
3. The air-light error (max over channels of |estimate - reference|) on:
   real hazy photographs with published air-lights, read from
   `../shared/data/hazy` beside the repository (its README's table gives each
   file's gamma and A in the gamma-corrected image; skipped with a message
   when the folder is absent), and synthetic haze with known A and depth on
   four photos and five kinds of air-light (below the brightest scene pixels,
   above all of them, coloured), with two depth layouts (the motorcycle's,
   on which the estimator's parameters were chosen; a landscape, far at the
   top, the check), plus two held-out sets on which nothing was chosen: the
   motorcycle photo under its own depth (bright objects at their real
   distance) and the four photos under a smooth random depth (seeded); the
   record counts the cases within target.

Peak memory at 12/24/48 MP: `peak_memory.py`.
"""

import argparse
import os
import re
import sys
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, _ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import data_prep  # noqa: E402
from nima_enhance.data import images  # noqa: E402
import record  # noqa: E402  (tools/benchmarks/record.py)

HAZY_DIR = os.path.join(_ROOT, "..", "shared", "data", "hazy")
AIRLIGHTS = {
    "grey-white": (0.8, 0.82, 0.85),  # Below the brightest scene pixels.
    "bluish": (0.75, 0.85, 0.95),
    "above-all": (0.97, 0.97, 0.97),
    "yellow": (0.9, 0.78, 0.55),
    "reddish": (0.85, 0.6, 0.5),
}
# rocket: a blue sky and dark trees, where the 2-D projection vote stopped at
# ~0.7 of |A|; kept so that the set is not only scenes where it worked.
SCENES = ("coffee", "chelsea", "astronaut", "rocket")


def _depth(shape):
  from skimage import data  # pylint: disable=g-import-not-at-top
  _, _, disparity = data.stereo_motorcycle()
  finite = np.isfinite(disparity)
  disparity = np.where(finite, disparity, disparity[finite].max())
  depth = 1.0 / np.maximum(disparity, 1.0)
  depth = (depth - depth.min()) / (depth.max() - depth.min())
  return images.resize(depth[..., None].astype(np.float32), shape)[..., 0]


def _random_depth(shape, seed=0):
  """A smooth random depth in [0, 1]: seeded noise blurred to 1/8 the side."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  noise = np.random.default_rng(seed).standard_normal(shape)
  depth = ndimage.gaussian_filter(noise, min(shape) / 8, mode="wrap")
  return ((depth - depth.min()) / (depth.max() - depth.min())).astype(
      np.float32)


def synthetic(scene: str, air, shape=None, layout="motorcycle") -> np.ndarray:
  """I = J t + A (1 - t): J a bundled photo.

  `layout` "motorcycle": t = exp(-2.5 depth) with the motorcycle's depth (the
  set the estimator's parameters were chosen on; with scene "motorcycle", the
  stereo pair's left photo, the photo under its own depth); "landscape":
  exp(-2 depth) with depth falling linearly from the top row (1) to the
  bottom (0); "random": exp(-2.5 depth) with a smooth seeded random depth.
  """
  from skimage import data  # pylint: disable=g-import-not-at-top
  clear = (data.stereo_motorcycle()[0] if scene == "motorcycle"
           else getattr(data, scene)()).astype(np.float32) / 255.0
  shape = shape or (500, 744)
  if layout == "landscape":
    rows = np.linspace(1.0, 0.0, shape[0], dtype=np.float32)
    depth = np.repeat(rows[:, None], shape[1], axis=1)
  elif layout == "random":
    depth = _random_depth(shape)
  else:
    depth = _depth(shape)
  clear = images.resize(clear, depth.shape)
  t = np.exp((-2.0 if layout == "landscape" else -2.5) * depth)[..., None]
  return (clear * t + np.float32(air) * (1.0 - t)).astype(np.float32)


def real_photos():
  """[(file, gamma, A)] from the hazy folder's README table; [] if absent."""
  readme = os.path.join(HAZY_DIR, "README.md")
  if not os.path.exists(readme):
    print(f"real hazy photos: {os.path.normpath(HAZY_DIR)} absent, skipped")
    return []
  rows = []
  with open(readme, encoding="utf-8") as f:
    for line in f:
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      if len(cells) == 3 and re.search(r"\.(png|jpe?g)$", cells[0]):
        air = [float(v) for v in cells[2].split(",")]
        rows.append((cells[0], float(cells[1]), np.array(air)))
  return rows


def airlight_table(scenes=SCENES, shape=None, held_out=True):
  print("| image | kind | reference A | estimate | max error |")
  print("|---|---|---|---|---|")
  # NaN until a real photo is measured (../shared/data/hazy may be absent).
  worst = {"real": float("nan"), "synthetic": 0.0, "rows": [],
           "real_ok": 0, "real_n": 0, "synthetic_ok": 0, "synthetic_n": 0}
  for name, gamma, truth in real_photos():
    image = images.read_image(os.path.join(HAZY_DIR, name)) ** gamma
    estimate = data_prep.estimate_airlight(image)
    error = float(np.abs(estimate - truth).max())
    worst["real"] = error if np.isnan(worst["real"]) else max(worst["real"],
                                                                  error)
    worst["real_n"] += 1
    worst["real_ok"] += error <= 0.1
    worst["rows"].append(dict(image=f"{name} (real, gamma {gamma})",
                              truth=[round(float(v), 3) for v in truth],
                              estimate=[round(float(v), 3) for v in estimate],
                              error=error))
    print(f"| {name} (real, gamma {gamma}) | real | {np.round(truth, 3)} | "
          f"{np.round(estimate, 3)} | {error:.3f} |")
  cases = [(s, "motorcycle") for s in scenes]
  if held_out:
    cases += [(s, "landscape") for s in scenes]
    cases += [("motorcycle", "motorcycle")] + [(s, "random") for s in scenes]
  for scene, layout in cases:
    for kind, air in AIRLIGHTS.items():
      hazy = synthetic(scene, air, shape, layout)
      estimate = data_prep.estimate_airlight(hazy)
      error = float(np.abs(estimate - np.array(air)).max())
      worst["synthetic"] = max(worst["synthetic"], error)
      worst["synthetic_n"] += 1
      worst["synthetic_ok"] += error <= 0.05
      above = (hazy.reshape(-1, 3) > np.float32(air)).any(axis=1).mean()
      size = "x".join(map(str, shape or (500, 744)))
      depth = ("own depth (held out)" if scene == "motorcycle" else
               "random depth (held out)" if layout == "random" else
               f"{layout} depth")
      worst["rows"].append(dict(
          image=f"{scene} {size} {depth}, {kind} ({above:.0%} above A)",
          truth=list(air), estimate=[round(float(v), 3) for v in estimate],
          error=error))
      print(f"| {scene} {size} synthetic, {depth} | {kind} ({above:.0%} of "
            f"pixels above A in a channel) | {air} | {np.round(estimate, 3)} | "
            f"{error:.3f} |")
  print(f"worst air-light error: real {worst['real']:.3f} (target <= 0.1; "
        f"{worst['real_ok']}/{worst['real_n']} within), synthetic "
        f"{worst['synthetic']:.3f} (target <= 0.05; {worst['synthetic_ok']}/"
        f"{worst['synthetic_n']} within)")
  return worst


def speed(sizes=(0.25, 1.0, 4.0), check_side=1000):
  hazy = synthetic("coffee", AIRLIGHTS["grey-white"])
  times = {}
  for mp in sizes:
    side = int(round(np.sqrt(mp * 1e6)))
    image = images.resize(hazy, (side, side))
    best = float("inf")
    for _ in range(2):  # Best of two at every size (as the LLF benchmark).
      start = time.perf_counter()
      _, _, air = data_prep.nonlocal_dehaze(image)
      best = min(best, time.perf_counter() - start)
    times[mp] = best
    print(f"dehaze {side}x{side} ({side * side / 1e6:.2f} MP): {best:.3f} s, "
          f"{side * side / 1e6 / best:.2f} MP/s (air-light {np.round(air, 3)})")
  big, small = sizes[-1], sizes[-2]
  growth = times[big] / times[small]
  print(f"growth time({big} MP) / time({small} MP) = {growth:.2f} "
        f"(linear: {big / small:g})")
  image = images.resize(hazy, (check_side, check_side))
  strips = data_prep.nonlocal_dehaze(image)
  whole = data_prep.nonlocal_dehaze(image, strip_pixels=image.size)
  diff = float(np.abs(strips[0] - whole[0]).max())
  print(f"{check_side}x{check_side} strips vs one whole-image strip: dehazed "
        f"max diff {diff:.1e}, transmission "
        f"{np.abs(strips[1] - whole[1]).max():.1e}")
  figures = {f"mps_{mp:g}mp": mp / times[mp] for mp in sizes}
  figures.update(growth=growth, strips_vs_whole_max_diff=diff)
  return figures


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--airlight_only", action="store_true")
  record.add_flags(parser)
  args = parser.parse_args()
  figures = {}
  if not args.airlight_only:
    # --quick: 0.06 / 0.25 MP, a 300x300 strip check, one scene at 250x372.
    figures = speed((0.0625, 0.25), 300) if args.quick else speed()
  worst = (airlight_table(("coffee",), (250, 372), held_out=False)
           if args.quick
           else airlight_table())
  # The estimate's own cost at 1 MP (it samples at most 2^18 pixels).
  hazy = synthetic("chelsea", AIRLIGHTS["grey-white"], (1000, 1000))
  best = float("inf")
  for _ in range(3):
    start = time.perf_counter()
    data_prep.estimate_airlight(hazy)
    best = min(best, time.perf_counter() - start)
  print(f"estimate_airlight at 1000x1000: {best:.3f} s (best of 3)")
  figures["airlight_estimate_s_1mp"] = best
  figures.update(airlight_error_real=worst["real"],
                 airlight_error_synthetic=worst["synthetic"],
                 airlight_real_within_target=worst["real_ok"],
                 airlight_real_cases=worst["real_n"],
                 airlight_synthetic_within_target=worst["synthetic_ok"],
                 airlight_synthetic_cases=worst["synthetic_n"])
  mps = [v for k, v in figures.items() if k.startswith("mps_")]
  # A real error of NaN (no real photos here) is not a pass.
  met = (worst["real"] <= 0.1 and worst["synthetic"] <= 0.05
         and (not mps or (min(mps) >= 0.5 and figures["growth"] < 4.5)))
  speed_text = (" / ".join(f"{k[4:-2]} MP {v:.2f}" for k, v in figures.items()
                           if k.startswith("mps_")) + " MP/s, growth "
                f"{figures['growth']:.2f}, strips vs whole max diff "
                f"{figures['strips_vs_whole_max_diff']:.1e}; " if mps else "")
  record.write_record(
      args, "dehaze", figures,
      target=">= 0.5 MP/s, growth < 4.5 (x4 pixels), air-light error <= 0.1 "
             "real, <= 0.05 synthetic",
      verdict="PASS" if met else "MISS",
      summary=(speed_text + "worst air-light error real "
               + ("not measured (no ../shared/data/hazy)"
                  if np.isnan(worst["real"]) else f"{worst['real']:.3f}")
               + f" ({worst['real_ok']}/{worst['real_n']} within 0.1)"
               f", synthetic {worst['synthetic']:.3f} ({worst['synthetic_ok']}/"
               f"{worst['synthetic_n']} within 0.05), estimate "
               f"{best:.2f} s at 1 MP"),
      rows=worst["rows"])


if __name__ == "__main__":
  main()
