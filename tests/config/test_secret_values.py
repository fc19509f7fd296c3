"""mlctl.masking: what is hidden by value, and what is left alone."""

import pytest

from mlctl.masking import mask_url_credentials, masked_value, url_credentials
from mlctl.requirements import pip_item_problem, pip_requirement


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgres://app:hunter2@db/x", "postgres://app:***@db/x"),
        ("git+https://ghp_abc@github.com/o/r", "git+https://***@github.com/o/r"),
        ("--index-url https://${U}:${P}@h/simple", "--index-url https://${U}:${P}@h/simple"),
        ("https://h/simple and mail me@example.com", "https://h/simple and mail me@example.com"),
    ],
)
def test_url_credentials_are_hidden_and_references_kept(text, shown):
    assert mask_url_credentials(text) == shown
    assert bool(url_credentials(text)) == (shown != text)


def test_token_shaped_strings_are_masked_anywhere_in_a_value():
    value = {"a": ["debug", "AKIAABCDEFGHIJKLMNOP"], "b": {"c": "Bearer eyJhbGciOiJIUzI1.eyJzdWIiOiIx.sig"}}
    assert masked_value(value) == {"a": ["debug", "(sensitive)"], "b": {"c": "(sensitive)"}}
    assert masked_value("sha256:" + "ab" * 32) == "sha256:" + "ab" * 32  # a digest is no token


@pytest.mark.parametrize(
    "item, ok",
    [
        ("numpy>=1.26", True),
        ("pkg[x] @ https://h/pkg.whl", True),
        ("-i https://h/simple", True),
        ("--extra-index-url=https://${T}@h/simple", True),
        ("--find-links https://h/wheels", True),
        ("--index-url http://ci:pw@h/", False),
        ("-e .", False),
        ("-r other.txt", False),
        ("--trusted-host h", False),
        ("./wheels/pkg.whl", False),
        ("pkg @ https://tok@h/pkg.whl", False),
    ],
)
def test_pip_items_accepted(item, ok):
    assert (pip_item_problem(item) is None) == ok
    if ok and item.startswith("-"):
        assert pip_requirement(item).startswith("--") and "=" not in pip_requirement(item).split()[0]
