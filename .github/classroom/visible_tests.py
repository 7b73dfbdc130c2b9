#!/usr/bin/env python3
"""Run the notebook's visible tests once, then report each one separately.

    python .github/classroom/visible_tests.py run            execute the notebook, record every visible test
    python .github/classroom/visible_tests.py check TEST_ID  exit 0 if that test passed in the recorded run

GitHub Classroom gives points per command, so the workflow runs the notebook
once (``run``) and then asks about each test (``check``): executing the whole
notebook once per test would multiply the time by the number of tests.

These points only show how the visible tests went. Your grade comes from the
course's own grader, which also runs hidden tests.

This file is copied into the assignment repository by the course's
``python -m autograder classroom-template``; it needs nbclient and ipykernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "visible_tests.json"
RESULTS = HERE / "results.json"  # git-ignored: a run's record, never part of a submission
SHOWN_CHARACTERS = 4000  # enough for a test's message, short enough for a log


def load_config() -> dict:
    return json.loads(CONFIG.read_text(encoding="utf-8"))


def notebook_path(config: dict) -> Path:
    return HERE.parent.parent / config["notebook"]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def prepare(notebook, config: dict) -> set[str]:
    """Put back the course's given and test cells, drop what follows the last test; the tests found."""
    given = config["locked_cells"]
    for cell in notebook.cells:
        if grade_id(cell) in given:
            # Like the course's grader: an edited test or given cell counts as the original.
            cell.source = given[grade_id(cell)]
    test_ids = {test["grade_id"] for test in config["tests"]}
    positions = [index for index, cell in enumerate(notebook.cells) if grade_id(cell) in test_ids]
    if positions:
        # The measurements after the last test are not graded: running them only costs time.
        del notebook.cells[max(positions) + 1:]
    return {grade_id(notebook.cells[index]) for index in positions}


def execute(notebook, folder: Path, cell_timeout: int) -> str:
    """Run every cell, errors included; what stopped the run early, or "" if it reached the end."""
    from nbclient import NotebookClient

    # "python3" whatever the student's Jupyter called its kernel: that is the one installed here.
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except Exception as error:  # a dead kernel, a timeout it could not interrupt: the rest did not run
        return f"{type(error).__name__}: {error}".strip()
    return ""


def cell_outcome(cell, stopped: str) -> dict:
    """Passed means the cell ran and raised nothing, as in nbgrader."""
    if cell.get("execution_count") is None:
        return {"passed": False, "output": "", "error": f"this test did not run ({stopped or 'not reached'})"}
    text, error = [], ""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            error = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    return {"passed": not error, "output": "".join(text), "error": error}


def outcomes(notebook, config: dict, found: set[str], stopped: str) -> dict:
    cells = {grade_id(cell): cell for cell in notebook.cells if grade_id(cell)}
    results = {}
    for test in config["tests"]:
        if test["grade_id"] not in found:
            results[test["grade_id"]] = {
                "passed": False, "output": "",
                "error": f"the test cell {test['grade_id']} is missing from your notebook: "
                         "copy it back from the assignment's original notebook"}
        else:
            results[test["grade_id"]] = cell_outcome(cells[test["grade_id"]], stopped)
    return results


def every_test_failed(config: dict, reason: str) -> dict:
    return {test["grade_id"]: {"passed": False, "output": "", "error": reason} for test in config["tests"]}


def run_notebook(config: dict) -> dict:
    path = notebook_path(config)
    if not path.is_file():
        return every_test_failed(config, f"{config['notebook']} is not in the repository: "
                                          "keep the notebook's name and place")
    import nbformat

    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook: the student can fix it, so say what it was
        return every_test_failed(config, f"{config['notebook']} cannot be read as a notebook: {error}")
    found = prepare(notebook, config)
    stopped = execute(notebook, path.parent, config["cell_timeout"])
    return outcomes(notebook, config, found, stopped)


def write_results(digest: str, tests: dict) -> None:
    # Written whole or not at all: a half-written record must not read as a pass.
    handle, temporary = tempfile.mkstemp(dir=HERE, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump({"notebook_sha256": digest, "tests": tests}, stream, indent=2)
    os.replace(temporary, RESULTS)


def summary(config: dict, tests: dict) -> str:
    lines, earned = [], 0
    for test in config["tests"]:
        passed = tests[test["grade_id"]]["passed"]
        earned += test["points"] if passed else 0
        lines.append(f"{'passed' if passed else 'FAILED'}  {test['name']} ({test['points']} points)")
    total = sum(test["points"] for test in config["tests"])
    lines.append(f"visible tests: {earned}/{total} points (the course's grader also runs hidden tests)")
    return "\n".join(lines)


def command_run() -> int:
    config = load_config()
    RESULTS.unlink(missing_ok=True)  # a stale record must never stand for this run
    digest = file_digest(notebook_path(config))  # before running: what was tested is what was pushed
    tests = run_notebook(config)
    write_results(digest, tests)
    print(summary(config, tests))
    return 0  # recorded, whatever passed: each check step gives its own verdict


def shorten(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "\n[... cut]"


def command_check(test_id: str) -> int:
    config = load_config()
    if not RESULTS.is_file():
        print(f"no recorded run: run `python {Path(__file__).name} run` first", file=sys.stderr)
        return 1
    record = json.loads(RESULTS.read_text(encoding="utf-8"))
    if record["notebook_sha256"] != file_digest(notebook_path(config)):
        print("the notebook changed since the recorded run: run the tests again", file=sys.stderr)
        return 1
    if test_id not in record["tests"]:
        print(f"no visible test {test_id!r}; the tests are: {', '.join(record['tests'])}", file=sys.stderr)
        return 1
    outcome = record["tests"][test_id]
    if outcome["output"]:
        print(shorten(outcome["output"]).rstrip())
    if outcome["passed"]:
        print(f"{test_id}: passed")
        return 0
    print(shorten(outcome["error"]), file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and len(argv) == 1:
        return command_run()
    if argv[:1] == ["check"] and len(argv) == 2:
        return command_check(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
