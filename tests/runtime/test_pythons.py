"""pythons.py: version requests matched against real interpreters on this machine."""

import sys

import pytest

from mlctl.errors import MlctlError
from mlctl.runtime.kit.pythons import find_python, satisfies


@pytest.mark.parametrize(
    "version, request_, ok",
    [
        ((3, 11, 7), "3.11", True),
        ((3, 11, 7), "3.1", False),
        ((3, 11, 7), "3.11.7", True),
        ((3, 11, 7), "3.11.6", False),
        ((3, 11, 7), ">=3.9,<3.12", True),
        ((3, 12, 0), ">=3.9,<3.12", False),
        ((3, 11, 7), "~=3.10", True),
        ((3, 11, 7), "!=3.11", True),  # PEP 440: only 3.11.0 is excluded
        ((3, 11, 7), "<=3.11", False),
        ((3, 11, 7), ">3.11", True),
        ((3, 11, 7), "=3.11", True),  # conda: the series
        ((3, 11, 7), "3.11.*", True),
        ((3, 11, 7), None, True),
    ],
)
def test_satisfies(version, request_, ok):
    assert satisfies(version, request_) is ok


def test_own_interpreter_when_it_fits():
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert find_python(own).executable == sys.executable
    assert find_python(None).executable == sys.executable


def test_no_interpreter_is_a_clear_error():
    with pytest.raises(MlctlError) as e:
        find_python("2.1")
    assert "No Python interpreter on this machine satisfies python 2.1" in str(e.value)
    assert "pyenv install 2.1" in str(e.value) and "uv python install" not in str(e.value)  # uv cannot
    with pytest.raises(MlctlError) as e:
        find_python("3.99")
    assert "uv python install 3.99" in str(e.value)


def test_bad_request_is_a_clear_error():
    with pytest.raises(MlctlError, match="is not a Python version request"):
        satisfies((3, 11, 0), "three")
