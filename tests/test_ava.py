"""AVA parsing, splits and the checked-file manifest (data/ava.py)."""

import os

import numpy as np
import pytest

from nima_enhance.data import ava
from nima_enhance.data import synthetic

_LINE = "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n"


def test_parse_real_ava_line(tmp_path):
  path = tmp_path / "AVA.txt"
  path.write_text(_LINE + "2 953958 10 7 15 26 26 21 10 8 1 2 15 21 1396\n")
  ratings = ava.parse_ava_txt(str(path))
  assert ratings.image_ids == ["953619", "953958"]
  counts = np.array([0, 1, 5, 17, 38, 36, 15, 6, 5, 1], np.float64)
  np.testing.assert_allclose(ratings.distributions[0], counts / counts.sum(),
                             rtol=1e-6)
  assert ratings.vote_counts.tolist() == [124, 126]


@pytest.mark.parametrize("bad_line,message", [
    ("2 953958 10 7 15 26 26 21 10 8 1 2 15 21\n", "expected 15 columns"),
    ("2 953958 10 x 15 26 26 21 10 8 1 2 15 21 1396\n", "integers"),
    ("2 953958 0 0 0 0 0 0 0 0 0 0 15 21 1396\n", "at least one vote"),
    ("2 953619 1 1 1 1 1 1 1 1 1 1 15 21 1396\n", "duplicate"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
  path = tmp_path / "AVA.txt"
  path.write_text(_LINE + bad_line)
  with pytest.raises(ava.AvaFormatError, match=f"AVA.txt:2: .*{message}"):
    ava.parse_ava_txt(str(path))


def test_missing_ava_txt(tmp_path):
  with pytest.raises(FileNotFoundError, match="AVA.txt"):
    ava.load_split(str(tmp_path), "train")


def test_seeded_split_is_80_20_disjoint_and_stable(ava_dir):
  ids = [str(i) for i in range(1000)]
  train = ava.split_ids(ava_dir, ids, "train", seed=3)
  test = ava.split_ids(ava_dir, ids, "test", seed=3)
  assert len(test) == 200 and len(train) == 800
  assert not set(train) & set(test)
  # Order of the input list does not change the split.
  assert set(ava.split_ids(ava_dir, ids[::-1], "test", seed=3)) == set(test)
  assert set(ava.split_ids(ava_dir, ids, "test", seed=4)) != set(test)


def test_official_test_list_wins(tmp_path):
  lists = tmp_path / "aesthetics_image_lists"
  lists.mkdir()
  (lists / "generic_test.jpgl").write_text("7\n9\n")
  ids = [str(i) for i in range(10)]
  assert ava.split_ids(str(tmp_path), ids, "test") == ["7", "9"]
  assert len(ava.split_ids(str(tmp_path), ids, "train")) == 8


def test_check_images_skips_and_caches(ava_dir, monkeypatch):
  ratings = ava.parse_ava_txt(os.path.join(ava_dir, "AVA.txt"))
  report = ava.check_images(ava_dir, ratings.image_ids)
  assert len(report.good) == 40
  kinds = sorted(r.split(":")[0] for r in report.skipped.values())
  assert kinds == ["corrupt", "missing", "not-an-image"]
  assert "3 skipped" in report.summary()
  # Second pass: everything comes from the manifest, nothing is decoded.
  calls = []
  monkeypatch.setattr(ava, "_check_one", lambda p: calls.append(p))
  again = ava.check_images(ava_dir, ratings.image_ids)
  assert calls == [] and again.good == report.good


def test_manifest_keeps_headers_and_upgrades_version_2(tmp_path):
  """check_images stores each usable file's header (format, stored size,
  EXIF orientation); a version-2 manifest keeps its verdicts and gains the
  headers without a decode; load_split attaches them to the ratings."""
  import json  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root = str(tmp_path)
  synthetic.make_synthetic_ava(root, num_images=6, image_size=(40, 56))
  ratings = ava.parse_ava_txt(os.path.join(root, "AVA.txt"))
  exif = Image.Exif()
  exif[0x0112] = 6
  rotated = ratings.image_ids[0]
  Image.new("RGB", (30, 20), (200, 10, 10)).save(
      ava.image_path(root, rotated), "JPEG", exif=exif.tobytes())
  report = ava.check_images(root, ratings.image_ids)
  assert report.headers[rotated] == (1, 20, 30, 6)
  assert rotated in report.good and len(report.good) >= 3
  assert set(report.headers) == set(report.good)
  for image_id in report.good[1:]:
    assert report.headers[image_id] == (1, 40, 56, 1)
  manifest = os.path.join(root, ava.MANIFEST_NAME)
  with open(manifest, encoding="utf-8") as f:
    content = json.load(f)
  content["version"] = 2
  content["files"] = {k: v[:3] for k, v in content["files"].items()}
  with open(manifest, "w", encoding="utf-8") as f:
    json.dump(content, f)

  def no_decode(path):
    raise AssertionError(f"decoded {path}")
  monkeypatch = pytest.MonkeyPatch()
  monkeypatch.setattr(ava, "_check_one", no_decode)
  try:
    again = ava.check_images(root, ratings.image_ids)
  finally:
    monkeypatch.undo()
  assert again.good == report.good and again.headers == report.headers
  loaded, _ = ava.load_split(root, "all")
  assert loaded.headers.tolist() == [list(report.headers[i])
                                     for i in loaded.image_ids]
  assert loaded.subset([rotated]).headers.tolist() == [[1, 20, 30, 6]]
