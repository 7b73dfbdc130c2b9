"""The validity corpus under the trusted grader gives the same verdicts as under nbgrader.

Each submission's engine runs in the sandbox and is judged outside it, on a
fresh seed (recorded in the failure message, so a failing run can be
replayed with `python -m autograder corpus --grader trusted --seed N`).
Without a sandbox the verdict logic is still exercised, unsandboxed, and the
module says so.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.tables import score_matrix
from autograder.validity import grade_corpus_trusted

pytestmark = [pytest.mark.sandbox, pytest.mark.corpus]

ROOT = Path(__file__).resolve().parents[1]
SEED = secrets.randbelow(2**31)


@pytest.fixture(scope="module")
def report():
    isolation = sandbox.detect_isolation()
    return grade_corpus_trusted(ROOT, ROOT / "corpus" / "validity.py", base_seed=SEED,
                                allow_unsandboxed=isolation.level == "none")


def test_trusted_grader_gives_the_expected_matrix(report):
    differences = report.differences()
    assert not differences, (
        f"seed {SEED}:\n" + "\n".join(f"{name}: {text}" for name, text in differences.items())
        + "\n\n" + score_matrix(report.scores)
    )


def test_blank_and_instructor(report):
    assert sum(cell.score for cell in report.scores["blank"].values()) == 0
    assert sum(cell.score for cell in report.scores["instructor"].values()) == 100
