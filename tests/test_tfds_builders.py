"""TFDS builders `ava` and `mit_adobe_fivek_pairs`, built offline from tiny
manual directories into a temporary data_dir, then read back; and nima-train
on the `ava` records."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.data import image_write
from nima_enhance.data import images
from nima_enhance.data import synthetic
from nima_enhance.data import tfds as builders

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
PREPROCESSING = {"mode": "paper", "image_size": [32, 32], "resize_size": 256,
                 "random_flip": False}


@pytest.fixture(scope="module")
def ava_build(tmp_path_factory):
  manual = str(tmp_path_factory.mktemp("ava_manual"))
  info = synthetic.make_synthetic_ava(manual, num_images=20,
                                      image_size=(32, 32), seed=2)
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  # Built by the build-tfds binary, as a user would.
  proc = subprocess.run(
      [sys.executable, "-m", "nima_enhance.bin.build_tfds", "--dataset", "ava",
       "--manual_dir", manual, "--data_dir", data_dir],
      capture_output=True, text=True, timeout=300, env=ENV)
  assert "ava: " in proc.stdout and "examples in" in proc.stdout
  assert "skipped" in proc.stdout
  builder = builders.load_builder("ava", data_dir)
  # Exit 1 exactly when the build skipped files (README, Input images).
  skipped = builder.info.metadata.get("skipped", {})
  total = sum(sum(v.values()) if isinstance(v, dict) else v
              for v in skipped.values()) if isinstance(skipped, dict) else 0
  assert proc.returncode == (1 if total else 0), proc.stderr[-3000:]
  return manual, info, data_dir, builder


def test_ava_counts_labels_and_skipped(ava_build):
  manual, info, data_dir, builder = ava_build
  ratings = ava.parse_ava_txt(os.path.join(manual, "AVA.txt"))
  splits = {s: ava.split_ids(manual, ratings.image_ids, s)
            for s in ("train", "test")}
  bad = set(info["bad_ids"])
  # Re-open from disk: what a training job sees.
  builder = builders.load_builder("ava", data_dir)
  skipped = builder.info.metadata["skipped"]
  total = 0
  for split, ids in splits.items():
    good = [i for i in ids if i not in bad]
    assert builder.info.splits[split].num_examples == len(good)
    assert skipped[split]["total"] == len(set(ids) & bad)
    total += skipped[split]["total"]
    seen = {}
    for example in builder.as_dataset(split=split):
      image_id = example["image_id"].numpy().decode()
      seen[image_id] = example
    assert sorted(seen) == sorted(good)
    for image_id in good[:3]:
      example = seen[image_id]
      row = ratings.image_ids.index(image_id)
      np.testing.assert_allclose(example["distribution"].numpy(),
                                 ratings.distributions[row], rtol=1e-6)
      assert example["rating_counts"].numpy().sum() == \
          ratings.vote_counts[row]
      with open(ava.image_path(manual, image_id), "rb") as f:
        assert example["image_bytes"].numpy() == f.read()  # stored verbatim
  # The truncated JPEG, the non-image and the missing file.
  assert total == 3


def test_ava_train_dataset_matches_loose_files(ava_build):
  manual, _, data_dir, builder = ava_build
  ratings, _ = ava.load_split(manual, "train")
  first = next(iter(builders.ava_train_dataset(data_dir, PREPROCESSING, 4,
                                               seed=1)))
  pixels, distribution = first
  assert pixels.shape == (4, 32, 32, 3) and distribution.shape == (4, 10)
  assert pixels.dtype == tf.float32 and float(tf.reduce_max(pixels)) <= 255.0
  # Same pixels as the loose-file pipeline for the same image.
  loose = {}
  for image, dist in ava_pipeline.make_dataset(manual, ratings, PREPROCESSING,
                                               64, training=False).unbatch():
    loose[tuple(np.round(dist.numpy(), 6))] = image.numpy()
  for image, dist in zip(pixels.numpy(), distribution.numpy()):
    np.testing.assert_allclose(image, loose[tuple(np.round(dist, 6))],
                               atol=1e-3)
  # Two input pipelines: disjoint shards covering the split.
  shards = []
  for pipeline in range(2):
    ctx = tf.distribute.InputContext(2, pipeline, 2)
    n = builder.info.splits["train"].num_examples // 2
    batch = next(iter(builders.ava_train_dataset(
        data_dir, PREPROCESSING, n, seed=1, input_context=ctx)))
    shards.append({tuple(np.round(d, 6)) for d in batch[1].numpy()})
  assert not shards[0] & shards[1]
  # Resume: skipping k examples continues the same sequence.
  whole = builders.ava_train_dataset(data_dir, PREPROCESSING, 1, seed=1)
  skipped = builders.ava_train_dataset(data_dir, PREPROCESSING, 1, seed=1,
                                       start_example=3)
  expected = [d.numpy() for _, d in whole.take(5)][3:]
  got = [d.numpy() for _, d in skipped.take(2)]
  np.testing.assert_allclose(got, expected)


def test_fivek_pairs_builder(tmp_path, real_photo):
  manual = tmp_path / "fivek"
  (manual / "input").mkdir(parents=True)
  (manual / "local_laplacian").mkdir()
  photo = images.resize(real_photo, (24, 32))
  names = [f"a{i:04d}" for i in range(6)]
  for i, name in enumerate(names):
    shade = photo * (0.5 + 0.1 * i)
    image_write.write_image(str(manual / "input" / f"{name}.jpg"),
                            np.clip(shade, 0, 1))
    if name != "a0005":  # the last input has no target: skipped
      image_write.write_image(str(manual / "local_laplacian" / f"{name}.png"),
                              np.clip(shade ** 0.8, 0, 1), bit_depth=16)
  data_dir = str(tmp_path / "tfds")
  builder = builders.build("mit_adobe_fivek_pairs", data_dir, str(manual),
                           config="local_laplacian")
  # First half of the sorted names trains, second half tests.
  assert builder.info.splits["train"].num_examples == 3
  assert builder.info.splits["test"].num_examples == 2
  assert builder.info.metadata["skipped"] == {"train": 0, "test": 1}
  pairs = list(builders.fivek_pairs_dataset(data_dir, "local_laplacian",
                                            "test"))
  assert sorted(n.numpy().decode() for n, _, _ in pairs) == ["a0003", "a0004"]
  for name, source, target in pairs:
    name = name.numpy().decode()
    assert source.shape == (24, 32, 3) and target.shape == (24, 32, 3)
    expected = images.read_image(str(manual / "local_laplacian" /
                                      f"{name}.png"))
    # 16 bits survive the round trip.
    np.testing.assert_allclose(target.numpy(), expected, atol=1e-6)


@pytest.mark.slow
def test_nima_train_reads_tfds(ava_build, tmp_path):
  _, _, data_dir, _ = ava_build
  model_dir = str(tmp_path / "m")
  proc = subprocess.run(
      [sys.executable, "-m", "nima_enhance.bin.nima_train", "--data_source",
       "tfds", "--tfds_data_dir", data_dir, "--model_dir", model_dir,
       "--gin_file", "nima/from_scratch_small.gin",
       "--gin_bindings", "preprocessing_config.image_size = (32, 32)",
       "--gin_bindings", "train_loop.global_batch_size = 4",
       "--gin_bindings", "train_loop.num_steps = 3"],
      capture_output=True, text=True, timeout=180, env=ENV)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "nima-train: step 3 " in proc.stdout
  assert "examples from TFDS ava" in proc.stderr
  assert os.path.isfile(os.path.join(model_dir, "ckpt-3.index"))
