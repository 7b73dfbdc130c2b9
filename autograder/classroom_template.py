"""A student repository for GitHub Classroom, generated from the release notebook.

``write_template(root, out)`` fills ``out`` with what an assignment repository
needs: the release notebook (its bytes, never a copy kept by hand), the
packages that running it needs, the runner ``.github/classroom/visible_tests.py``
and the workflow GitHub Classroom reads, ``.github/workflows/classroom.yml``.

The workflow runs the notebook once, then has one autograding step per visible
test cell, worth that cell's points. Only the release goes in, so no hidden
test and no solution can: the release is checked for leaks before anything is
written. Classroom's points count the visible tests only; the grade is the
trusted grader's (``grade`` / ``grade-class``), which also runs the hidden ones.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .checks import check_no_leaks, nbgrader_meta
from .course import NOTEBOOK, release_notebook, source_notebook

RUNNER = Path(".github") / "classroom" / "visible_tests.py"
RUNNER_CONFIG = RUNNER.with_name("visible_tests.json")
WORKFLOW = Path(".github") / "workflows" / "classroom.yml"
# What the runner itself imports, besides what the notebook does.
RUNNER_PACKAGES = ("nbclient", "nbformat", "ipykernel")
# Import names whose distribution on PyPI is called differently.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "pillow", "yaml": "pyyaml"}
CELL_TIMEOUT_SECONDS = 120
STEP_TIMEOUT_MINUTES = 1  # a check step only reads the recorded run
RUN_TIMEOUT_MINUTES = 10


class TemplateError(ValueError):
    """The release cannot be turned into a student repository (the message says why)."""


@dataclass(frozen=True)
class VisibleTest:
    grade_id: str
    name: str
    points: int


def visible_tests(release_nb) -> list[VisibleTest]:
    """The graded test cells that hold code in the release, in notebook order.

    A hidden test cell is released as comments only: it has nothing to run, so
    counting it would hand out its points for nothing.
    """
    tests = []
    for cell in release_nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution") and _has_code(cell.source):
            tests.append(VisibleTest(meta["grade_id"], _heading(cell.source) or meta["grade_id"],
                                     _whole_points(meta)))
    if not tests:
        raise TemplateError("the release notebook has no visible test cell: nothing for Classroom to run")
    return _unique_names(tests)


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def _heading(source: str) -> str:
    """ "# Visible tests, Exercise 1: every rule of ..." -> "Visible tests, Exercise 1"."""
    first = next((line for line in source.splitlines() if line.strip()), "")
    if not first.lstrip().startswith("#"):
        return ""
    return first.lstrip().lstrip("#").split(":")[0].strip()


def _whole_points(meta: dict) -> int:
    points = meta.get("points", 0)
    if float(points) != int(float(points)):
        # Classroom's command grader reads max-score as a whole number and would drop the fraction.
        raise TemplateError(f"test cell {meta['grade_id']!r} is worth {points} points: Classroom counts whole points")
    return int(float(points))


def _unique_names(tests: list[VisibleTest]) -> list[VisibleTest]:
    names = [test.name for test in tests]
    return [test if names.count(test.name) == 1 else VisibleTest(test.grade_id, f"{test.name} ({test.grade_id})",
                                                                  test.points)
            for test in tests]


def locked_cells(release_nb, last_test: str) -> dict[str, str]:
    """grade_id -> source of every given and test cell up to the last test, for the runner to restore."""
    cells = {}
    for cell in release_nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("locked") and cell.cell_type == "code":
            cells[meta["grade_id"]] = cell.source
        if meta.get("grade_id") == last_test:
            break
    return cells


def notebook_imports(release_nb) -> set[str]:
    """Top-level names of the modules the notebook's code cells import."""
    names = set()
    for cell in release_nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython syntax (magics): read the import lines alone
            names |= set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, re.MULTILINE))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def requirements(root: Path, release_nb) -> list[str]:
    """Requirement lines, with the version ranges the course itself is tested with (pyproject.toml).

    A notebook that imports something outside the course's declared dependencies
    (tinytorch, autograder: the reference engine and the hidden tests) is refused
    rather than shipped: students must not get either.
    """
    declared = _declared_dependencies(root)
    third_party = sorted(name for name in notebook_imports(release_nb) if name not in sys.stdlib_module_names)
    refused = [name for name in third_party if DISTRIBUTIONS.get(name, name).lower() not in declared]
    if refused:
        raise TemplateError(f"the release notebook imports {', '.join(refused)}, which is not a declared dependency "
                            "of the course (students must never get the reference engine or the grader)")
    wanted = {DISTRIBUTIONS.get(name, name).lower() for name in third_party} | set(RUNNER_PACKAGES)
    missing = sorted(wanted - declared.keys())
    if missing:
        raise TemplateError(f"pyproject.toml does not declare {', '.join(missing)}")
    return [declared[name] for name in sorted(wanted)]


def _declared_dependencies(root: Path) -> dict[str, str]:
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {}
    for line in project.get("dependencies", []):
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)[0]
        declared[name.lower().replace("_", "-")] = line
    return declared


def runner_config(release_nb, tests: list[VisibleTest]) -> dict:
    return {
        "notebook": NOTEBOOK,
        "cell_timeout": CELL_TIMEOUT_SECONDS,
        "tests": [{"grade_id": t.grade_id, "name": t.name, "points": t.points} for t in tests],
        "locked_cells": locked_cells(release_nb, tests[-1].grade_id),
    }


