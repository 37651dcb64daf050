"""The zoo through every entry point: binaries, pipelines, SavedModels.

Each good file must give the pixels (or score) of the contract's upright RGB
(`images.read_image`, checked against independent references in
test_reading_contract.py); each bad one a named skip; exit codes 0/1/2.
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from binary_helpers import ENV
from binary_helpers import REPO
from binary_helpers import run_binary as _run
import image_zoo
from nima_enhance import scoring
from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.data import fivek
from nima_enhance.data import fivek_pipeline
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.enhance import inference
from nima_enhance.serving import export
from nima_enhance.serving import saved_model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  return image_zoo.build_zoo(str(tmp_path_factory.mktemp("zoo")))


@pytest.fixture(scope="module")
def zoo_dir(zoo):
  return os.path.dirname(zoo["clean.jpg"].path)


def _good(zoo):
  return {n: c for n, c in zoo.items() if c.expected is not None}


def _contract_scores(nima_dir, zoo):
  bundle = scoring.load_nima(nima_dir)
  pixels = {n: scoring.eval_pixels_tf(images.read_image(c.path),
                                      bundle.preprocessing)
            for n, c in _good(zoo).items()}
  return {n: float(np.sum(bundle.predict(p[None]).numpy()[0] *
                          np.arange(1, 11))) for n, p in pixels.items()}


def _read_csv(text):
  return {os.path.basename(r["path"]): float(r["mean"])
          for r in csv.DictReader(io.StringIO(text))}


@pytest.mark.slow
def test_nima_score_on_the_zoo(zoo, zoo_dir, nima_dir, tmp_path):
  out = str(tmp_path / "scores.csv")
  proc = _run("nima_score", "--model_dir", nima_dir, zoo_dir, "--output", out)
  assert proc.returncode == 1, proc.stderr[-3000:]  # some inputs skipped
  assert "Traceback" not in proc.stderr
  with open(out) as f:
    scores = _read_csv(f.read())
  expected = _contract_scores(nima_dir, zoo)
  assert set(scores) == set(expected)
  for name, value in expected.items():
    assert abs(scores[name] - value) < 2e-4, name
  # The sideways stored pixels would not have given the upright score.
  bundle = scoring.load_nima(nima_dir)
  sideways = tf.io.decode_jpeg(open(zoo["orientation_6.jpg"].path, "rb")
                               .read()).numpy() / 255.0
  raw = bundle.predict(scoring.eval_pixels_tf(
      tf.constant(sideways, tf.float32), bundle.preprocessing)[None])
  assert abs(float(np.sum(raw.numpy()[0] * np.arange(1, 11)))
             - scores["orientation_6.jpg"]) > 2e-4
  skipped = [n for n, c in zoo.items() if c.expected is None]
  for name in skipped + ["x.jpg"]:
    line = [l for l in proc.stderr.splitlines()
            if os.path.join(zoo_dir, name) in l]
    assert line, name
  assert f"skipped {len(skipped) + 1}" in proc.stderr
  assert "exit code 1" in proc.stderr.strip().splitlines()[-1]


def test_saved_model_client_agrees(zoo, nima_dir, tmp_path):
  """nima-score --saved_model's client: the contract's scores, TIFF/WebP too."""
  export_dir = export.export_model(nima_dir, str(tmp_path / "export"))
  scored = list(saved_model.score_files_with_saved_model(
      export_dir, [c.path for c in zoo.values()], batch_size=4))
  expected = _contract_scores(nima_dir, zoo)
  for item in scored:
    name = os.path.basename(item.path)
    if zoo[name].expected is None:
      assert item.error and item.error.startswith(item.path + ": "), name
      assert zoo[name].reason in item.error, (name, item.error)
    else:
      assert item.error is None, item.error
      assert abs(item.mean - expected[name]) < 2e-4, name


def test_score_image_bytes_signature_on_the_zoo(zoo, nima_dir, tmp_path):
  path = export.export_model(nima_dir, str(tmp_path / "e"),
                             max_pixels=10 ** 6)
  assert saved_model.read_metadata(path)["max_pixels"] == 10 ** 6
  signature = tf.saved_model.load(path).signatures["score_image_bytes"]
  expected = _contract_scores(nima_dir, zoo)
  for name, case in zoo.items():
    data = tf.constant([open(case.path, "rb").read()])
    if case.expected is not None and case.graph:
      mean = float(signature(images=data)["mean"][0])
      assert abs(mean - expected[name]) < 2e-4, name
    elif not case.graph or case.graph_strict:
      with pytest.raises(tf.errors.InvalidArgumentError):
        signature(images=data)
  # The export's own limit: 1 MP here, so a 1200x1000 PNG is refused.
  big = image_write.encode_image(np.zeros((1000, 1001, 3), np.float32))
  with pytest.raises(tf.errors.InvalidArgumentError, match="pixel limit"):
    signature(images=tf.constant([big]))


def test_enhance_image_bytes_signature_is_upright(zoo, can_dir, tmp_path):
  path = export.export_model(can_dir, str(tmp_path / "e"))
  signature = tf.saved_model.load(path).signatures["enhance_image_bytes"]
  bundle = inference.load_enhancer(can_dir, tile_size=0) if (
      "tile_size" in inference.load_enhancer.__code__.co_varnames) else (
          inference.load_enhancer(can_dir))
  for name in ("orientation_6.jpg", "rgba.png", "alpha.webp"):
    data = tf.constant(open(zoo[name].path, "rb").read())
    png = tf.io.decode_png(signature(image=data)["image"]).numpy()
    expected = image_write.quantize(bundle(images.read_image(zoo[name].path)))
    assert png.shape == (image_zoo.HEIGHT, image_zoo.WIDTH, 3), name
    assert np.abs(png.astype(int) - expected).max() <= 1, name


def test_enhance_binary_on_the_zoo(zoo, zoo_dir, can_dir, tmp_path):
  out = str(tmp_path / "out")
  names = ["orientation_6.jpg", "rgba.png", "rgb16.tif", "lossless.webp",
           "damaged_middle.jpg"]
  src = tmp_path / "in"
  src.mkdir()
  for name in names:
    shutil.copy(zoo[name].path, src / name)
  # a.png and a.tif in one folder: two outputs, both counted.
  shutil.copy(zoo["photo.bmp"].path, src / "a.png")
  shutil.copy(zoo["rgb8.tif"].path, src / "a.tif")
  proc = _run("enhance", "--model_dir", can_dir, str(src), "--output_dir", out,
              "--jit_compile=false")
  assert proc.returncode == 1, proc.stderr[-3000:]
  written = sorted(os.listdir(out))
  assert written == ["a.png.png", "a.tif.png", "lossless.png",
                     "orientation_6.png", "rgb16.png", "rgba.png"], written
  assert "wrote 6 images" in proc.stdout and "skipped 1" in proc.stdout
  assert "damaged_middle.jpg" in proc.stderr
  bundle = inference.load_enhancer(can_dir)
  for name in ("orientation_6", "rgba", "rgb16", "lossless"):
    source = [n for n in names if n.startswith(name)][0]
    result = images.read_image(os.path.join(out, name + ".png"))
    expected = bundle(images.read_image(zoo[source].path))
    assert result.shape == expected.shape, name
    assert np.abs(result - expected).max() <= 0.5 / 255 + 1e-3, name


def test_fivek_pairs_and_training_pipeline_follow_the_contract(zoo, tmp_path):
  data_dir = tmp_path / "fivek"
  (data_dir / "input").mkdir(parents=True)
  (data_dir / "t").mkdir()
  names = ["orientation_6.jpg", "rgba.png", "rgb16.tif", "lossless.webp",
           "damaged_middle.jpg", "truncated.jpg"]
  for name in names:
    shutil.copy(zoo[name].path, data_dir / "input" / name)
    upright = np.full((image_zoo.HEIGHT, image_zoo.WIDTH, 3), 0.5, np.float32)
    image_write.write_image(str(data_dir / "t" / (name.split(".")[0] + ".png")),
                            upright, bit_depth=16)
  pairs, report = fivek.find_pairs(str(data_dir), "t", "all")
  assert sorted(report.skipped) == ["damaged_middle", "truncated"]
  assert "corrupt JPEG data" in report.skipped["damaged_middle"]
  dataset = fivek_pipeline.make_train_dataset(pairs, max_side=None)
  seen = []
  for source, target in dataset.take(8):
    seen.append(source[0].numpy())
    assert source.shape[1:3] == target.shape[1:3]
  references = [images.read_image(p) for p in pairs.inputs]
  for image in seen:
    assert min(np.abs(image - r).max() if r.shape == image.shape else 1.0
               for r in references) < 1e-6


def test_ava_manifest_and_pipeline_follow_the_contract(zoo, tmp_path):
  ava_dir = tmp_path / "ava"
  (ava_dir / "images").mkdir(parents=True)
  chosen = {"1": "orientation_6.jpg", "2": "png_named.jpg",
            "3": "lossless.webp", "4": "damaged_middle.jpg",
            "5": "trailer.jpg", "6": "rgb16.tif", "7": "bomb.png"}
  lines = []
  for i, name in chosen.items():
    shutil.copy(zoo[name].path, ava_dir / "images" / f"{i}.jpg")
    lines.append(f"{i} {i} " + " ".join(["1"] * 10) + " 0 0 0\n")
  (ava_dir / "AVA.txt").write_text("".join(lines))
  ratings = ava.parse_ava_txt(str(ava_dir / "AVA.txt"))
  report = ava.check_images(str(ava_dir), ratings.image_ids)
  assert report.good == ["1", "2", "3", "5"]
  assert report.skipped["4"].startswith("corrupt: corrupt JPEG data")
  assert report.skipped["6"].startswith("not-an-image")
  assert report.skipped["7"].startswith("too-large")
  preprocessing = {"mode": "paper", "image_size": [24, 36],
                   "resize_size": 64, "random_flip": False}
  dataset = ava_pipeline.make_dataset(str(ava_dir), ratings.subset(report.good),
                                      preprocessing, 4, training=False)
  pixels = next(iter(dataset))[0].numpy()
  for row, image_id in zip(pixels, report.good):
    expected = ava_pipeline.preprocess_tf(images.read_image(
        str(ava_dir / "images" / f"{image_id}.jpg")), preprocessing,
                                 training=False).numpy()
    np.testing.assert_allclose(row, expected, atol=1e-4)


def test_prep_targets_on_the_zoo(zoo, tmp_path):
  from data_prep import targets  # pylint: disable=g-import-not-at-top
  src = tmp_path / "in"
  src.mkdir()
  for name in ("orientation_6.jpg", "lossless.webp", "rgb16.tif",
               "damaged_middle.jpg"):
    shutil.copy(zoo[name].path, src / name)
  (src / "notes.txt").write_text("x")
  out = tmp_path / "out"
  proc = _run("prep_targets", "--input_dir", str(src), "--output_dir",
              str(out), "--operator", "local_laplacian", "--workers", "1")
  assert proc.returncode == 1, proc.stderr[-3000:]
  made = sorted(os.listdir(out / "local_laplacian"))
  assert made == ["lossless.png", "orientation_6.png", "params.json",
                  "rgb16.png"], made
  for name in ("damaged_middle.jpg", "notes.txt"):
    assert name in proc.stdout + proc.stderr, name
  # The target of the sideways-stored photo is upright, like the photo.
  target = images.read_image(str(out / "local_laplacian" /
                                 "orientation_6.png"))
  assert target.shape == (image_zoo.HEIGHT, image_zoo.WIDTH, 3)
  # Targets written into the input folder would replace a PNG input.
  inside = tmp_path / "photos" / "local_laplacian"
  inside.mkdir(parents=True)
  shutil.copy(zoo["rgba.png"].path, inside / "a.png")
  with pytest.raises(ValueError, match="holds the input"):
    targets.plan_targets(str(inside), str(inside.parent), "local_laplacian",
                         params={})
  assert sorted(os.listdir(inside)) == ["a.png"]


def _errors(module, cases):
  """Each case's (exit code, last stderr line, traceback?) from one process."""
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tests",
                                                      "binary_driver.py"),
                         module, json.dumps(cases)], capture_output=True,
                        text=True, env=ENV, timeout=300, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_errors(results, fragments):
  assert len(results) == len(fragments)
  for result, fragment in zip(results, fragments):
    assert not result["traceback"], result
    assert result["code"] == 2, result
    assert "error:" in result["last_line"], result
    assert fragment in result["last_line"], (fragment, result)


