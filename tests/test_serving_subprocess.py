"""Exported SavedModels outside this package: a bare TF process, saved_model_cli,
and the --saved_model modes of nima-score and enhance against --model_dir.
"""

import csv
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from binary_helpers import run_binary as _run
import serving_helpers as helpers
from nima_enhance import scoring
from nima_enhance.data import ava_pipeline
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.enhance import inference
from nima_enhance.serving import export

TOL = 1e-4
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")

# Runs in a fresh interpreter with only TensorFlow and numpy: the contract is
# that a served model needs nothing from nima_enhance.
CLIENT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    scorer_dir, enhancer_dir, requests_npz, out_npz = sys.argv[1:]
    req = np.load(requests_npz)
    scorer = tf.saved_model.load(scorer_dir)
    enhancer = tf.saved_model.load(enhancer_dir)
    out = {}
    score = scorer.signatures["serving_default"]
    res = score(images=tf.constant(list(req["scorer_bytes"])))
    for key in ("distribution", "mean", "std"):
      out["score_" + key] = res[key].numpy()
    res = scorer.signatures["score_images"](
        images=tf.constant(req["scorer_pixels"]))
    out["score_images_distribution"] = res["distribution"].numpy()
    enhance = enhancer.signatures["enhance"]
    png = enhancer.signatures["serving_default"]
    for i, data in enumerate(req["enhancer_bytes"]):
      image = tf.image.convert_image_dtype(
          tf.io.decode_image(data, channels=3), tf.float32)
      out[f"enhanced_{i}"] = enhance(images=image[None])["images"].numpy()[0]
      out[f"enhanced_png_{i}"] = png(image=tf.constant(data))["image"].numpy()
    errors = []
    for bad in (b"", b"not an image"):
      for call in (lambda: score(images=tf.constant([bad])),
                   lambda: png(image=tf.constant(bad))):
        try:
          call()
          errors.append("no error")
        except tf.errors.InvalidArgumentError:
          errors.append("InvalidArgumentError")
    # ... and the same loaded models keep serving.
    out["after_error_mean"] = score(
        images=tf.constant(list(req["scorer_bytes"][:1])))["mean"].numpy()
    out["after_error_png"] = png(
        image=tf.constant(req["enhancer_bytes"][0]))["image"].numpy()
    out["errors"] = np.array(errors)
    out["imported_nima_enhance"] = np.array(
        any(m.split(".")[0] == "nima_enhance" for m in sys.modules))
    np.savez(out_npz, **out)
