"""Where the course's files are, and how to run nbgrader on them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ASSIGNMENT = "05_autograd"
NOTEBOOK_NAME = "05_autograd"  # what nbgrader's gradebook calls the notebook: its file name without .ipynb
NOTEBOOK = NOTEBOOK_NAME + ".ipynb"
# When set, the gradebook's SQLAlchemy URL (nbgrader_config.py reads it): a shared server, a CI secret.
DB_URL_VARIABLE = "AUTOGRADER_DB_URL"


def default_root() -> Path:
    """The course root: $AUTOGRADER_COURSE_ROOT, else the checkout this package lives in."""
    configured = os.environ.get("AUTOGRADER_COURSE_ROOT")
    return Path(configured).resolve() if configured else Path(__file__).resolve().parents[1]


def source_notebook(root: Path) -> Path:
    return root / "source" / ASSIGNMENT / NOTEBOOK


def release_notebook(root: Path) -> Path:
    return root / "release" / ASSIGNMENT / NOTEBOOK


def assignment_fingerprint(root: Path) -> str:
    """What a grade depends on besides the submission: the instructor notebook and the reference engine."""
    digest = hashlib.sha256(source_notebook(root).read_bytes())
    for path in sorted((root / "tinytorch").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def submitted_folder(root: Path) -> Path:
    """nbgrader's submitted/: one folder per student."""
    return root / "submitted"


def submission_notebook_path(root: Path, student: str) -> Path:
    """Where nbgrader keeps a student's submitted notebook: submitted/<student>/<assignment>/<notebook>."""
    return submitted_folder(root) / student / ASSIGNMENT / NOTEBOOK


def outputs_folder(root: Path) -> Path:
    """Everything grading writes besides nbgrader's own folders and gradebook: not committed (.gitignore)."""
    return root / "reports" / ASSIGNMENT


def students_folder(root: Path) -> Path:
    """Per student: results.json (the recorded result), feedback.md and feedback.html."""
    return outputs_folder(root) / "students"


def copy_course(root: Path, destination: Path, folders: tuple[str, ...] = ("source", "release")) -> Path:
    """A scratch course: the nbgrader configuration and ``folders`` of ``root``, without student data.

    Its gradebook (created by the first nbgrader command run in it) is its own,
    so tests, the corpus and the demo never touch the course's gradebook.db.
    """
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "nbgrader_config.py", destination / "nbgrader_config.py")
    for folder in folders:
        shutil.copytree(root / folder, destination / folder, dirs_exist_ok=True)
    return destination


def nbgrader(*args: str, root: Path, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one nbgrader command in ``root``, with this interpreter's environment (plus ``env``).

    nbgrader starts its own helpers (``alembic`` for the gradebook's schema), so
    the interpreter's bin folder goes first on PATH even when the caller did
    not activate the virtual environment.
    """
    bin_dir = str(Path(sys.executable).parent)
    environment = dict(os.environ, **(env or {}), PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"nbgrader {' '.join(args)} failed with exit code {result.returncode}:\n"
            + result.stderr[-4000:]
        )
    return result
