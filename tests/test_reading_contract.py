"""The image-reading contract on the zoo: numpy path, graph path, headers."""

import os

import numpy as np
import pytest
import tensorflow as tf

from nima_enhance.data import image_check
from nima_enhance.data import image_files
from nima_enhance.data import image_headers
from nima_enhance.data import images
import image_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  return image_zoo.build_zoo(str(tmp_path_factory.mktemp("zoo")))


def _assert_matches(image, case, name):
  assert image.shape == case.expected.shape, name
  diff = np.abs(image.astype(np.float64) - case.expected)
  assert diff.max() <= case.atol, (name, diff.max())
  if case.mean_tol is not None:
    assert diff.mean() <= case.mean_tol, (name, diff.mean())


def test_numpy_path_reads_every_case_or_names_the_skip(zoo):
  for name, case in zoo.items():
    if case.expected is not None:
      _assert_matches(images.read_image(case.path), case, name)
    else:
      with pytest.raises(images.ImageReadError) as err:
        images.read_image(case.path)
      message = str(err.value)
      assert message.startswith(case.path + ": "), message
      assert case.reason in message, (name, message)
      assert "\n" not in message


def test_graph_path_gives_the_numpy_pixels(zoo):
  decode = tf.function(images.decode_image_tf)
  for name, case in zoo.items():
    data = tf.constant(open(case.path, "rb").read())
    if not case.graph:
      with pytest.raises(tf.errors.InvalidArgumentError, match="TIFF"):
        decode(data)
    elif case.expected is not None:
      np.testing.assert_allclose(decode(data).numpy(),
                                 images.read_image(case.path), atol=2e-7,
                                 err_msg=name)
    elif case.graph_strict:
      with pytest.raises(tf.errors.InvalidArgumentError):
        decode(data)


def test_exif_orientation_matches_pil_and_is_needed(zoo):
  upright = zoo["orientation_1.jpg"].expected
  for o in range(1, 9):
    case = zoo[f"orientation_{o}.jpg"]
    image = images.read_image(case.path)
    # PIL's exif_transpose is the independent reference for the transform.
    assert np.abs(image - image_zoo.pil_upright(case.path)).mean() < 0.015
    assert np.abs(image - upright).mean() < 0.03
    # Ignoring (or mis-reading) the tag would not pass.
    stored = tf.io.decode_jpeg(open(case.path, "rb").read()).numpy() / 255.0
    if o > 1:
      assert (stored.shape != upright.shape or
              np.abs(stored - upright).mean() > 0.05), o
    for other in range(1, 9):
      if other != o:
        wrong = images.orient(stored, other)
        assert (wrong.shape != upright.shape or
                np.abs(wrong - upright).mean() > 0.05), (o, other)


def test_headers_agree_between_numpy_and_graph(zoo):
  header = tf.function(image_headers.header_tf)
  for name, case in zoo.items():
    data = open(case.path, "rb").read()
    fmt, h, w, orient, status = [int(v) for v in header(tf.constant(data))]
    try:
      ref = image_headers.read_header(data)
    except image_headers.HeaderError:
      assert fmt == 0 or status in (1, 2), name
      continue
    assert image_headers.FORMATS[fmt] == ref.format, name
    if ref.format != "tiff":
      assert (h, w, orient, status == 3) == (ref.height, ref.width,
                                             ref.orientation, ref.animated), name


def test_hostile_exif_is_ignored_not_fatal(zoo):
  data = open(zoo["orientation_6.jpg"].path, "rb").read()
  # IFD0 offset pointing far outside the segment; an orientation of 9.
  broken = data.replace(b"MM\x00*\x00\x00\x00\x08", b"MM\x00*\x7f\xff\xff\xff")
  bad_value = data.replace(b"\x00\x01\x00\x06", b"\x00\x01\x00\x09")
  for variant in (broken, bad_value):
    assert variant != data
    assert image_headers.read_header(variant).orientation == 1
    assert int(image_headers.header_tf(tf.constant(variant))[3]) == 1
    assert images.decode_image_bytes(variant).shape == (36, 24, 3)


