"""Shared pytest set-up: quiet TF, no network, small real photos."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# tensorflow-datasets must never try cloud storage in tests.
os.environ.setdefault("TFDS_DISABLE_GCS", "1")
os.environ.setdefault("NO_GCE_CHECK", "true")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: end-to-end test; deselect with -m 'not slow'")


@pytest.fixture(scope="session")
def real_photo():
  """scikit-image's bundled 'astronaut' photo, float32 RGB in [0, 1]."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  return data.astronaut().astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def real_photos():
  """A few bundled real colour photos (float32 RGB [0, 1]), keyed by name."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  names = ["astronaut", "coffee", "chelsea", "rocket"]
  return {n: getattr(data, n)().astype(np.float32) / 255.0 for n in names}


@pytest.fixture(scope="session")
def astronaut_uint8():
  """scikit-image's astronaut photo, uint8 512x512x3."""
  from skimage import data  # pylint: disable=g-import-not-at-top
  return data.astronaut()


@pytest.fixture(scope="module")
def ava_dir(tmp_path_factory):
  """A small synthetic AVA folder (40 images, 48x64) per test module.

  Modules that need another size or count define their own `ava_dir`.
  """
  from nima_enhance.data import synthetic  # pylint: disable=g-import-not-at-top
  root = str(tmp_path_factory.mktemp("ava"))
  synthetic.make_synthetic_ava(root, num_images=40, image_size=(48, 64))
  return root


def _write_fivek_pair(root, name, image, target=None,
                      target_name="local_laplacian", ext="png"):
  from nima_enhance.data import image_write  # pylint: disable=g-import-not-at-top
  image_write.write_image(os.path.join(root, "input", f"{name}.{ext}"), image)
  if target is not None:
    image_write.write_image(os.path.join(root, target_name, f"{name}.png"),
                            target, bit_depth=16)


@pytest.fixture()
def write_fivek_pair():
  """write(root, name, image, target=None, target_name=..., ext="png"):
  root/input/<name>.<ext> and, with a target, root/<target_name>/<name>.png
  (16-bit)."""
  return _write_fivek_pair


@pytest.fixture()
def fivek_dir(tmp_path, real_photos):
  """A FiveK-style folder of five 30x40 pairs (a-e; target = 1 - input),
  fresh per test (tests damage or remove its files)."""
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  root = str(tmp_path)
  photos = list(real_photos.values())
  for i, name in enumerate(["e", "a", "d", "b", "c"]):
    image = images.resize(photos[i % len(photos)], (30, 40))
    _write_fivek_pair(root, name, image, target=1.0 - image)
  return root


@pytest.fixture()
def op_determinism():
  """Runs a test with TensorFlow's op determinism on, then off again.

  For tests whose claim depends on a short training run: seeded training is
  otherwise not bit-reproducible on CPU (two runs of the same seeded NIMA
  training differed by up to 0.06 in a weight), so an effect measured once
  could vanish in another run. Determinism is switched off afterwards because
  it is process-wide and the other tests run at normal speed without it.
  """
  from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top
  tf_config.enable_op_determinism()
  yield
  tf_config.disable_op_determinism()


@pytest.fixture()
def clean_gin():
  """Empties gin's global configuration before and after a test.

  Modules whose tests parse gin use it for every test:
  `pytestmark = pytest.mark.usefixtures("clean_gin")`.
  """
  import gin  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  yield
  gin.clear_config()


# Serving fixtures: the model dirs, their exports and photo files that
# tests/test_export.py (the writing side) and tests/test_saved_model.py (the
# loading side) share; session-scoped so each export is written once. A
# module that needs its own model dir defines a fixture of the same name.
# The project is imported inside them, as skimage is above: conftest loads
# for every test, and tests that never serve need not load the package.


@pytest.fixture(scope="session")
def nima_dir(tmp_path_factory):
  import serving_helpers  # pylint: disable=g-import-not-at-top
  return serving_helpers.make_nima_dir(str(tmp_path_factory.mktemp("nima")))


@pytest.fixture(scope="session")
def can_dir(tmp_path_factory):
  import serving_helpers  # pylint: disable=g-import-not-at-top
  return serving_helpers.make_can_dir(str(tmp_path_factory.mktemp("can")))


@pytest.fixture(scope="session")
def scorer_export(nima_dir, tmp_path_factory):
  """(export base, version folder) of the nima_dir scorer."""
  from nima_enhance.serving import export  # pylint: disable=g-import-not-at-top
  base = str(tmp_path_factory.mktemp("scorer_export"))
  return base, export.export_model(nima_dir, base, kind="scorer")


@pytest.fixture(scope="session")
def enhancer_export(can_dir, tmp_path_factory):
  """(export base, version folder) of the can_dir enhancer."""
  from nima_enhance.serving import export  # pylint: disable=g-import-not-at-top
  base = str(tmp_path_factory.mktemp("enhancer_export"))
  return base, export.export_model(can_dir, base, kind="enhancer")


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory):
  """serving_helpers.scorer_requests() written to files (JPEG and PNG)."""
  import serving_helpers  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("photos")
  paths = []
  for name, data in serving_helpers.scorer_requests().items():
    path = folder / name
    path.write_bytes(data)
    paths.append(str(path))
  return paths
