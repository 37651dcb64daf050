"""The one configuration module: gin includes and "binding or default"."""

import logging

import gin
import pytest

from nima_enhance import config
from nima_enhance import losses


pytestmark = pytest.mark.usefixtures("clean_gin")  # conftest.py


def test_includes_resolve_quietly_with_file_line_numbers(tmp_path, caplog):
  (tmp_path / "mine.gin").write_text(
      "# my run\ninclude 'enhance/tone_nima.gin'\n"
      "perceptual_loss.gamma = 0.5\n")
  with caplog.at_level(logging.INFO):
    config.parse_gin([str(tmp_path / "mine.gin")], finalize=False)
  # tone_nima.gin itself includes enhance/common_paper.gin.
  assert gin.query_parameter("EnhancerTask.learning_rate") == 1e-4
  assert gin.query_parameter("perceptual_loss.gamma") == 0.5
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
  gin.clear_config()
  (tmp_path / "bad.gin").write_text(
      "include 'enhance/common_paper.gin'\n\nperceptual_loss.gamma = 'x\n")
  with pytest.raises(config.ConfigError, match=r"bad.gin: .*\(line 3\)"):
    config.parse_gin([str(tmp_path / "bad.gin")], finalize=False)
  (tmp_path / "loop.gin").write_text("include 'loop.gin'\n")
  with pytest.raises(config.ConfigError, match="includes itself"):
    config.parse_gin([str(tmp_path / "loop.gin")], finalize=False)
  (tmp_path / "missing.gin").write_text("include 'nowhere/x.gin'\n")
  with pytest.raises(config.ConfigError, match="include 'nowhere/x.gin'"):
    config.parse_gin([str(tmp_path / "missing.gin")], finalize=False)


def test_configured_arguments_explicit_then_binding_then_default():
  gin.parse_config("perceptual_loss.gamma = 0.25")
  args = config.configured_arguments(losses.perceptual_loss,
                                     ("gamma", "fidelity", "huber_delta"),
                                     huber_delta=0.5)
  assert args == {"gamma": 0.25, "fidelity": "l2", "huber_delta": 0.5}
  with pytest.raises(TypeError, match="unexpected"):
    config.configured_arguments(losses.perceptual_loss, nope=1)