def test_nima_score_user_errors_are_one_line(zoo, nima_dir, can_dir,
                                            tmp_path):
  blocker = tmp_path / "blocker"  # a file where a folder must be
  blocker.write_text("x")
  bad = [zoo[n].path for n in ("text.jpg", "empty.jpg", "truncated.jpg")]
  clean = zoo["clean.jpg"].path
  cases = [
      (["--model_dir", nima_dir, clean, "--output", str(blocker / "s.csv")],
       "--output"),
      (["--model_dir", nima_dir, *bad], "nothing processed"),
      (["--model_dir", can_dir, clean], "enhancer"),
      (["--model_dir", nima_dir, "--batch_size", "0", clean], "batch_size"),
      (["--model_dir", nima_dir, str(tmp_path / "missing.jpg")], "no such"),
      (["--model_dir", nima_dir, "--max_pixels", "0", clean], "max_pixels"),
  ]
  _assert_errors(_errors("nima_score", [c for c, _ in cases]),
                 [f for _, f in cases])


def test_enhance_user_errors_are_one_line(zoo, nima_dir, can_dir, tmp_path):
  blocker = tmp_path / "blocker"
  blocker.write_text("x")
  folder = tmp_path / "photos"
  folder.mkdir()
  shutil.copy(zoo["photo.bmp"].path, folder / "a.png")
  before = (folder / "a.png").read_bytes()
  clean = zoo["clean.jpg"].path
  cases = [
      # Outputs never replace inputs: the input folder as output is refused.
      ([str(folder), "--model_dir", can_dir, "--output_dir", str(folder)],
       "holds the input"),
      ([clean, "--model_dir", can_dir, "--output_dir", str(blocker / "o")],
       "--output_dir"),
      ([clean, "--model_dir", nima_dir, "--output_dir", str(tmp_path / "o")],
       "nima"),
      ([zoo["text.jpg"].path, "--model_dir", can_dir, "--output_dir",
        str(tmp_path / "o")], "nothing processed"),
  ]
  _assert_errors(_errors("enhance", [c for c, _ in cases]),
                 [f for _, f in cases])
  assert sorted(os.listdir(folder)) == ["a.png"]
  assert (folder / "a.png").read_bytes() == before


