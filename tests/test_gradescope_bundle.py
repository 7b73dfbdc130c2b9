"""Gradescope's autograder bundle: what it holds, and its real run_autograder run as Gradescope runs it.

Each run gets a folder laid out like Gradescope's container: <tmp>/autograder/source is the
unpacked bundle (mode bits as the zip gives them), submission/ the upload, results/ the output.
The venv setup.sh would make is stood in for by a symbolic link, <tmp>/autograder/venv, to this
test's own venv (same dependencies).  That venv also holds this checkout, installed editable, so
every run checks that the bundle's copy of the grader is the one that ran, not the checkout's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import gradescope, sandbox
from autograder.assignment import load_assignment
from autograder.cli import main
from autograder.course import release_notebook, source_notebook
from autograder.variants import instructor_notebook, load_variants, variant_notebook

pytestmark = [pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = load_assignment(source_notebook(ROOT))
# Where this machine has no sandbox the bundle is built to grade without one, as the other grading
# tests do, so that the runs still happen (they grade only submissions this project generated).
UNSANDBOXED = sandbox.detect_isolation().level == "none"
WRONG = "backward_propagates_first_arrival"


def _instructor_notebook():
    return instructor_notebook(root=ROOT)


def _variant(name: str):
    return {variant.name: variant for variant in load_variants(ROOT / "corpus" / "validity.py")}[name]


# Student data and project files a course root holds beside what the grader needs: none may travel.
PLANTED = ("gradebook.db", "submitted/alice/05_autograd/05_autograd.ipynb", "autograded/alice/05_autograd/x.ipynb",
           "feedback/alice/05_autograd/05_autograd.html", "reports/05_autograd/grades.csv", "corpus/validity.py",
           "tests/test_x.py", ".venv/pyvenv.cfg", "autograder/__pycache__/grader.cpython-311.pyc")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course root as an instructor's checkout is after a term: the course, and student data beside it."""
    course = tmp_path_factory.mktemp("course")
    for folder in ("autograder", "tinytorch", "source", "release"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "nbgrader_config.py"):
        shutil.copy(ROOT / name, course / name)
    for name in PLANTED:
        (course / name).parent.mkdir(parents=True, exist_ok=True)
        (course / name).write_text("student data")
    return course


@pytest.fixture(scope="module")
def bundle(course, tmp_path_factory) -> Path:
    return gradescope.build_bundle(course, tmp_path_factory.mktemp("bundle"), allow_unsandboxed=UNSANDBOXED)


def _container(folder: Path, bundle: Path) -> Path:
    """Gradescope's /autograder, under ``folder``: the bundle unpacked into source/, and a venv."""
    root = folder / "autograder"
    with zipfile.ZipFile(bundle) as archive:
        for entry in archive.infolist():
            Path(archive.extract(entry, root / "source")).chmod((entry.external_attr >> 16) & 0o777)
    (root / "submission").mkdir()
    (root / "results").mkdir()
    (root / "venv").symlink_to(Path(sys.prefix))
    return root


def _run(root: Path) -> tuple[subprocess.CompletedProcess, dict]:
    # The script itself, not "bash script": its shebang and execute bit are part of what is tested.
    done = subprocess.run([str(root / "source" / "run_autograder")], env=dict(os.environ, GRADESCOPE_ROOT=str(root)),
                          capture_output=True, text=True, timeout=300)
    results = root / "results" / "results.json"
    assert results.is_file(), done.stdout + done.stderr
    return done, json.loads(results.read_text())


def _submit_correct(submission: Path) -> None:
    """A folder upload holding the solution, beside an older blank copy and a Jupyter checkpoint."""
    release = nbformat.read(release_notebook(ROOT), as_version=4)
    nbformat.write(release, submission / "05_autograd-Copy1.ipynb")
    os.utime(submission / "05_autograd-Copy1.ipynb", (1_600_000_000, 1_600_000_000))
    (submission / "work" / ".ipynb_checkpoints").mkdir(parents=True)
    nbformat.write(release, submission / "work" / ".ipynb_checkpoints" / "05_autograd-checkpoint.ipynb")
    nbformat.write(_instructor_notebook(), submission / "work" / "05_autograd.ipynb")


