"""AVA's tf.data pipeline and the NIMA preprocessing (data/ava_pipeline.py).

The datasets read folders checked by `ava.load_split` / `ava.check_images`
(tests/test_ava.py tests those); pixels are compared with the scoring decode
and with an independent numpy reference of the reading rule.
"""

import os

import numpy as np
import pytest

from nima_enhance.data import ava
from nima_enhance.data import ava_pipeline
from nima_enhance.data import image_headers
from nima_enhance.data import synthetic
from resize_reference import np_bilinear


def test_planned_dataset_gives_the_parsed_pixels(ava_dir):
  """make_dataset with the manifest's headers (planned decode) == without
  them (headers parsed in the graph), flips included."""
  ratings, _ = ava.load_split(ava_dir, "all")
  assert ratings.headers is not None
  unknown = ava.AvaRatings(ratings.image_ids, ratings.distributions,
                           ratings.vote_counts)
  for mode in ("paper", "crop"):
    prep = {"mode": mode, "image_size": [24, 30] if mode == "paper"
            else [20, 20], "resize_size": 28, "random_flip": False}
    planned = next(iter(ava_pipeline.make_dataset(ava_dir, ratings, prep, 40,
                                                  training=False)))[0].numpy()
    parsed = next(iter(ava_pipeline.make_dataset(ava_dir, unknown, prep, 40,
                                                 training=False)))[0].numpy()
    np.testing.assert_allclose(planned, parsed, atol=2e-3)
    if mode == "paper":
      paper = parsed
  prep = {"mode": "paper", "image_size": [24, 30], "resize_size": 28,
          "random_flip": True}
  flipped = 0
  for rows in (ratings, unknown):
    batch, labels = next(iter(ava_pipeline.make_dataset(ava_dir, rows, prep, 40,
                                                        training=True, seed=3)))
    order = [next(i for i, d in enumerate(ratings.distributions)
                  if np.allclose(d, label)) for label in labels.numpy()]
    plain = paper[order]
    for got, want in zip(batch.numpy(), plain):
      same = np.abs(got - want).max() < 2e-3
      mirror = np.abs(got - want[:, ::-1]).max() < 2e-3
      assert same or mirror
      flipped += int(mirror and not same)
  assert 10 < flipped < 70  # both paths flip about half


def test_training_dataset_shapes_and_resume(ava_dir):
  ratings, _ = ava.load_split(ava_dir, "all")
  prep = {"mode": "paper", "image_size": [32, 40], "resize_size": 64,
          "random_flip": False}
  dataset = ava_pipeline.make_dataset(ava_dir, ratings, prep, batch_size=4,
                                      training=True, seed=1)
  batches = [labels.numpy() for _, labels in dataset.take(12)]
  pixels, labels = next(iter(dataset))
  assert pixels.shape == (4, 32, 40, 3) and labels.shape == (4, 10)
  assert 0.0 <= float(np.min(pixels)) and float(np.max(pixels)) <= 255.0
  # One epoch (10 batches of 4) covers the whole list: shuffle is global.
  seen = np.concatenate(batches[:10])
  assert len({tuple(np.round(r, 6)) for r in seen}) == 40
  # Skipping 8 examples equals dropping the first two batches (resume).
  resumed = ava_pipeline.make_dataset(ava_dir, ratings, prep, batch_size=4,
                                      training=True, seed=1, start_example=8)
  for expected, (_, got) in zip(batches[2:6], resumed.take(4)):
    np.testing.assert_array_equal(expected, got.numpy())