def test_pixel_limit_is_checked_before_decoding(zoo, tmp_path):
  bomb = zoo["bomb.png"]
  with pytest.raises(images.ImageReadError, match="400000000 pixels"):
    images.read_image(bomb.path)
  with pytest.raises(tf.errors.InvalidArgumentError, match="pixel limit"):
    tf.function(images.decode_image_tf)(tf.constant(open(bomb.path, "rb").read()))
  small = zoo["photo.bmp"].path
  assert images.read_image(small, max_pixels=24 * 36).shape == (24, 36, 3)
  with pytest.raises(images.ImageReadError, match="above the limit of 863"):
    images.read_image(small, max_pixels=24 * 36 - 1)
  limited = tf.function(lambda b: images.decode_image_tf(b, max_pixels=100))
  with pytest.raises(tf.errors.InvalidArgumentError, match="pixel limit"):
    limited(tf.constant(open(small, "rb").read()))
  images.set_max_pixels(100)
  try:
    assert "above the limit" in images.file_problem(zoo["rgb16.tif"].path)
  finally:
    images.set_max_pixels(images.DEFAULT_MAX_PIXELS)


def test_folder_scan_lists_what_it_leaves_out(zoo, tmp_path):
  folder = os.path.dirname(zoo["clean.jpg"].path)
  with open(os.path.join(folder, "notes.txt"), "w") as f:
    f.write("x")
  scan = image_files.scan_inputs([folder])
  names = {os.path.basename(p) for p in scan.files}
  assert {"lossless.webp", "rgb16.tif", "grey16.tiff", "animated.gif",
          "phöto über 1.png", "photo.bmp"} <= names
  skipped = {os.path.basename(p): r for p, r in scan.skipped.items()}
  assert set(skipped) == {"x.jpg", "notes.txt"}
  assert "folder" in skipped["x.jpg"] and ".txt" in skipped["notes.txt"]
  os.unlink(os.path.join(folder, "notes.txt"))
  with pytest.raises(images.ImageReadError, match="is a folder"):
    images.read_image(os.path.join(folder, "x.jpg"))


def test_output_names_are_distinct():
  names = image_files.output_names(
      ["in/a.png", "in/a.tif", "in/b.jpg", "other/c.jpg", "in/C.png"], "png")
  assert names == {"in/a.png": "a.png.png", "in/a.tif": "a.tif.png",
                   "in/b.jpg": "b.png", "other/c.jpg": "c.jpg.png",
                   "in/C.png": "C.png.png"}
  # The same file given twice still gets two names (the count stays right).
  assert image_files.output_names(["x/a.jpg", "y/a.jpg"], "png") == {
      "x/a.jpg": "a.jpg.png", "y/a.jpg": "a.jpg-2.png"}


def test_check_files_caches_strict_verdicts(zoo, tmp_path):
  paths = [zoo[n].path for n in ("clean.jpg", "damaged_middle.jpg",
                                 "trailer.jpg")]
  cache = str(tmp_path / "manifest.json")
  calls = []

  def check(path):
    calls.append(path)
    return image_check._verdict(path, None)  # pylint: disable=protected-access

  first = image_check.check_files(paths, cache, check=check)
  assert first[paths[0]] is None and first[paths[2]] is None
  assert "corrupt JPEG data" in first[paths[1]]
  assert image_check.check_files(paths, cache, check=check) == first
  assert len(calls) == 3  # the second run came from the cache


def test_header_fields_of_files_equal_the_whole_file_parse(zoo, tmp_path):
  """read_header_fields reads a 64 KiB prefix first; the result is the whole
  file's header, also when the header lies past the prefix."""
  for name, case in zoo.items():
    data = open(case.path, "rb").read()
    try:
      expected = image_headers.header_fields(data)
    except image_headers.HeaderError:
      expected = None
    assert image_headers.read_header_fields(case.path) == expected, name
  # Two 60 KB comment segments push the JPEG's SOF past the first 64 KiB.
  jpeg = open(zoo["orientation_6.jpg"].path, "rb").read()
  comment = b"\xff\xfe" + (60002).to_bytes(2, "big") + b"x" * 60000
  late = tmp_path / "late_sof.jpg"
  late.write_bytes(jpeg[:2] + comment + comment + jpeg[2:])
  assert len(late.read_bytes()) > 120000
  fields = image_headers.header_fields(jpeg)
  assert fields[0] == 1 and fields[3] == 6
  assert image_headers.read_header_fields(str(late)) == fields
  assert image_headers.read_header_fields(str(tmp_path / "none.jpg")) is None