def test_training_and_export_user_errors_are_one_line(zoo, can_dir, tmp_path):
  blocker = tmp_path / "blocker"
  blocker.write_text("x")
  broken = tmp_path / "broken"
  (broken / "images").mkdir(parents=True)
  (broken / "AVA.txt").write_text("1 2 3\n")
  good = tmp_path / "ava"
  (good / "images").mkdir(parents=True)
  lines = []
  for i in range(1, 7):
    shutil.copy(zoo["rgba.png"].path, good / "images" / f"{i}.jpg")
    lines.append(f"{i} {i} " + " ".join(["1"] * 10) + " 0 0 0\n")
  (good / "AVA.txt").write_text("".join(lines))
  small = ["--gin_file", "nima/from_scratch_small.gin", "--gin_bindings",
           "preprocessing_config.image_size = (24, 36)"]
  model = str(tmp_path / "m")
  cases = [
      (["--ava_dir", str(broken), "--model_dir", model], "AVA.txt:1"),
      (["--ava_dir", str(good), "--model_dir", model, *small,
        "--gin_bindings", "train_loop.num_steps = 'five'"], "train_loop"),
      (["--ava_dir", str(good), "--model_dir", model, *small,
        "--gin_bindings", "build_nima.backbone = 'no_such_net'"],
       "no_such_net"),
      (["--ava_dir", str(good), "--model_dir", model, *small,
        "--gin_bindings", "preprocessing_config.mode = 'zoom'"], "zoom"),
      (["--ava_dir", str(good), "--model_dir", str(blocker / "m"), *small],
       "--model_dir"),
  ]
  _assert_errors(_errors("nima_train", [c for c, _ in cases]),
                 [f for _, f in cases])
  cases = [
      (["--model_dir", can_dir, "--export_dir", str(blocker / "e")],
       "--export_dir"),
      (["--model_dir", can_dir, "--kind", "scorer", "--export_dir",
        str(tmp_path / "e")], "enhancer"),
      # A binary without image arguments refuses positional ones (run_main).
      (["--model_dir", can_dir, "--export_dir", str(tmp_path / "e"),
        "stray.jpg"], "unexpected arguments: stray.jpg"),
  ]
  _assert_errors(_errors("nima_export", [c for c, _ in cases]),
                 [f for _, f in cases])
