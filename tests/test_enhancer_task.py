"""EnhancerTask's choice of the frozen NIMA (paper: NIMA(Inception-v2))."""

import os

import gin
import pytest

import enhance_helpers
from nima_enhance import config
from nima_enhance.train import enhancer_task


pytestmark = pytest.mark.usefixtures("clean_gin")  # conftest.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("pairs"))
  enhance_helpers.make_pairs(root, ["astronaut", "coffee"], size=(16, 24))
  return root


def test_nima_gin_configs_name_inception_v2_and_fail_clearly(data_dir,
                                                             tmp_path):
  missing = str(tmp_path / "runs" / "nima_inception_v2")
  config.parse_gin(["enhance/tone_nima.gin"],
                   [f"perceptual_nima.model_dir = {missing!r}"],
                   finalize=False)
  assert gin.query_parameter("perceptual_nima.expected_backbone") == \
      "inception_v2"
  with pytest.raises(config.ConfigError,
                     match="nima/inception_v2.gin --model_dir"):
    enhancer_task.EnhancerTask(data_dir, "local_laplacian")


def test_gin_default_nima_is_used_and_flag_overrides(data_dir, tmp_path):
  default_dir = enhance_helpers.make_nima_dir(str(tmp_path / "default"))
  flag_dir = enhance_helpers.make_nima_dir(str(tmp_path / "flag"))
  config.parse_gin(["enhance/tone_nima.gin"],
                   [f"perceptual_nima.model_dir = {default_dir!r}"],
                   finalize=False)
  task = enhancer_task.EnhancerTask(data_dir, "local_laplacian")
  assert task.nima_model_dir == os.path.abspath(default_dir)
  task = enhancer_task.EnhancerTask(data_dir, "local_laplacian",
                                    nima_model_dir=flag_dir)
  assert task.nima_model_dir == os.path.abspath(flag_dir)
  # The small test NIMA is not Inception-v2: used anyway (logged).
  task.load_nima()
  assert task.nima is not None and not task.nima.trainable


def test_plain_l2_needs_no_nima(data_dir):
  config.parse_gin(["enhance/tone_l2.gin"], [], finalize=False)
  task = enhancer_task.EnhancerTask(data_dir, "local_laplacian")
  assert task.gamma == 0.0 and task.nima_model_dir is None
