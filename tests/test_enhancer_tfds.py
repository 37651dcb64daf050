"""The enhancer from TFDS records: build-tfds (with or without Beam), the
records' pairs through the same input steps as the loose files, and
enhance-train / enhance-eval --data_source tfds end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import enhance_helpers
from nima_enhance.data import fivek
from nima_enhance.data import fivek_pipeline
from nima_enhance.data import tfds as builders
from nima_enhance.data.tfds import readers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("astronaut", "coffee", "chelsea", "rocket", "brick")


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("fivek"))
  enhance_helpers.make_pairs(path, NAMES, size=(24, 32))
  with open(os.path.join(path, "input", "99_broken.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n not really")  # skipped, named by find_pairs
  return path


@pytest.fixture(scope="module")
def tfds_dir(pairs_dir, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  builders.build("mit_adobe_fivek_pairs", path, pairs_dir,
                 config="local_laplacian")
  return path


def _epoch(dataset, count):
  """One epoch's elements, in a canonical order."""
  items = [(s.numpy(), t.numpy()) for s, t in dataset.take(count)]
  return sorted(items, key=lambda st: float(st[0].sum()))


def test_records_feed_the_same_pixels_as_the_files(pairs_dir, tfds_dir):
  files, _ = fivek.find_pairs(pairs_dir, "local_laplacian", "train")
  records = readers.fivek_train_pairs(tfds_dir, "local_laplacian")
  assert len(records) == len(files) == 3
  from_files = _epoch(fivek_pipeline.make_train_dataset(
      files, max_side=16, seed=3).unbatch(), 3)
  from_records = _epoch(fivek_pipeline.make_train_dataset(
      records, max_side=16, seed=3).unbatch(), 3)
  for (fs, ft), (rs, rt) in zip(from_files, from_records):
    assert fs.shape == rs.shape == (12, 16, 3)
    np.testing.assert_array_equal(fs, rs)
    np.testing.assert_array_equal(ft, rt)
  # Resume: skipping k elements replays what an uninterrupted run sees next.
  whole = [s.numpy() for s, _ in
           fivek_pipeline.make_train_dataset(records, seed=5).take(5)]
  resumed = [s.numpy() for s, _ in
             fivek_pipeline.make_train_dataset(records, seed=5,
                                               start_example=3).take(2)]
  np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[3:]))


def test_eval_pairs_match_the_files(pairs_dir, tfds_dir):
  files, _ = fivek.find_pairs(pairs_dir, "local_laplacian", "test")
  expected = {name: (s, t) for name, s, t in fivek.iterate_pairs(files)}
  got = {name: (s, t) for name, s, t in
         readers.iterate_fivek_pairs(tfds_dir, "local_laplacian", "test")}
  assert sorted(got) == sorted(expected) == ["03_rocket", "04_brick"]
  for name, (source, target) in got.items():
    # The graph decoder and the numpy one differ by float rounding only.
    np.testing.assert_allclose(source, expected[name][0], atol=1e-6)
    np.testing.assert_allclose(target, expected[name][1], atol=1e-6)


def test_beam_build_writes_the_same_examples(pairs_dir, tfds_dir, tmp_path):
  pytest.importorskip("apache_beam")
  from nima_enhance.data import beam_runner  # pylint: disable=g-import-not-at-top
  runner, options = beam_runner.pipeline_options("DirectRunner")
  beam_dir = str(tmp_path / "beam")
  builder = builders.build("mit_adobe_fivek_pairs", beam_dir, pairs_dir,
                           config="local_laplacian", beam_runner=runner,
                           beam_options=options)
  assert builder.info.splits["train"].num_examples == 3
  for split in ("train", "test"):
    def examples(data_dir, split=split):
      return sorted((ex["name"].numpy(), ex["input_bytes"].numpy(),
                     ex["target_bytes"].numpy()) for ex in readers.load_builder(
                         "mit_adobe_fivek_pairs", data_dir, "local_laplacian")
                    .as_dataset(split=split))
    assert examples(beam_dir) == examples(tfds_dir)


def _run(module, *args):
  env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run([sys.executable, "-m", f"nima_enhance.bin.{module}",
                         *args], capture_output=True, text=True, env=env,
                        timeout=300, cwd=REPO, check=False)
  return proc.returncode, proc.stdout, proc.stderr.strip().splitlines()


@pytest.mark.slow
def test_build_tfds_then_enhance_train_and_eval(pairs_dir, tmp_path):
  data_dir = str(tmp_path / "tfds")
  code, out, err = _run("build_tfds", "--dataset", "mit_adobe_fivek_pairs",
                        "--config", "local_laplacian", "--manual_dir",
                        pairs_dir, "--data_dir", data_dir)
  # 99_broken.png is skipped and counted, so the build exits 1 (README).
  assert code == 1, err[-20:]
  assert "train 3" in out and "test 2" in out
  model_dir = str(tmp_path / "model")
  tiny = ["--gin_file", "demo/enhance_small.gin",
          "--gin_bindings", "perceptual_loss.gamma = 0.0",
          "--gin_bindings", "build_can.width = 4",
          "--gin_bindings", "build_can.depth = 3",
          "--gin_bindings", "build_can.dilations = [1, 2]",
          "--gin_bindings", "train_loop.num_steps = 4",
          "--gin_bindings", "train_loop.checkpoint_every = 2",
          "--gin_bindings", "train_loop.progress = False"]
  code, out, err = _run("enhance_train", "--data_source", "tfds",
                        "--tfds_data_dir", data_dir, "--model_dir", model_dir,
                        *tiny)
  assert code == 0, err[-20:]
  assert "enhance-train: step 4" in out
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
  with open(os.path.join(model_dir, "model_spec.json")) as f:
    spec = json.load(f)
  assert spec["data_source"] == "tfds" and spec["target"] == "local_laplacian"
  # enhance-eval's code path on the records' test split (in process: one
  # binary start less).
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  from nima_enhance.enhance import evaluate as enhance_eval  # pylint: disable=g-import-not-at-top
  result = enhance_eval.evaluate_enhancer(
      data_dir, "local_laplacian", model_dir, str(tmp_path / "eval"),
      num_grids=0, data_source="tfds")
  assert result["num_images"] == 2
  assert sorted(r["name"] for r in result["per_image"]) == ["03_rocket",
                                                             "04_brick"]
  # The records carry their split; a split file is refused in one line.
  with pytest.raises(config.ConfigError, match="--split_file"):
    enhance_eval.evaluate_enhancer(data_dir, "local_laplacian", model_dir,
                                  str(tmp_path / "eval2"), split_file=__file__,
                                  data_source="tfds")