def test_a_file_damaged_after_the_check_is_skipped(tmp_path):
  """Training drops the batch holding it (map and batch stay fused),
  evaluation only the file; neither stops."""
  root = str(tmp_path)
  synthetic.make_synthetic_ava(root, num_images=12, image_size=(24, 32))
  ratings, _ = ava.load_split(root, "all")
  with open(ava.image_path(root, ratings.image_ids[5]), "r+b") as f:
    f.truncate(300)  # the manifest's plan still says "a whole JPEG"
  prep = {"mode": "paper", "image_size": [16, 20], "resize_size": 32,
          "random_flip": False}
  train = ava_pipeline.make_dataset(root, ratings, prep, batch_size=4,
                                    training=True)
  shapes = [tuple(pixels.shape) for pixels, _ in train.take(6)]
  assert shapes == [(4, 16, 20, 3)] * 6
  evaluation = ava_pipeline.make_dataset(root, ratings, prep, batch_size=4,
                                         training=False)
  assert sum(int(labels.shape[0]) for _, labels in evaluation) == 11


def test_crop_mode_and_eval_dataset(ava_dir):
  ratings, _ = ava.load_split(ava_dir, "test")
  prep = {"mode": "crop", "image_size": [24, 24], "resize_size": 32,
          "random_flip": True}
  dataset = ava_pipeline.make_dataset(ava_dir, ratings, prep, batch_size=3,
                                      training=False)
  total = sum(int(labels.shape[0]) for _, labels in dataset)
  assert total == len(ratings)
  pixels, _ = next(iter(dataset))
  assert pixels.shape[1:] == (24, 24, 3)


def test_training_reader_sees_the_scoring_pixels(tmp_path, real_photo):
  """ava_pipeline.load_pixels_tf (training's fast reader: one header parse,
  reduced decode, resize from uint8) == preprocess_tf of the scoring decode,
  for a 2x-reduced landscape JPEG, a rotated (EXIF 6) portrait at 1.6x, a
  PNG."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray((real_photo * 255).astype(np.uint8))
  exif = Image.Exif()
  exif[0x0112] = 6
  files = {"wide.jpg": ((200, 130), {}), "rotated.jpg": ((130, 100),
                                                         {"exif": exif}),
           "small.png": ((90, 70), {})}
  for prep in ({"mode": "paper", "image_size": [48, 64], "resize_size": 64,
                "random_flip": False},
               {"mode": "crop", "image_size": [40, 40], "resize_size": 48,
                "random_flip": False}):
    for name, (size, kwargs) in files.items():
      path = str(tmp_path / name)
      pil.resize(size, Image.BICUBIC).save(path, **kwargs)
      data = tf.constant(open(path, "rb").read())
      fast = ava_pipeline.load_pixels_tf(data, prep, training=False).numpy()
      scoring_side = ava_pipeline.preprocess_tf(
          images.read_image(path,
                            target_size=ava_pipeline.decode_size(prep)),
          prep, training=False).numpy()
      assert fast.shape == tuple(prep["image_size"]) + (3,)
      np.testing.assert_allclose(fast, scoring_side, atol=2e-3)
      # The planned reader (header from the manifest check, no parse).
      plan = images.decode_plan_tf(image_headers.header_fields(data.numpy()),
                                   ava_pipeline.decode_size(prep))
      assert (int(plan) >= 0) == name.endswith(".jpg")
      planned = ava_pipeline.load_pixels_tf(
          data, prep, training=False, plan=plan,
          all_planned=int(plan) >= 0).numpy()
      np.testing.assert_allclose(planned, scoring_side, atol=2e-3)
      assert np.abs(fast - scoring_side).max() < 2e-3
      assert fast.min() >= 0.0 and fast.max() <= 255.0


def _rule_reference(data, size):
  """An independent reference of the reading rule for a JPEG (x255): the
  libjpeg scale from the upright size (the largest of 1, 2, 4, 8 with both
  sides >= scale * size), EXIF 6 turned upright, then per the factor left:
  the triangle filter from 2x on an axis, else numpy bilinear after the
  means of neighbouring pixels along the axes shrinking by 1.5-2x."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  pil = Image.open(io.BytesIO(data))
  rotated = pil.getexif().get(0x0112, 1) == 6
  upright = (pil.width, pil.height) if rotated else (pil.height, pil.width)
  ratio = max(r for r in (1, 2, 4, 8)
              if r == 1 or (upright[0] >= r * size[0]
                            and upright[1] >= r * size[1]))
  pixels = tf.io.decode_jpeg(data, channels=3, ratio=ratio).numpy()
  pixels = np.rot90(pixels, -1) if rotated else pixels  # EXIF 6: 90 deg CW
  pixels = pixels.astype(np.float64)
  if any(n >= 2 * s for n, s in zip(pixels.shape, size)):
    return tf.image.resize(pixels, size, antialias=True).numpy()
  for axis in (0, 1):  # 1.5 <= f < 2: means of neighbouring pixels first
    n = pixels.shape[axis]
    if 2 * n >= 3 * size[axis]:
      pixels = (np.take(pixels, range(n - 1), axis)
                + np.take(pixels, range(1, n), axis)) / 2
  return np_bilinear(np_bilinear(pixels, size[0], 0), size[1], 1)


