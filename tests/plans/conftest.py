"""Golden plans: `pytest tests/plans --update-goldens` rewrites the expected outputs and prior states."""

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/plans/<case>/{state.json,plan.txt,plan.json,plan.md} from the current code",
    )


@pytest.fixture
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens")
