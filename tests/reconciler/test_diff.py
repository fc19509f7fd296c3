"""diff_attributes: literal (op, path, old, new) items."""

from mlctl.reconciler.diff import diff_attributes


def test_items():
    before = {"x": 1, "pip": ["a==1", "b==2"], "rs": {"t": 1, "q": 2}, "env": {"K": "v", "A.B": "1"}, "path": "/a"}
    after = {
        "x": 2,
        "pip": ["a==1", "b==3", "c==1"],
        "rs": {"t": 1},
        "env": {"K": "v", "N": "w", "A.B": "2"},
        "new": 5,
        "path": "/b",
    }
    assert diff_attributes(before, after, exclude=("path",)) == (
        ("add", "env.N", None, "w"),
        ("change", 'env["A.B"]', "1", "2"),
        ("add", "new", None, 5),
        ("change", "pip", ["a==1", "b==2"], ["a==1", "b==3", "c==1"]),
        ("remove", "rs.q", 2, None),
        ("change", "x", 1, 2),
    )


def test_equal_and_excluded_only():
    assert diff_attributes({"a": [1]}, {"a": [1]}) == ()
    assert diff_attributes({"path": "/x", "a": 1}, {"path": "/y", "a": 1}, exclude=("path",)) == ()


def test_lists_and_null_to_dict():
    assert diff_attributes({"l": [1, 2]}, {"l": [1]}) == (("change", "l", [1, 2], [1]),)
    assert diff_attributes({"l": [{"a": 1}]}, {"l": [{"a": 2}]}) == (("change", "l", [{"a": 1}], [{"a": 2}]),)
    assert diff_attributes({"t": None}, {"t": {"a": 1}}) == (("change", "t", None, {"a": 1}),)


def test_deepdiff_import_leaves_sys_modules_clean():
    import sys

    from mlctl.reconciler.diff import _OPTIONAL, _deepdiff

    assert _deepdiff().__name__ == "DeepDiff"
    assert not [m for m in _OPTIONAL if m in sys.modules and sys.modules[m] is None]


def test_lists_inside_dicts_are_reported_whole():
    assert diff_attributes({"d": {"l": [1, 2], "k": 1}}, {"d": {"l": [1, 3], "k": 1, "n": None}}) == (
        ("change", "d.l", [1, 2], [1, 3]),
        ("add", "d.n", None, None),
    )
