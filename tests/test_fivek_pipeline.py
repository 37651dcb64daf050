"""The enhancer's training pipeline over FiveK-style pairs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance import config
from nima_enhance.data import fivek
from nima_enhance.data import fivek_pipeline
from nima_enhance.data import image_write
from nima_enhance.data import images


def test_training_pipeline_resizes_pairs_identically(tmp_path, real_photo,
                                                     write_fivek_pair):
  root = str(tmp_path)
  image = images.resize(real_photo, (50, 100))
  target = np.clip(image ** 0.5, 0, 1)
  write_fivek_pair(root, "x", image, target)
  pairs, _ = fivek.find_pairs(root, "local_laplacian", "all")
  dataset = fivek_pipeline.make_train_dataset(pairs, batch_size=1, max_side=64)
  source, ref = next(iter(dataset))
  assert source.shape == (1, 32, 64, 3) and ref.shape == (1, 32, 64, 3)
  # The one shared resize path, applied to the decoded files.
  want_source = images.resize(images.read_image(pairs.inputs[0]), (32, 64))
  want_ref = images.resize(images.read_image(pairs.targets[0]), (32, 64))
  np.testing.assert_allclose(source[0], want_source, atol=1e-5)
  np.testing.assert_allclose(ref[0], want_ref, atol=1e-5)
  # Small images are not upscaled; 16-bit targets keep their precision.
  source, ref = next(iter(fivek_pipeline.make_train_dataset(pairs,
                                                            max_side=640)))
  assert source.shape == (1, 50, 100, 3)
  np.testing.assert_allclose(ref[0], images.read_image(pairs.targets[0]),
                             atol=1e-6)
  off_grid = np.abs(ref.numpy() * 255 - np.round(ref.numpy() * 255))
  assert off_grid.max() > 0.05


def test_batches_need_crops_and_crop_pairs_together(fivek_dir):
  pairs, _ = fivek.find_pairs(fivek_dir, "local_laplacian", "all")
  with pytest.raises(config.ConfigError, match="crop_size"):
    fivek_pipeline.make_train_dataset(pairs, batch_size=2)
  dataset = fivek_pipeline.make_train_dataset(pairs, batch_size=3,
                                              crop_size=(16, 24), seed=4)
  source, target = next(iter(dataset))
  assert source.shape == (3, 16, 24, 3)
  # Targets are 1 - input: the crop windows coincide.
  np.testing.assert_allclose(target, 1.0 - source, atol=2.0 / 255)
  assert float(tf.reduce_min(source)) >= 0 and float(tf.reduce_max(source)) <= 1


def test_start_example_skips_like_a_resumed_run(fivek_dir):
  pairs, _ = fivek.find_pairs(fivek_dir, "local_laplacian", "all")
  full = [s.numpy() for s, _ in
          fivek_pipeline.make_train_dataset(pairs, seed=7).take(8)]
  resumed = [s.numpy() for s, _ in
             fivek_pipeline.make_train_dataset(pairs, seed=7,
                                               start_example=5).take(3)]
  for a, b in zip(full[5:], resumed):
    np.testing.assert_array_equal(a, b)


def test_tiff_inputs_and_evaluation_at_original_size(tmp_path, real_photo):
  import tifffile  # pylint: disable=g-import-not-at-top
  root = str(tmp_path)
  image = images.resize(real_photo, (21, 37))
  os.makedirs(os.path.join(root, "input"))
  tifffile.imwrite(os.path.join(root, "input", "t.tif"),
                   image_write.quantize(image, 16))
  image_write.write_image(os.path.join(root, "local_laplacian", "t.png"), image,
                          bit_depth=16)
  pairs, report = fivek.find_pairs(root, "local_laplacian", "all")
  assert pairs.names == ["t"], report.summary()
  source, _ = next(iter(fivek_pipeline.make_train_dataset(pairs)))
  np.testing.assert_allclose(source[0], image, atol=1e-4)
  [(name, source, target)] = list(fivek.iterate_pairs(pairs))
  assert name == "t" and source.shape == target.shape == (21, 37, 3)


def test_planned_reads_equal_the_graph_parse_and_the_reference(tmp_path,
                                                               real_photo):
  """make_train_dataset reads headers on the host and plans every decode
  (no header parse in the graph). Same pixels as the pairs whose headers
  are unknown (parsed in the graph) and as read_image + resize, for a
  1/2-scale JPEG, an EXIF-6 JPEG, a small (unresized) JPEG and a 16-bit
  grey+alpha target; a target of another size falls back to the parse."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root = str(tmp_path)
  os.makedirs(os.path.join(root, "input"))
  pil = Image.fromarray((real_photo * 255).astype(np.uint8))
  exif = Image.Exif()
  exif[0x0112] = 6
  for name, size, kwargs in (("big", (130, 90), {}),
                             ("rotated", (70, 50), {"exif": exif}),
                             ("small", (30, 20), {})):
    path = os.path.join(root, "input", f"{name}.jpg")
    pil.resize(size, Image.BICUBIC).save(path, quality=90, **kwargs)
    upright = images.read_image(path)
    target = 1.0 - upright
    if name == "small":  # grey + alpha, composited over white when read
      target = np.stack([target[..., 0], upright[..., 1]], -1)
    os.makedirs(os.path.join(root, "local_laplacian"), exist_ok=True)
    tf.io.write_file(os.path.join(root, "local_laplacian", f"{name}.png"),
                     tf.io.encode_png(image_write.quantize(target, 16)))
  pairs, report = fivek.find_pairs(root, "local_laplacian", "all")
  assert pairs.names == ["big", "rotated", "small"], report.summary()
  assert pairs.input_headers is None  # evaluation never reads them
  plans = fivek_pipeline._pair_plans  # pylint: disable=protected-access
  assert plans(pairs, 40) is not None
  pairs = fivek.with_headers(pairs)
  assert pairs.input_headers[:, 0].tolist() == [1, 1, 1]
  assert pairs.input_headers[1].tolist() == [1, 50, 70, 6]
  input_plans, target_plans, sizes = plans(pairs, 40)
  assert sizes.tolist() == [[28, 40], [40, 29], [20, 30]]
  assert input_plans[0] % 24 // 6 == 1  # the 1/2 decode
  assert (target_plans >= images.PNG_PLANS).all()
  unknown = np.tile([0, 0, 0, 1], (3, 1))  # format 0: parsed in the graph
  bare = fivek.Pairs(pairs.names, pairs.inputs, pairs.targets, unknown,
                     unknown)
  assert plans(bare, 40) is None

  def batches(p):
    return [(s[0].numpy(), t[0].numpy()) for s, t in
            fivek_pipeline.make_train_dataset(p, max_side=40, seed=2).take(3)]

  for (source, target), (want_s, want_t) in zip(batches(pairs),
                                                batches(bare)):
    np.testing.assert_allclose(source, want_s, atol=1e-5)
    np.testing.assert_allclose(target, want_t, atol=1e-5)
    name = pairs.names[[s.tolist() for s in sizes].index(
        list(source.shape[:2]))]
    i = pairs.names.index(name)
    for got, path in ((source, pairs.inputs[i]), (target, pairs.targets[i])):
      np.testing.assert_allclose(got, images.read_image(path, max_side=40),
                                 atol=2e-5, err_msg=path)
  # A target of another size than its input: no plan (the graph matches).
  tf.io.write_file(pairs.targets[0], tf.io.encode_png(
      image_write.quantize(np.zeros((9, 13, 3), np.float32), 16)))
  again, _ = fivek.find_pairs(root, "local_laplacian", "all")
  assert plans(again, 40) is None


def test_a_pair_damaged_after_find_pairs_is_skipped(fivek_dir):
  pairs, _ = fivek.find_pairs(fivek_dir, "local_laplacian", "all")
  with open(pairs.targets[1], "r+b") as f:
    f.truncate(60)  # the host-read header still says "a whole PNG"
  names = set()
  for source, target in fivek_pipeline.make_train_dataset(pairs,
                                                          seed=3).take(12):
    assert source.shape == target.shape
    names.add(round(float(tf.reduce_mean(source)), 4))
  want = {round(float(np.mean(images.read_image(p))), 4)
          for i, p in enumerate(pairs.inputs) if i != 1}
  assert names == want  # 12 pairs came: the damaged one skipped