""")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving")
  nima_dir = helpers.make_nima_dir(str(root / "nima"))
  can_dir = helpers.make_can_dir(str(root / "can"))
  return {
      "nima_dir": nima_dir, "can_dir": can_dir,
      "scorer": export.export_model(nima_dir, str(root / "export_nima")),
      "enhancer": export.export_model(can_dir, str(root / "export_can"))}


def test_fresh_process_without_package_matches_checkpoint(models, tmp_path):
  scorer_requests = helpers.scorer_requests()
  enhancer_requests = list(helpers.enhancer_requests().values())
  # A client decodes as the scorer does (reduced toward its first resize,
  # ava_pipeline.decode_size) to get the bytes signature's scores from
  # score_images.
  pixels = images.decode_image_bytes(
      scorer_requests["chelsea.jpg"],
      target_size=ava_pipeline.decode_size(helpers.PREPROCESSING)) * 255.0
  requests = str(tmp_path / "requests.npz")
  # Object arrays would need pickle; fixed-width bytes keep NUL bytes intact
  # only if no value ends in NUL, which JPEG (FFD9) and PNG (IEND crc) never do.
  np.savez(requests,
           scorer_bytes=np.array(list(scorer_requests.values()), dtype=bytes),
           scorer_pixels=pixels[None],
           enhancer_bytes=np.array(enhancer_requests, dtype=bytes))
  script = tmp_path / "client.py"
  script.write_text(CLIENT)
  out_path = str(tmp_path / "out.npz")
  proc = subprocess.run(
      [sys.executable, str(script), models["scorer"], models["enhancer"],
       requests, out_path], capture_output=True, text=True, timeout=300,
      env=ENV, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = dict(np.load(out_path))
  assert not out["imported_nima_enhance"]
  assert list(out["errors"]) == ["InvalidArgumentError"] * 4

  # In-process references: the checkpoint through nima-score's own path.
  folder = tmp_path / "photos"
  folder.mkdir()
  paths = []
  for name, data in scorer_requests.items():
    (folder / name).write_bytes(data)
    paths.append(str(folder / name))
  reference = list(scoring.score_files(scoring.load_nima(models["nima_dir"]),
                                       paths))
  expected = np.stack([r.distribution for r in reference])
  diffs = {
      "distribution": np.abs(out["score_distribution"] - expected).max(),
      "mean": np.abs(out["score_mean"] - [r.mean for r in reference]).max(),
      "std": np.abs(out["score_std"] - [r.std for r in reference]).max(),
      "score_images": np.abs(out["score_images_distribution"][0]
                             - expected[2]).max(),
      "after_error": abs(out["after_error_mean"][0] - reference[0].mean)}
  bundle = inference.load_enhancer(models["can_dir"])
  sizes = set()
  for i, data in enumerate(enhancer_requests):
    expected_image = bundle(images.decode_image_bytes(data))
    sizes.add(expected_image.shape)
    diffs[f"enhance_{i}"] = np.abs(out[f"enhanced_{i}"] - expected_image).max()
    png = tf.io.decode_png(out[f"enhanced_png_{i}"].tobytes()).numpy()
    assert png.shape == expected_image.shape
    diffs[f"enhance_png_{i}_levels"] = np.abs(
        png.astype(int)
        - image_write.quantize(expected_image).astype(int)).max()
  assert len(sizes) == 2
  assert out["after_error_png"].tobytes() == out["enhanced_png_0"].tobytes()
  print("max abs differences, SavedModel in a fresh process vs checkpoint:",
        {k: float(v) for k, v in diffs.items()})
  for key, value in diffs.items():
    assert value <= (1 if key.endswith("_levels") else TOL), (key, value)


def _saved_model_cli():
  exe = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  if os.path.isfile(exe) or shutil.which("saved_model_cli"):
    return [exe if os.path.isfile(exe) else "saved_model_cli"]
  return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.mark.parametrize("kind,signatures", [
    ("scorer", {"score_image_bytes": "DT_STRING", "score_images": "DT_FLOAT"}),
    ("enhancer", {"enhance_image_bytes": "DT_STRING", "enhance": "DT_FLOAT",
                  "enhance_image_bytes_rest": "DT_STRING"}),
])
def test_saved_model_cli_lists_signatures(models, kind, signatures):
  proc = subprocess.run(_saved_model_cli() + ["show", "--dir", models[kind],
                                              "--all"],
                        capture_output=True, text=True, timeout=120, env=ENV)
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = proc.stdout
  for name in ["serving_default", *signatures]:
    assert f"signature_def['{name}']" in text, text[-3000:]
  for name, dtype in signatures.items():
    block = text.split(f"signature_def['{name}']")[1].split("signature_def[")[0]
    assert f"dtype: {dtype}" in block, block


@pytest.mark.slow
def test_nima_export_then_nima_score_saved_model_equals_model_dir(models,
                                                                   tmp_path):
  export_dir = str(tmp_path / "exports")
  proc = _run("nima_export", "--model_dir", models["nima_dir"], "--kind",
              "scorer", "--export_dir", export_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  version = proc.stdout.strip().splitlines()[-1]
  assert os.path.dirname(version) == export_dir
  assert os.path.isfile(os.path.join(version, "saved_model.pb"))

  folder = tmp_path / "photos"
  folder.mkdir()
  for name, data in helpers.scorer_requests().items():
    (folder / name).write_bytes(data)
  (folder / "broken.jpg").write_bytes(b"not a jpeg")
  rows = {}
  for flag, source in (("--model_dir", models["nima_dir"]),
                       ("--saved_model", export_dir)):
    out = str(tmp_path / f"{flag[2:]}.csv")
    proc = _run("nima_score", flag, source, str(folder), "--output", out)
    assert proc.returncode == 1, proc.stderr[-3000:]  # broken.jpg skipped
    assert "scored 3 images, skipped 1" in proc.stderr
    with open(out) as f:
      rows[flag] = list(csv.DictReader(f))
  assert [r["path"] for r in rows["--model_dir"]] == \
      [r["path"] for r in rows["--saved_model"]]
  for a, b in zip(rows["--model_dir"], rows["--saved_model"]):
    for key in a:
      if key != "path":
        assert abs(float(a[key]) - float(b[key])) <= TOL, (key, a, b)


@pytest.mark.slow
def test_nima_export_errors_are_one_line(models, tmp_path):
  proc = _run("nima_export", "--model_dir", models["can_dir"], "--kind",
              "scorer", "--export_dir", str(tmp_path / "e"))
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert "needs one trained as 'nima'" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_enhance_saved_model_equals_model_dir(models, tmp_path):
  folder = tmp_path / "inputs"
  folder.mkdir()
  for name, data in helpers.enhancer_requests().items():
    (folder / name).write_bytes(data)
  outputs = {}
  for flag, source in (("--model_dir", models["can_dir"]),
                       ("--saved_model", os.path.dirname(models["enhancer"]))):
    out_dir = tmp_path / flag[2:]
    proc = _run("enhance", flag, source, str(folder), "--output_dir",
                str(out_dir), "--bit_depth", "16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs[flag] = {n: images.read_image(str(out_dir / n))
                     for n in sorted(os.listdir(out_dir))}
  assert sorted(outputs["--model_dir"]) == ["astronaut.png", "coffee.png"]
  assert sorted(outputs["--saved_model"]) == sorted(outputs["--model_dir"])
  for name, image in outputs["--model_dir"].items():
    # 16-bit PNG: equal up to one quantization level of 1/65535.
    assert np.abs(outputs["--saved_model"][name] - image).max() <= 2e-5
