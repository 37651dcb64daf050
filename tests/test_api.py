"""The public API: nima_enhance.Scorer and nima_enhance.Enhancer.

Checked against independent references: the model called directly on pixels
resized by numpy/TF outside the API (scorer), the Keras CAN called on the
image (enhancer), and the same results from a model dir and its SavedModel.
"""

import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import nima_enhance
import serving_helpers as helpers
from nima_enhance import metrics
from nima_enhance import scoring
from nima_enhance.data import images
from nima_enhance.models import can
from nima_enhance.serving import export


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("api")
  nima_dir = helpers.make_nima_dir(str(root / "nima"))
  can_dir = helpers.make_can_dir(str(root / "can"))
  photos = root / "photos"
  photos.mkdir()
  for name in ("astronaut", "coffee"):
    Image.fromarray(helpers.photo_uint8(name)[::4, ::4]).save(
        photos / f"{name}.png")
  (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
  return {"nima": nima_dir, "can": can_dir, "photos": str(photos),
          "root": root}


def _reference_distribution(nima_dir, image01):
  """NIMA's distribution for a float image, computed outside the API."""
  bundle = scoring.load_nima(nima_dir)
  pixels = scoring.eval_pixels_tf(tf.constant(image01), bundle.preprocessing)
  return bundle.model(pixels[None], training=False).numpy()[0]


def test_scorer_paths_arrays_pil_and_skips(dirs):
  scorer = nima_enhance.Scorer.load(dirs["nima"])
  astronaut = os.path.join(dirs["photos"], "astronaut.png")
  array = np.asarray(Image.open(astronaut))
  results = scorer.score([astronaut, array, Image.open(astronaut),
                          np.zeros((4, 4, 5), np.uint8)])
  expected = _reference_distribution(dirs["nima"], array / np.float32(255.0))
  for result in results[:3]:
    assert result.skipped is None
    np.testing.assert_allclose(result.distribution, expected, atol=1e-5)
    scores = np.arange(1, 11)
    assert result.mean == pytest.approx(float(expected @ scores), abs=1e-4)
    assert result.std == pytest.approx(float(np.sqrt(
        expected @ (scores - expected @ scores) ** 2)), abs=1e-4)
  assert results[0].name == astronaut and results[1].name == "array[1]"
  assert results[3].distribution is None and results[3].mean is None
  assert "shape" in results[3].skipped
  # A folder: its images in order, the damaged file skipped with a reason.
  folder = scorer.score(dirs["photos"])
  by_name = {os.path.basename(r.name): r for r in folder}
  assert set(by_name) == {"astronaut.png", "coffee.png", "broken.jpg"}
  assert by_name["broken.jpg"].skipped and by_name["coffee.png"].skipped is None
  # Scored as nima-score's code path scores it.
  [direct] = list(scoring.score_files(scoring.load_nima(dirs["nima"]),
                                      [astronaut]))
  np.testing.assert_allclose(results[0].distribution, direct.distribution,
                             atol=1e-6)
  assert results[0].mean == pytest.approx(
      float(metrics.mean_score(direct.distribution)), abs=1e-5)


def test_scorer_same_results_from_saved_model(dirs):
  base = export.export_model(dirs["nima"], str(dirs["root"] / "export_nima"),
                             kind="scorer")
  from_dir = nima_enhance.Scorer.load(dirs["nima"])
  from_export = nima_enhance.Scorer.load(os.path.dirname(base))
  assert from_export.kind == "saved_model"
  coffee = os.path.join(dirs["photos"], "coffee.png")
  array = np.asarray(Image.open(coffee))
  a = from_dir.score([coffee, array])
  b = from_export.score([coffee, array])
  for x, y in zip(a, b):
    np.testing.assert_allclose(x.distribution, y.distribution, atol=1e-4)
  with pytest.raises(FileNotFoundError, match="not a model dir"):
    nima_enhance.Scorer.load(dirs["photos"])


def test_enhancer_arrays_keep_their_type_and_files(dirs, tmp_path):
  enhancer = nima_enhance.Enhancer.load(dirs["can"], tile_size=0,
                                        jit_compile=False)
  photo = helpers.photo_uint8("coffee")[::8, ::8]
  model = can.build_can(**helpers.CAN_ARGS)
  tf.train.Checkpoint(model=model).restore(
      tf.train.latest_checkpoint(dirs["can"])).expect_partial()
  expected = np.clip(model(photo[None] / np.float32(255.0),
                           training=False).numpy()[0], 0.0, 1.0)
  as_float = enhancer.enhance(photo / np.float32(255.0))
  assert as_float.dtype == np.float32 and as_float.shape == photo.shape
  np.testing.assert_allclose(as_float, expected, atol=1e-5)
  as_uint8 = enhancer.enhance(photo)
  assert as_uint8.dtype == np.uint8
  np.testing.assert_array_equal(as_uint8, np.round(expected * 255))
  # 16-bit in, 16-bit out: x * 257 / 65535 is the same pixel as x / 255.
  as_uint16 = enhancer.enhance(photo.astype(np.uint16) * 257)
  assert as_uint16.dtype == np.uint16
  assert np.abs(as_uint16.astype(np.int64)
                - np.round(expected * 65535)).max() <= 1
  from_pil = enhancer.enhance(Image.fromarray(photo))
  np.testing.assert_array_equal(from_pil, as_uint8)
  # The band schedule (default) gives the same pixels.
  banded = nima_enhance.Enhancer.load(dirs["can"]).enhance(photo)
  assert np.abs(banded.astype(int) - as_uint8.astype(int)).max() <= 1
  result = enhancer.enhance_files([dirs["photos"]], str(tmp_path / "out"))
  assert sorted(os.path.basename(p) for p in result["written"]) == [
      "astronaut.png", "coffee.png"]
  assert [os.path.basename(p) for p in result["skipped"]] == ["broken.jpg"]
  written = images.read_image(os.path.join(str(tmp_path / "out"),
                                           "coffee.png"))
  source = images.read_image(os.path.join(dirs["photos"], "coffee.png"))
  np.testing.assert_allclose(written, enhancer.enhance(source), atol=1 / 255)


def test_pil_images_get_their_exif_orientation():
  """A PIL image stored sideways (EXIF Orientation 6) is read upright, as
  its file would be; numpy arrays are taken as they are."""
  from nima_enhance import api  # pylint: disable=import-outside-toplevel
  stored = np.zeros((2, 3, 3), np.uint8)
  stored[0, 0] = 255  # top-left as stored
  image = Image.fromarray(stored)
  exif = image.getexif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise to display
  buffer = io.BytesIO()
  image.save(buffer, format="PNG", exif=exif)
  upright = api.as_array(Image.open(io.BytesIO(buffer.getvalue())), "x")
  assert upright.shape == (3, 2, 3)
  np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))
  np.testing.assert_array_equal(api.as_array(stored, "x"), stored)