UPLOADS = {
    "correct": _submit_correct,
    "wrong": lambda folder: nbformat.write(variant_notebook(_variant(WRONG), root=ROOT), folder / "05_autograd.ipynb"),
    "damaged": lambda folder: (folder / "05_autograd.ipynb").write_bytes(b"this is not JSON {"),
    "empty": lambda folder: (folder / "notes.txt").write_text("I forgot the notebook"),
}


@pytest.fixture(scope="module")
def runs(bundle, tmp_path_factory):
    """Each upload graded once, in a container of its own: name -> (root, finished process, results.json)."""
    graded = {}
    for name, upload in UPLOADS.items():
        root = _container(tmp_path_factory.mktemp(name), bundle)
        upload(root / "submission")
        graded[name] = (root, *_run(root))
    return graded


# -- the bundle


def test_the_bundle_holds_the_scripts_the_grader_and_the_instructor_notebook_only(bundle, course):
    with zipfile.ZipFile(bundle) as archive:
        modes = {entry.filename: entry.external_attr >> 16 for entry in archive.infolist()}
    names = set(modes)
    assert {name.split("/")[0] for name in names} == {
        "setup.sh", "run_autograder", "autograder", "tinytorch", "source", "pyproject.toml", "README.md"}
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & 0o111 == 0o111, f"{script} is not executable: {oct(modes[script])}"
    assert {"autograder/grader.py", "autograder/sandbox/run.py", "autograder/engine_host.py",
            "tinytorch/tensor.py"} <= names
    assert [name for name in names if name.startswith("source/")] == ["source/05_autograd/05_autograd.ipynb"]
    # The course beside it holds a gradebook, submissions, reports and a release: none of it travels.
    assert all((course / name).is_file() for name in PLANTED) and (course / "release").is_dir()
    student_data = [name for name in names
                    if name.endswith((".db", ".pyc", ".csv")) or "__pycache__" in name
                    or name.split("/")[0] in {"submitted", "autograded", "feedback", "grades", "reports", "release",
                                              "corpus", "tests", ".venv", "gradebook.db", "nbgrader_config.py"}]
    assert student_data == []
    assert source_notebook(ROOT).read_bytes() == zipfile.ZipFile(bundle).read("source/05_autograd/05_autograd.ipynb")


def test_setup_sh_is_valid_bash_and_installs_what_the_run_needs(bundle, tmp_path):
    script = tmp_path / "setup.sh"
    script.write_bytes(zipfile.ZipFile(bundle).read("setup.sh"))
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    text = script.read_text()
    assert "set -euo pipefail" in text and "bubblewrap" in text and "python3-venv" in text
    assert '-m venv "$ROOT/venv"' in text and 'pip install "$SOURCE"' in text and "pip install -e" not in text


def test_the_builders_sandbox_choice_is_written_into_run_autograder():
    assert "--unsafe-no-sandbox" not in gradescope.run_script(False).split("set -uo pipefail")[1]
    assert "gradescope-run --gradescope-root \"$ROOT\" --unsafe-no-sandbox" in gradescope.run_script(True)


def test_an_output_folder_that_does_not_exist_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "missing" / "autograder.zip"
    assert main(["--root", str(ROOT), "gradescope-bundle", "--out", str(out)]) == 2
    assert "no bundle was written" in capsys.readouterr().err
    assert not out.parent.exists()


def test_the_command_writes_autograder_zip_into_a_folder(tmp_path, capsys):
    assert main(["--root", str(ROOT), "gradescope-bundle", "--out", str(tmp_path)]) == 0
    assert zipfile.ZipFile(tmp_path / "autograder.zip").testzip() is None
    assert str(tmp_path / "autograder.zip") in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir()] == ["autograder.zip"]  # no temporary file left behind


# -- run_autograder, as Gradescope runs it


def test_every_run_ends_with_exit_0_and_the_bundles_own_grader(runs):
    level = sandbox.detect_isolation().level
    for name, (root, done, _) in runs.items():
        assert done.returncode == 0, (name, done.stderr)
        source = (root / "source").resolve()
        assert f"grader: {source / 'autograder'}; course root: {source}" in done.stdout, done.stdout
        assert f"isolation: {level} (" in done.stdout


