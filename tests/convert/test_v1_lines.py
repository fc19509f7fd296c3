"""The line of every field of a v1 JSON file (v1files._field_lines, pure): nested objects, lists,
strings holding JSON punctuation and escaped quotes, and a member given twice."""

from mlctl.convert.v1files import _field_lines

TEXT = """{"a": [1, {"b": 2}, [3, {"c": "x,}]\\\\\\""}]],
 "d": {"e": {"f": null},
  "g": 1}, "d": 2,
 "h": ""}"""


def test_every_member_gets_its_line_and_a_second_one_is_reported():
    lines, twice = _field_lines(TEXT)
    assert lines == {"a": 1, "a[1].b": 1, "a[2][1].c": 1, "d": 2, "d.e": 2, "d.e.f": 2, "d.g": 3, "h": 4}
    assert twice == [("d", 3)]
