"""The per-image air-light CSV: parsing, errors naming the line, lookup."""

import pytest

from data_prep import airlight_table


def test_parse_skips_header_comments_and_blank_lines():
  text = ("name,r,g,b\n# measured on the sky\n\n"
          "a.jpg, 0.8, 0.82, 0.85\nb,1,0.5,0.25\n")
  table = airlight_table.parse_table(text, "known.csv")
  assert table == {"a.jpg": [0.8, 0.82, 0.85], "b": [1.0, 0.5, 0.25]}


@pytest.mark.parametrize("line,message", [
    ("a.jpg,0.8,0.8", "known.csv:2: expected name,r,g,b"),
    ("a.jpg,0.8,x,0.8", "known.csv:2: r, g, b must be numbers"),
    ("a.jpg,0.8,0,0.8", "known.csv:2: r, g, b must lie in (0, 1]"),
    ("a.jpg,0.8,1.2,0.8", "known.csv:2: r, g, b must lie in (0, 1]"),
    ("b.jpg,0.8,0.8,0.8", "known.csv:2: 'b.jpg' is given twice"),
])
def test_bad_rows_name_the_file_and_line(line, message):
  with pytest.raises(airlight_table.AirlightTableError) as err:
    airlight_table.parse_table(f"b.jpg,0.5,0.5,0.5\n{line}\n", "known.csv")
  assert str(err.value).startswith(message)


def test_read_table_missing_file_is_one_clear_error(tmp_path):
  path = str(tmp_path / "none.csv")
  with pytest.raises(airlight_table.AirlightTableError, match="none.csv"):
    airlight_table.read_table(path)


def test_lookup_by_file_name_then_stem_and_unmatched_names():
  table = {"a.jpg": [0.9, 0.9, 0.9], "a": [0.1, 0.1, 0.1],
           "b": [0.5, 0.6, 0.7], "typo": [0.5, 0.5, 0.5]}
  assert airlight_table.lookup(table, "/in/a.jpg") == [0.9, 0.9, 0.9]
  assert airlight_table.lookup(table, "/in/a.png") == [0.1, 0.1, 0.1]
  assert airlight_table.lookup(table, "/in/b.tif") == [0.5, 0.6, 0.7]
  assert airlight_table.lookup(table, "/in/c.jpg") is None
  assert airlight_table.unmatched(table, ["/in/a.jpg", "/in/b.tif"]) == [
      "typo"]


def test_format_then_parse_round_trips(tmp_path):
  rows = {"z.jpg": [0.81, 0.81, 0.82], "a.png": [0.72, 0.785, 0.81]}
  text = airlight_table.format_table(rows)
  assert text.splitlines()[0] == "name,r,g,b"
  assert text.splitlines()[1].startswith("a.png,")  # sorted
  path = tmp_path / "airlight.csv"
  path.write_text(text)
  assert airlight_table.read_table(str(path)) == rows
