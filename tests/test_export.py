"""nima_enhance.serving.export in process: layout, signatures, equivalence.

Every SavedModel output is compared with the restored checkpoint run through
the library's own path (scoring.score_files / inference.load_enhancer) on
real photos encoded as JPEG and PNG. The model dirs, exports and photo files
are conftest's session fixtures, shared with tests/test_saved_model.py.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import serving_helpers as helpers
from nima_enhance import scoring
from nima_enhance.data import ava_pipeline
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.enhance import inference
from nima_enhance.serving import export
from nima_enhance.serving import saved_model

TOL = 1e-4


def test_versioned_layout_and_metadata(nima_dir, scorer_export):
  base, path = scorer_export
  assert os.path.dirname(path) == base
  assert os.path.basename(path).isdigit()
  assert os.listdir(base) == [os.path.basename(path)]  # no temp folder left
  for name in ("saved_model.pb", "variables/variables.index",
               "assets.extra/model_metadata.json",
               "assets.extra/operative_config.gin"):
    assert os.path.isfile(os.path.join(path, name)), name
  with open(os.path.join(path, "assets.extra", "operative_config.gin")) as f:
    assert f.read() == f"train_loop.num_steps = {helpers.NIMA_STEP}\n"
  # The export base resolves to the latest version.
  meta = saved_model.read_metadata(base)
  assert meta["kind"] == "scorer"
  assert meta["build_nima"] == {"backbone": "small_cnn", "dropout": 0.1}
  assert meta["preprocessing"] == helpers.PREPROCESSING
  assert meta["training_step"] == helpers.NIMA_STEP
  assert meta["source_checkpoint"] == os.path.join(nima_dir, "ckpt-1")
  assert meta["default_signature"] == "score_image_bytes"
  assert set(meta["signatures"]) == {"score_image_bytes", "score_images"}


def test_later_exports_get_larger_versions(nima_dir, tmp_path):
  base = str(tmp_path)
  first = export.export_model(nima_dir, base, version=5)
  second = export.export_model(nima_dir, base)  # same second as nothing
  third = export.export_model(nima_dir, base)
  versions = [int(os.path.basename(p)) for p in (first, second, third)]
  assert versions[0] < versions[1] < versions[2]
  assert saved_model.resolve_saved_model(base) == third
  with pytest.raises(saved_model.ExportError, match="exists"):
    export.export_model(nima_dir, base, version=5)
  assert sorted(os.listdir(base)) == sorted(map(str, versions))


def test_wrong_kind_is_refused(nima_dir, can_dir, tmp_path):
  with pytest.raises(saved_model.ExportError, match="enhancer"):
    export.export_model(nima_dir, str(tmp_path), kind="enhancer")
  with pytest.raises(saved_model.ExportError, match="scorer"):
    export.export_model(can_dir, str(tmp_path), kind="scorer")
  with pytest.raises(FileNotFoundError):
    export.export_model(str(tmp_path), str(tmp_path / "e"), kind="scorer")
  assert not os.path.exists(tmp_path / "e")


def test_scorer_signatures_match_checkpoint(nima_dir, scorer_export,
                                           photo_files):
  loaded = tf.saved_model.load(scorer_export[1])
  assert set(loaded.signatures) == {"serving_default", "score_image_bytes",
                                    "score_images"}
  reference = list(scoring.score_files(scoring.load_nima(nima_dir),
                                       photo_files))
  expected = np.stack([r.distribution for r in reference])
  data = [open(p, "rb").read() for p in photo_files]
  for name in ("serving_default", "score_image_bytes"):
    out = loaded.signatures[name](images=tf.constant(data))
    np.testing.assert_allclose(out["distribution"].numpy(), expected,
                               atol=TOL, rtol=0)
    np.testing.assert_allclose(out["mean"].numpy(),
                               [r.mean for r in reference], atol=TOL, rtol=0)
    np.testing.assert_allclose(out["std"].numpy(),
                               [r.std for r in reference], atol=TOL, rtol=0)
  # score_images: decoded pixels in 0..255, resized inside the graph; a
  # client decoding as the scorer does (reduced toward its first resize,
  # ava_pipeline.decode_size) gets the bytes signature's scores.
  pixels = images.decode_image_bytes(
      data[0],
      target_size=ava_pipeline.decode_size(helpers.PREPROCESSING)) * 255.0
  out = loaded.signatures["score_images"](images=tf.constant(pixels[None]))
  np.testing.assert_allclose(out["distribution"].numpy()[0], expected[0],
                             atol=TOL, rtol=0)


def test_bad_request_is_invalid_argument_and_model_keeps_serving(
    scorer_export, enhancer_export):
  scorer = tf.saved_model.load(scorer_export[1]).signatures["serving_default"]
  enhancer = tf.saved_model.load(
      enhancer_export[1]).signatures["serving_default"]
  good = helpers.scorer_requests()["astronaut.jpg"]
  for bad in (b"", b"this is not an image", good[:200]):
    with pytest.raises(tf.errors.InvalidArgumentError):
      scorer(images=tf.constant([good, bad]))
    with pytest.raises(tf.errors.InvalidArgumentError):
      enhancer(image=tf.constant(bad))
  with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
    scorer(images=tf.constant([b""]))
  assert scorer(images=tf.constant([good]))["mean"].shape == (1,)
  assert enhancer(image=tf.constant(good))["image"].dtype == tf.string


def test_enhancer_signatures_match_checkpoint(can_dir, enhancer_export):
  loaded = tf.saved_model.load(enhancer_export[1])
  assert set(loaded.signatures) == {"serving_default", "enhance_image_bytes",
                                    "enhance", "enhance_image_bytes_rest"}
  bundle = inference.load_enhancer(can_dir)
  shapes = set()
  for data in helpers.enhancer_requests().values():
    image = images.decode_image_bytes(data)
    expected = bundle(image)
    shapes.add(image.shape)
    # Float signature, two sizes through the same loaded model.
    got = loaded.signatures["enhance"](images=tf.constant(image[None]))
    assert got["images"].shape == (1,) + image.shape
    np.testing.assert_allclose(got["images"].numpy()[0], expected, atol=TOL,
                               rtol=0)
    # Bytes signature: an 8-bit PNG of the same size; rounding matches
    # image_write.quantize except where the float differs across a .5 boundary.
    png = loaded.signatures["serving_default"](image=tf.constant(data))
    decoded = tf.io.decode_png(png["image"].numpy()).numpy()
    assert decoded.dtype == np.uint8 and decoded.shape == image.shape
    diff = np.abs(decoded.astype(int)
                  - image_write.quantize(expected).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    rest = loaded.signatures["enhance_image_bytes_rest"](image=tf.constant(data))
    assert rest["image_bytes"].numpy() == png["image"].numpy()
  assert len(shapes) == 2
  meta = saved_model.read_metadata(enhancer_export[0])
  assert meta["kind"] == "enhancer" and meta["png_bit_depth"] == 8
  assert meta["build_can"] == helpers.CAN_ARGS
  assert meta["training_step"] == helpers.CAN_STEP
  assert meta["operative_config"] is None  # the fixture dir has none