@pytest.fixture(scope="module")
def photo_ava(tmp_path_factory, real_photo):
  """An AVA folder of real-photo JPEGs whose plans cover 1/1, 1/2 and 1/8
  decodes, the rule's bilinear, 2-tap and triangle filters, EXIF 6; ids
  in the order written."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root = str(tmp_path_factory.mktemp("photo_ava"))
  os.makedirs(os.path.join(root, "images"))
  pil = Image.fromarray((real_photo * 255).astype(np.uint8))
  exif = Image.Exif()
  exif[0x0112] = 6
  # (width, height), EXIF: for 48x64 (paper) they take 1/1 bilinear at
  # 1.25x; 1/1 at 1.67x x 0.94x (portrait: 2-tap means of rows); 1/2
  # bilinear; 1/1 triangle (3.1x wide); 1/8 bilinear; EXIF 6 at 1/2; 1/1 at
  # 1.6x x 1.7x (2-tap means of rows and columns).
  files = [((80, 60), {}), ((60, 80), {}), ((130, 100), {}), ((200, 90), {}),
           ((520, 400), {}), ((100, 130), {"exif": exif}), ((110, 77), {})]
  ids = []
  for i, (size, kwargs) in enumerate(files):
    ids.append(f"{i:03d}")
    pil.resize(size, Image.BICUBIC).save(image_path(root, ids[-1]),
                                         quality=90, **kwargs)
  return root, ids


def image_path(root, image_id):
  return ava.image_path(root, image_id)


def test_dataset_pixels_equal_an_independent_reference(photo_ava):
  """make_dataset's pixels (planned decode; only the branches its files
  need, none at all when they share one) == the numpy reference of the
  rule, for one-plan, two-filter and mixed folders; and a one-plan set builds
  no branch op."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  root, ids = photo_ava
  prep = {"mode": "paper", "image_size": [48, 64], "resize_size": 64,
          "random_flip": False}
  datas = {i: open(image_path(root, i), "rb").read() for i in ids}
  for subset in (ids[:1], ids[:2], ids):
    report = ava.check_images(root, subset)
    ratings = ava.AvaRatings(
        subset, np.full((len(subset), 10), 0.1, np.float32),
        np.ones(len(subset), np.int64)).with_headers(report.headers)
    plans = images.decode_plan_tf(ratings.headers, (48, 64)).numpy()
    assert len(set(plans)) == min(len(subset), 7), plans
    batch = next(iter(ava_pipeline.make_dataset(
        root, ratings, prep, len(subset), training=False)))[0].numpy()
    for got, image_id in zip(batch, subset):
      np.testing.assert_allclose(got, _rule_reference(datas[image_id],
                                                      (48, 64)),
                                 atol=2e-3, err_msg=image_id)
  # The one-branch plan set: no Case op in the graph (the fast executor).
  plan = int(plans[0])
  graph = tf.function(lambda b: images.decode_planned_tf(
      b, plan, (48, 64), scale=255.0, plans=[plan])).get_concrete_function(
          tf.TensorSpec([], tf.string)).graph
  assert not [op.type for op in graph.get_operations() if "Case" in op.type]
