"""FiveK-style pairs on disk: matching, split, skip reports."""

import os

import pytest

from nima_enhance.data import fivek


def test_sorted_halves_and_split_file(fivek_dir, tmp_path):
  train, report = fivek.find_pairs(fivek_dir, "local_laplacian", "train")
  test, _ = fivek.find_pairs(fivek_dir, "local_laplacian", "test")
  assert train.names == ["a", "b", "c"] and test.names == ["d", "e"]
  assert report.found == 3 and not report.skipped
  assert train.targets[0].endswith(os.path.join("local_laplacian", "a.png"))
  split_file = tmp_path / "test.txt"
  split_file.write_text("# held out\nb.jpg\ne\n\n")
  test, _ = fivek.find_pairs(fivek_dir, "local_laplacian", "test",
                             str(split_file))
  train, _ = fivek.find_pairs(fivek_dir, "local_laplacian", "train",
                              str(split_file))
  assert test.names == ["b", "e"] and train.names == ["a", "c", "d"]


def test_missing_targets_and_unreadable_inputs_are_reported(fivek_dir):
  os.remove(os.path.join(fivek_dir, "local_laplacian", "b.png"))
  with open(os.path.join(fivek_dir, "input", "aa.jpg"), "wb") as f:
    f.write(b"\xff\xd8\xff\xe0 half a jpeg")  # no end-of-image marker
  with open(os.path.join(fivek_dir, "local_laplacian", "aa.png"), "wb") as f:
    f.write(open(os.path.join(fivek_dir, "local_laplacian", "a.png"),
                 "rb").read())
  pairs, report = fivek.find_pairs(fivek_dir, "local_laplacian", "all")
  assert pairs.names == ["a", "c", "d", "e"]
  assert sorted(report.skipped) == ["aa", "b"]
  assert "no target" in report.skipped["b"]
  assert "truncated" in report.skipped["aa"]
  assert "4 pairs, 2 skipped (aa, b)" == report.summary()


def test_missing_folders_raise(tmp_path, fivek_dir):
  with pytest.raises(FileNotFoundError, match="input"):
    fivek.find_pairs(str(tmp_path / "nowhere"), "local_laplacian")
  with pytest.raises(FileNotFoundError, match="prep-targets"):
    fivek.find_pairs(fivek_dir, "nonlocal_dehaze")