def test_the_solution_in_an_uploaded_folder_scores_full_marks(runs):
    _, _, results = runs["correct"]
    assert results["status"] == "graded"
    assert results["score"] == results["max_score"] == ASSIGNMENT.max_score
    names = [test["name"].split(":")[0] for test in results["tests"]]
    assert names == [test.grade_id for test in ASSIGNMENT.tests]
    assert all(test["score"] == test["max_score"] > 0 for test in results["tests"])
    assert "graded 'work/05_autograd.ipynb', not '05_autograd-Copy1.ipynb'" in results["output"]
    assert "checkpoint" not in results["output"]


def test_a_wrong_engine_loses_exactly_the_tests_of_its_mistake(runs):
    _, _, results = runs["wrong"]
    variant = _variant(WRONG)
    failed = {test["name"].split(":")[0] for test in results["tests"] if test["status"] == "failed"}
    assert results["status"] == "graded" and 0 < results["score"] < results["max_score"]
    assert variant.loses <= failed <= variant.loses | variant.may_lose
    assert all(test["output"] for test in results["tests"] if test["status"] == "failed")


def test_a_damaged_notebook_scores_0_with_invalid_notebook(runs):
    _, _, results = runs["damaged"]
    assert (results["status"], results["score"], results["max_score"]) == ("invalid_notebook", 0, ASSIGNMENT.max_score)
    assert len(results["tests"]) == len(ASSIGNMENT.tests) and all(test["score"] == 0 for test in results["tests"])


def test_an_upload_without_a_notebook_is_told_to_upload_the_ipynb(runs):
    _, _, results = runs["empty"]
    assert (results["status"], results["score"]) == ("missing", 0)
    assert "upload your notebook, 05_autograd.ipynb" in results["output"]


def test_the_seed_is_only_in_the_instructor_object_and_the_hidden_stdout(runs):
    for name in ("correct", "wrong"):
        _, done, results = runs[name]
        seed = str(results["instructor"]["seed"])
        assert len(seed) > 20  # a fresh 128-bit seed: no accident can put these digits elsewhere
        shown = {key: value for key, value in results.items() if key != "instructor"}
        assert seed not in json.dumps(shown)
        assert results["stdout_visibility"] == "hidden" and f"seed: {seed}" in done.stdout


def test_a_run_that_cannot_even_start_python_still_leaves_results(bundle, tmp_path):
    root = _container(tmp_path, bundle)
    (root / "venv").unlink()  # as if setup.sh had failed
    done, results = _run(root)
    assert done.returncode == 0
    assert (results["status"], results["score"]) == ("grader_error", 0)
    assert "autograder itself failed" in results["output"] and "left no results.json" in done.stdout


# -- the run step in this process, where the machine's sandbox can be taken away


@pytest.fixture
def upload(tmp_path) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    nbformat.write(_instructor_notebook(), root / "submission" / "05_autograd.ipynb")
    return root


@pytest.fixture
def no_sandbox(monkeypatch):
    monkeypatch.setattr(sandbox, "detect_isolation",
                        lambda: sandbox.Isolation("none", "test: no namespaces here", "install bubblewrap"))


def _results(root: Path) -> dict:
    return json.loads((root / "results" / "results.json").read_text())


def test_without_a_sandbox_a_bundle_built_safe_grades_nothing_and_tells_the_instructor(upload, no_sandbox, capsys):
    assert gradescope.run(upload, ROOT) == 0
    results = _results(upload)
    assert (results["status"], results["score"]) == ("grader_error", 0)
    assert "gradescope-bundle --unsafe-no-sandbox" in results["output"]
    assert "choose its own score" in results["output"]
    assert "isolation: none (test: no namespaces here)" in capsys.readouterr().out


def test_without_a_sandbox_a_bundle_built_unsafe_grades(upload, no_sandbox):
    assert gradescope.run(upload, ROOT, allow_unsandboxed=True) == 0
    results = _results(upload)
    assert (results["status"], results["score"], results["isolation"]) == ("graded", ASSIGNMENT.max_score, "none")


def test_a_failing_grader_gives_grader_error_and_keeps_the_trace_off_results(upload, monkeypatch, capsys):
    from autograder import grader

    def broken(*args, **kwargs):
        raise RuntimeError("grader bug 4711")

    monkeypatch.setattr(grader, "grade_submission", broken)
    assert gradescope.run(upload, ROOT) == 0
    results = _results(upload)
    assert (results["status"], results["score"], results["max_score"]) == ("grader_error", 0, ASSIGNMENT.max_score)
    assert "4711" not in json.dumps(results)
    assert "RuntimeError: grader bug 4711" in capsys.readouterr().out
