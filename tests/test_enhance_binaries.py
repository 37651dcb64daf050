"""The enhancer's binaries: clean failures, and the paper's claims end to end.

End to end on real photos (scikit-image's) at 64x96 with local-Laplacian-like
targets (tests/enhance_helpers.py: tone curve + data_prep's local Laplacian):
training lifts PSNR to the target on held-out photos above the untouched
inputs', and a large gamma lifts the NIMA score above gamma = 0 with the same
frozen NIMA.
"""

import json
import os
import subprocess
import sys

import gin
import pytest

import enhance_helpers
from nima_enhance import config
from nima_enhance.data import images
from nima_enhance.enhance import evaluate as enhance_eval
from nima_enhance.enhance import inference
from nima_enhance.enhance import sweep
from nima_enhance.enhance import train as enhance_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = enhance_helpers.TRAIN_PHOTOS + enhance_helpers.TEST_PHOTOS
# A short CPU run: the demo recipe with fewer steps.
SHORT = ["demo/enhance_small.gin"]


pytestmark = pytest.mark.usefixtures("clean_gin")  # conftest.py


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("fivek"))
  enhance_helpers.make_pairs(path, NAMES, size=(64, 96))
  return path


def _run(module, *args):
  env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run([sys.executable, "-m", f"nima_enhance.bin.{module}",
                         *args], capture_output=True, text=True, env=env,
                        timeout=120, cwd=REPO)
  return proc.returncode, proc.stderr.strip().splitlines()


@pytest.mark.parametrize("module,args,message", [
    ("enhance_train", ["--data_dir", "/no/such/dir", "--model_dir", "/tmp/x",
                       "--target", "local_laplacian"], "no such folder"),
    ("enhance_train", ["--data_dir", ".", "--model_dir", "/tmp/x",
                       "--gin_bindings", "perceptual_loss.gama=1"],
     "gama"),
    ("gamma_sweep", ["--data_dir", ".", "--output_dir", "/tmp/x",
                     "--gammas", "0,abc"], "--gammas"),
    ("enhance", ["--output_dir", "/tmp/x", "--model_dir", "/no/model"],
     "give one or more"),
])
def test_bad_input_is_one_line_exit_2(module, args, message):
  code, lines = _run(module, *args)
  assert code == 2, lines
  assert message in lines[-1]
  assert not any(l.startswith("Traceback") for l in lines)


def _train(data_dir, model_dir, bindings, nima_dir=None):
  config.parse_gin(SHORT, ["train_loop.progress = False"] + bindings,
                   finalize=False)
  result = enhance_train.train_enhancer(
      data_dir, enhance_train.resolve_target(None), model_dir,
      nima_model_dir=nima_dir)
  gin.clear_config()
  return result


@pytest.mark.slow
def test_training_beats_the_input_on_held_out_photos(tmp_path, pairs_dir):
  model_dir = str(tmp_path / "model")
  _train(pairs_dir, model_dir, ["perceptual_loss.gamma = 0.0",
                                "train_loop.num_steps = 50"])
  result = enhance_eval.evaluate_enhancer(pairs_dir, "local_laplacian",
                                         model_dir, str(tmp_path / "eval"))
  assert result["num_images"] == 4  # the held-out half
  psnr_in, psnr_out = (result["psnr_input"]["mean"],
                       result["psnr_output"]["mean"])
  print(f"held-out PSNR: input {psnr_in:.2f} dB, output {psnr_out:.2f} dB; "
        f"SSIM {result['ssim_input']['mean']:.3f} -> "
        f"{result['ssim_output']['mean']:.3f}")
  # Measured 16.19 -> 24.71 dB (+8.5 dB); the bound allows half the gain
  # (was +1 dB).
  assert psnr_out > psnr_in + 4.0
  # Cross-check against an independent PSNR of what `enhance` writes.
  out_dir = str(tmp_path / "out")
  bundle = inference.load_enhancer(model_dir)
  inputs = sorted(os.listdir(os.path.join(pairs_dir, "input")))[4:]
  written = inference.enhance_files(
      bundle, [os.path.join(pairs_dir, "input", n) for n in inputs], out_dir,
      bit_depth=16)["written"]
  rows = {r["name"]: r for r in result["per_image"]}
  for path in written:
    name = os.path.splitext(os.path.basename(path))[0]
    target = images.read_image(os.path.join(pairs_dir, "local_laplacian",
                                            name + ".png"))
    ours = enhance_helpers.psnr(target, images.read_image(path))
    assert abs(ours - rows[name]["psnr_output"]) < 0.05
  assert os.path.isfile(os.path.join(tmp_path, "eval", "grids",
                                     rows[name]["name"] + ".png"))
  with open(os.path.join(tmp_path, "eval", "eval.json")) as f:
    assert json.load(f)["psnr_output"]["mean"] == pytest.approx(psnr_out)


@pytest.mark.slow
@pytest.mark.usefixtures("op_determinism")
def test_large_gamma_raises_nima_score(tmp_path, pairs_dir):
  # A NIMA trained by nima-train's code path (200 steps of the small recipe:
  # its scores must vary enough with image quality to be a usable loss).
  nima_dir = enhance_helpers.make_nima_dir(str(tmp_path / "nima"),
                                           train_steps=200)
  out = str(tmp_path / "sweep")
  gammas = [0.0, 0.5]
  # Dilations 64..256 only re-read mirrored copies of a 64x96 image but cost
  # 4x the time; the claim under test does not depend on them.
  kwargs = dict(nima_model_dir=nima_dir, gin_files=SHORT,
                gin_bindings=["train_loop.num_steps = 40",
                              "train_loop.progress = False",
                              "build_can.dilations = [1, 2, 4, 8, 16, 32, 1, 1, 1]"],
                num_grids=1)
  rows = sweep.run_sweep(pairs_dir, "local_laplacian", out, gammas, **kwargs)
  by_gamma = {r["gamma"]: r for r in rows}
  print("sweep:", json.dumps(rows))
  # Measured with op determinism (200-step NIMA, 40 CAN steps), NIMA trained
  # with seeds 0/1/2: gamma 0 4.83/5.66/5.51 against gamma 0.5 5.79/6.63/6.18,
  # gaps 0.96/0.97/0.66 (gamma 0.2: 0.70/1.0). Without determinism one run in
  # three lost the effect (gap -0.08): the NIMA itself came out different.
  # With the NIMA term dropped both runs are identical (gap 0). The bound is
  # about a third of the smallest gap.
  assert by_gamma[0.5]["nima"] > by_gamma[0.0]["nima"] + 0.25
  for name in ("sweep.md", "sweep.csv", "sweep.json", "sweep.png"):
    assert os.path.getsize(os.path.join(out, name)) > 0
  assert os.path.isfile(os.path.join(out, "gamma_0.5", "eval",
                                     "nima_scores.png"))
  # Resumable: finished gammas are read back, not retrained.
  ckpt = os.path.join(out, "gamma_0.5", "model", "checkpoint")
  mtime = os.path.getmtime(ckpt)
  again = sweep.run_sweep(pairs_dir, "local_laplacian", out, gammas, **kwargs)
  assert os.path.getmtime(ckpt) == mtime
  assert [r["nima"] for r in again] == [r["nima"] for r in rows]
