"""Fixtures shared by the test modules that grade real submissions."""

from __future__ import annotations

import pytest

from autograder import sandbox


@pytest.fixture(scope="module")
def isolation() -> sandbox.Isolation:
    """The machine's sandbox; the module is skipped, saying how to get one, where there is none."""
    level = sandbox.detect_isolation()
    if level.level == "none":
        pytest.skip(f"no sandbox on this machine ({level.detail}); {level.how_to_enable}")
    return level
