"""Benchmark: grading one correct submission, trusted grader vs `nbgrader autograde`.

    .venv/bin/python benchmarks/grade_one.py [--repeats 3]

Both graders get the same notebook (the release with the instructor's
solutions filled in) in the same run.  Timed:
- trusted grader, command line: `python -m autograder grade NOTEBOOK` as a new
  process (interpreter start, imports, sandbox, reference run, comparison);
- trusted grader, in process: `grade_submission()` with imports already done;
- nbgrader: `nbgrader autograde 05_autograd --force` for that one student in a
  scratch course whose gradebook was prepared beforehand (not timed).
Targets (issue 7, the remote engine): the command line within 1.2 s, and at least 6x faster
than nbgrader autograde.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import sandbox  # noqa: E402
from autograder.variants import instructor_bodies, submission_notebook  # noqa: E402
from autograder.course import ASSIGNMENT, NOTEBOOK, copy_course, nbgrader, release_notebook, source_notebook  # noqa: E402
from autograder.grader import grade_submission  # noqa: E402


def correct_submission(path: Path) -> None:
    release_nb = nbformat.read(release_notebook(ROOT), as_version=4)
    source_nb = nbformat.read(source_notebook(ROOT), as_version=4)
    nbformat.write(submission_notebook(release_nb, instructor_bodies(source_nb)), path)


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    try:
        notebook = workdir / NOTEBOOK
        correct_submission(notebook)
        isolation = sandbox.detect_isolation()
        unsafe = ["--unsafe-no-sandbox"] if isolation.level == "none" else []

        def cli_grade():
            run = subprocess.run([sys.executable, "-m", "autograder", "grade", str(notebook), "--seed", "1",
                                  "--format", "json", "--out", str(workdir / "result.json"), *unsafe],
                                 cwd=ROOT, capture_output=True, text=True)
            if run.returncode != 0 or '"score": 100.0' not in (workdir / "result.json").read_text():
                raise SystemExit(f"the trusted grader did not give 100: {run.stderr[-2000:]}")

        def in_process_grade():
            result = grade_submission(notebook, root=ROOT, base_seed=1, allow_unsandboxed=True)
            if result.score != 100:
                raise SystemExit(f"in-process grading gave {result.score}")

        course = copy_course(ROOT, workdir / "course", folders=("source",))
        nbgrader("generate_assignment", ASSIGNMENT, "--force", "--create", root=course)
        submitted = course / "submitted" / "student" / ASSIGNMENT
        submitted.mkdir(parents=True)
        shutil.copy(notebook, submitted / NOTEBOOK)

        def nbgrader_grade():
            nbgrader("autograde", ASSIGNMENT, "--force", "--create", root=course)

        in_process_grade()  # warm the isolation probe and the imports for the in-process figure
        rows = {"trusted grader, command line": [], "trusted grader, in process": [], "nbgrader autograde": []}
        for _ in range(args.repeats):
            rows["trusted grader, command line"].append(timed(cli_grade))
            rows["trusted grader, in process"].append(timed(in_process_grade))
            rows["nbgrader autograde"].append(timed(nbgrader_grade))
        medians = {name: statistics.median(values) for name, values in rows.items()}

        print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}   machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")
        print(f"isolation: {isolation.level}: {isolation.detail}")
        print(f"repeats: {args.repeats} (median shown)\n")
        baseline = medians["nbgrader autograde"]
        print(f"{'grader':<32} {'median s':>9} {'min s':>7} {'vs nbgrader':>12}")
        for name, values in rows.items():
            print(f"{name:<32} {medians[name]:>9.3f} {min(values):>7.3f} {baseline / medians[name]:>11.1f}x")
        cli = medians["trusted grader, command line"]
        print()
        print(f"target: command line <= 1.2 s ........ {'met' if cli <= 1.2 else 'MISSED'} ({cli:.2f} s)")
        print(f"target: >= 6x faster than nbgrader ... {'met' if baseline / cli >= 6 else 'MISSED'} "
              f"({baseline / cli:.1f}x)")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