def _quoted(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: no hand-made escaping.
    return json.dumps(text)


def step_id(test: VisibleTest) -> str:
    """A step id for the test: the reporter reads the result from the env variable <ID>_RESULTS."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", test.grade_id)
    return cleaned if cleaned[0].isalpha() or cleaned[0] == "_" else "t_" + cleaned


def check_command(test: VisibleTest) -> str:
    return f"python {RUNNER.as_posix()} check {test.grade_id}"


def workflow(tests: list[VisibleTest]) -> str:
    """classroom.yml: the form GitHub Classroom reads (command graders, then the grading reporter)."""
    header = f"""\
# GitHub Classroom autograding for {NOTEBOOK}: the visible tests only.
# Generated by `python -m autograder classroom-template` from the course's release notebook;
# generate it again rather than editing it. The course's own grader decides the grade.
name: Autograding Tests
on:
  push:
  workflow_dispatch:
  repository_dispatch:
permissions:
  checks: write
  actions: read
  contents: read
jobs:
  run-autograding-tests:
    runs-on: ubuntu-latest
    # Classroom's own first commit is the blank notebook: nothing to grade yet.
    if: github.actor != 'github-classroom[bot]'
    timeout-minutes: {RUN_TIMEOUT_MINUTES + len(tests) * STEP_TIMEOUT_MINUTES + 5}
    steps:
      - name: Checkout code
        uses: actions/checkout@v5
      - name: Set up Python
        uses: actions/setup-python@v6
        with:
          python-version: "3.11"
          cache: pip
      - name: Install what the notebook needs
        run: python -m pip install -r requirements.txt
      - name: Run the notebook once
        timeout-minutes: {RUN_TIMEOUT_MINUTES}
        # If the run itself dies, the checks still run: each fails, saying no result was recorded,
        # and Classroom gets a report rather than nothing.
        continue-on-error: true
        run: python {RUNNER.as_posix()} run
"""
    steps = "".join(_grader_step(test) for test in tests)
    return header + steps + _reporter_step(tests)


def _grader_step(test: VisibleTest) -> str:
    return f"""\
      - name: {_quoted(test.name)}
        id: {step_id(test)}
        uses: classroom-resources/autograding-command-grader@v1
        with:
          test-name: {_quoted(test.name)}
          command: {_quoted(check_command(test))}
          timeout: {STEP_TIMEOUT_MINUTES}
          max-score: {test.points}
"""


def _reporter_step(tests: list[VisibleTest]) -> str:
    env = "".join(f"          {step_id(t).upper()}_RESULTS: \"${{{{ steps.{step_id(t)}.outputs.result }}}}\"\n"
                  for t in tests)
    return f"""\
      - name: Autograding Reporter
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
{env}        with:
          runners: {",".join(step_id(t) for t in tests)}
"""


def readme(tests: list[VisibleTest]) -> str:
    total = sum(test.points for test in tests)
    return f"""\
# {NOTEBOOK}

Fill in the exercises in `{NOTEBOOK}`, run every cell (every visible test should print `passed`),
then commit and push. Each push runs the visible tests here on GitHub (the Actions tab shows them);
they are worth {total} points in GitHub Classroom. Your grade comes from the course's grader, which
also runs hidden tests: passing the visible ones is a start, not the grade.

To run the visible tests on your machine as GitHub does:

```sh
python -m pip install -r requirements.txt
python {RUNNER.as_posix()} run
```

Keep the notebook's name and place, and do not edit the test cells (edits to them are not counted).
"""


def gitignore() -> str:
    return f"{RUNNER.with_name('results.json').as_posix()}\n.ipynb_checkpoints/\n__pycache__/\n"


def check_release(root: Path, release_nb) -> None:
    """Refuse a release that leaks a solution or hidden-test line (release/ may be stale or hand-edited)."""
    source = source_notebook(root)
    if not source.exists():
        raise TemplateError(f"{source} is missing: the release cannot be checked for leaks")
    result = check_no_leaks(nbformat.read(source, as_version=4), release_nb)
    if not result.passed:
        raise TemplateError("the release is not fit for students: " + "; ".join(result.problems)
                            + " (run `python -m autograder release`)")


def write_template(root: Path, out: Path) -> Path:
    """Write the Classroom template repository for ``root``'s release into ``out``; return ``out``.

    Files already in ``out`` that the template does not have (a .git folder) are left alone.
    """
    release = release_notebook(root)
    release_nb = nbformat.read(release, as_version=4)
    check_release(root, release_nb)
    tests = visible_tests(release_nb)
    files = {
        Path("requirements.txt"): "\n".join(requirements(root, release_nb)) + "\n",
        RUNNER_CONFIG: json.dumps(runner_config(release_nb, tests), indent=2) + "\n",
        WORKFLOW: workflow(tests),
        Path("README.md"): readme(tests),
        Path(".gitignore"): gitignore(),
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release, out / NOTEBOOK)  # the bytes of the release: one source of truth
    shutil.copyfile(root / RUNNER, _parent_made(out / RUNNER))
    for relative, text in files.items():
        _parent_made(out / relative).write_text(text, encoding="utf-8")
    return out


def _parent_made(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
