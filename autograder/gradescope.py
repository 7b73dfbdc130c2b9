"""Gradescope's autograder: the bundle an instructor uploads, and the step Gradescope runs per submission.

    python -m autograder gradescope-bundle [--out PATH] [--unsafe-no-sandbox]
        writes autograder.zip (default: reports/05_autograd/autograder.zip; a folder given as --out
        gets autograder.zip inside it).  Upload it as the assignment's autograder ("Zip file upload").
    python -m autograder --root /autograder/source gradescope-run [--gradescope-root DIR] [--unsafe-no-sandbox]
        what the bundle's run_autograder calls for each submission; not meant to be typed by people.

What the bundle holds: setup.sh and run_autograder at the top, then only what grading one
submission reads: the grader (autograder/), the reference engine (tinytorch/), the instructor
notebook (source/05_autograd/05_autograd.ipynb, with the hidden tests: Gradescope never shows the
autograder's files to students) and pyproject.toml with the README it names, so that setup.sh can
install the project's dependencies.  No gradebook, submissions, reports, tests, corpus or release:
Gradescope grades one submission at a time and records nothing here, so nbgrader_config.py is left
out too.

On Gradescope the zip is unpacked into /autograder/source, which is then the course root;
setup.sh (run once, as root, when Gradescope builds the image) installs Python, bubblewrap and a
venv at /autograder/venv.  run_autograder runs the bundle's own copy of the grader (its folder is
the working directory and first on PYTHONPATH, ahead of the copy pip installed), grades the
notebook found under /autograder/submission and writes /autograder/results/results.json
(``formats.to_gradescope``).  $GRADESCOPE_ROOT replaces /autograder, for trying the bundle
elsewhere (tests/test_gradescope_bundle.py does).

The sandbox: Gradescope runs each submission in a Docker container, where bubblewrap and unshare
may not be able to create namespaces (that depends on the host's seccomp profile, capabilities and
AppArmor settings, which Gradescope does not document; each run detects it).  The builder's choice
is written into run_autograder: built without --unsafe-no-sandbox, a container without isolation
grades nothing and every submission gets 0 with status grader_error and a message telling the
instructor how to rebuild; built with it, student code runs with the grader's rights inside the
container.  The isolation level (and the
seed of each grade) is printed to standard output, which results.json marks hidden from students.

Exit status: 0 whenever results.json was written, grader_error included, because Gradescope reads
only that file (without a valid one it shows its generic "The autograder failed to execute
correctly").  Only when not even a results.json could be written is the exit status non-zero; the
shell script then writes a minimal one itself.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path

from .course import ASSIGNMENT, NOTEBOOK, source_notebook
from .intake import JUNK
from .results import Status

BUNDLE_NAME = "autograder.zip"
# The course files the grader reads: two packages (their .py files), and single files.
PACKAGES = ("autograder", "tinytorch")
FILES = ("pyproject.toml", "README.md", f"source/{ASSIGNMENT}/{NOTEBOOK}")
# A fixed time for every zip entry, so that the same course builds the same bytes.
ENTRY_TIME = (2020, 1, 1, 0, 0, 0)

UNSAFE_FLAG = "--unsafe-no-sandbox"

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
# Made by `python -m autograder gradescope-bundle`.
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${GRADESCOPE_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive

apt-get update
# bubblewrap is the sandbox the student's engine runs in (when the container lets it work).
apt-get install -y --no-install-recommends python3 python3-venv python3-pip bubblewrap
PYTHON=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    # Ubuntu 22.04's python3 is 3.10; the grader needs 3.11, which its archive also has.
    apt-get install -y --no-install-recommends python3.11 python3.11-venv
    PYTHON=python3.11
fi
"$PYTHON" -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --upgrade pip
# Not editable: the image keeps a plain install; run_autograder still runs the bundle's copy.
"$ROOT/venv/bin/python" -m pip install "$SOURCE"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission (from its copy at /autograder/run_autograder).
# Made by `python -m autograder gradescope-bundle`; sandbox: {sandbox_choice}.
# Not -e: whatever fails, a results.json must be left behind.
set -uo pipefail
ROOT="${{GRADESCOPE_ROOT:-/autograder}}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"

# The bundle's own copy of the grader: its folder is the working directory (python -m puts that
# first on sys.path) and on PYTHONPATH, ahead of whatever the venv has installed.
cd "$ROOT/source" && PYTHONPATH="$ROOT/source" "$ROOT/venv/bin/python" -m autograder \\
    --root "$ROOT/source" gradescope-run --gradescope-root "$ROOT"{flag}
code=$?

if [ ! -s "$RESULTS" ]; then
    echo "the grader ended with exit code $code and left no results.json: writing a score of 0"
    printf '%s\\n' '{fallback}' > "$RESULTS" || exit 1
fi
exit 0
"""

# The student sees these (results.json's output); the details go to standard output, which they do not see.
NO_NOTEBOOK = ("no .ipynb file was found in your submission: upload your notebook, "
               f"{NOTEBOOK}, itself (not a PDF, a .py file or a link), then submit again")
GRADER_FAILED = ("the autograder itself failed on this submission (not a problem found in your work): "
                 "your instructor can see what happened; submitting again may help")
NO_SANDBOX = (
    "not graded: this Gradescope container offers no sandbox (bubblewrap and unshare cannot create "
    "namespaces in it), and this autograder was built to refuse running student code without one. "
    "Instructor: rebuild the bundle with `python -m autograder gradescope-bundle --unsafe-no-sandbox` "
    "and upload it again to grade without isolation. The risk: the student's code then runs with the "
    "grader's own rights in the container, so it can read the hidden tests and the reference engine "
    "and rewrite its own results.json, i.e. choose its own score. Each submission gets a fresh "
    "container, so other students' grades and your files are not at risk; hand-check grades that "
    "look suspicious"
)


class BundleError(ValueError):
    """The bundle cannot be built as asked (a missing course file, an output folder that does not exist)."""


# -- the bundle


def bundle_path(out: Path) -> Path:
    """Where ``out`` (a zip's path, or an existing folder to put autograder.zip in) puts the bundle."""
    return out / BUNDLE_NAME if out.is_dir() else out


def build_bundle(root: Path, out: Path, *, allow_unsandboxed: bool = False) -> Path:
    """Write Gradescope's autograder.zip for the course at ``root``; return its path.

    Written whole or not at all (a temporary file, then renamed), so a failed
    build never leaves half a bundle where the last good one was.
    """
    members = bundle_members(root)
    target = bundle_path(out)
    if not target.parent.is_dir():
        raise BundleError(f"{target.parent} is not a folder: create it first, or choose another --out")
    scripts = {"setup.sh": SETUP_SH, "run_autograder": run_script(allow_unsandboxed)}
    handle, temporary = tempfile.mkstemp(prefix=".autograder-", suffix=".zip", dir=target.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for name, text in scripts.items():
                _add(bundle, name, text.encode(), executable=True)
            for name, path in members:
                _add(bundle, name, path.read_bytes(), executable=False)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def bundle_members(root: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file in the course) for every course file the bundle carries."""
    members = []
    for package in PACKAGES:
        folder = root / package
        if not (folder / "__init__.py").is_file():
            raise BundleError(f"{folder} is not a Python package: is {root} the course root?")
        members += [(path.relative_to(root).as_posix(), path) for path in sorted(folder.rglob("*.py"))
                    if "__pycache__" not in path.parts]
    for name in FILES:
        if not (root / name).is_file():
            raise BundleError(f"{root / name} does not exist: is {root} the course root?")
        members.append((name, root / name))
    return members


def run_script(allow_unsandboxed: bool) -> str:
    choice = ("grades without one where the container has none (built with --unsafe-no-sandbox)"
              if allow_unsandboxed else "required (built without --unsafe-no-sandbox)")
    return RUN_AUTOGRADER.format(sandbox_choice=choice, flag=f" {UNSAFE_FLAG}" if allow_unsandboxed else "",
                                 fallback=_shell_quotable(json.dumps(bare_result(GRADER_FAILED))))


def _shell_quotable(text: str) -> str:
    # The fallback sits between single quotes in the script; JSON may spell a quote as an escape.
    return text.replace("'", "\\u0027")


def _add(bundle: zipfile.ZipFile, name: str, data: bytes, *, executable: bool) -> None:
    entry = zipfile.ZipInfo(name, date_time=ENTRY_TIME)
    entry.create_system = 3  # Unix, so that unzip honours the mode bits below
    entry.external_attr = (0o100755 if executable else 0o100644) << 16
    entry.compress_type = zipfile.ZIP_DEFLATED
    bundle.writestr(entry, data)


# -- the run, inside Gradescope's container


def run(gradescope_root: Path, course_root: Path, *, allow_unsandboxed: bool = False) -> int:
    """Grade the submission under ``gradescope_root`` and write its results.json; the exit status."""
    from . import sandbox

    print(f"grader: {Path(__file__).resolve().parent}; course root: {course_root}")
    isolation = sandbox.detect_isolation()
    print(f"isolation: {isolation.level} ({isolation.detail})")
    try:
        data = grade_upload(gradescope_root / "submission", course_root, allow_unsandboxed=allow_unsandboxed)
    except Exception:  # noqa: BLE001 - the student must still get a results.json; the trace is for the instructor
        traceback.print_exc(file=sys.stdout)
        data = _not_graded(course_root, Status.GRADER_ERROR, GRADER_FAILED, submission="")
    write_results(gradescope_root / "results" / "results.json", data)
    print(f"results.json: {data.get('status')}, {data.get('score')} / {data.get('max_score')}")
    return 0


def grade_upload(folder: Path, course_root: Path, *, allow_unsandboxed: bool) -> dict:
    """results.json's content for the notebook uploaded into ``folder``."""
    from .formats import instructor_summary, to_gradescope
    from .grader import SandboxUnavailable, grade_submission
    from .intake import choose

    notebooks = find_notebooks(folder)
    print(f"notebooks uploaded: {[path.relative_to(folder).as_posix() for path in notebooks]}")
    if not notebooks:
        return _not_graded(course_root, Status.MISSING, NO_NOTEBOOK, submission="no notebook")
    # The intake's rule for a student with several notebooks: the most exercise cells, then the latest.
    chosen = choose("submission", [(path, None) for path in notebooks]).path
    try:
        result = grade_submission(chosen, root=course_root, allow_unsandboxed=allow_unsandboxed)
    except SandboxUnavailable as error:
        print(f"refused: {error}")
        return _not_graded(course_root, Status.GRADER_ERROR, NO_SANDBOX, submission=chosen.name)
    if len(notebooks) > 1:
        others = ", ".join(_shown(path, folder) for path in notebooks if path != chosen)
        result.notes.insert(0, f"several notebooks were uploaded; graded {_shown(chosen, folder)}, not {others}")
    print(instructor_summary(result))
    return to_gradescope(result)


def find_notebooks(folder: Path) -> list[Path]:
    """Every .ipynb under ``folder``, in sub-folders too (students upload folders), links never followed."""
    found = []
    for here, folders, files in os.walk(folder):
        # Jupyter's checkpoints and macOS's zip leftovers are never the notebook meant for grading.
        folders[:] = sorted(name for name in folders if name not in JUNK)
        found += [Path(here) / name for name in sorted(files)
                  if name.endswith(".ipynb") and not name.startswith("._")
                  and not (Path(here) / name).is_symlink()]
    return found


def _shown(path: Path, folder: Path) -> str:
    return ascii(path.relative_to(folder).as_posix())


def _not_graded(course_root: Path, status: Status, message: str, *, submission: str) -> dict:
    """Every test at 0 with ``message``; a bare result if even the assignment cannot be read."""
    from .assignment import load_assignment
    from .formats import to_gradescope
    from .grader import ungraded

    try:
        assignment = load_assignment(source_notebook(course_root))
    except Exception:  # noqa: BLE001 - this is already the path for failures: it must not fail itself
        traceback.print_exc(file=sys.stdout)
        return bare_result(message, status)
    return to_gradescope(ungraded(assignment, status, message, student="submission", submission=submission,
                                  seed=0, isolation="not reached"))


def bare_result(message: str, status: Status = Status.GRADER_ERROR) -> dict:
    """A results.json without tests: for when the assignment itself cannot be read."""
    return {"score": 0, "output": f"not graded: {message}", "output_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden", "status": str(status)}


def write_results(path: Path, data: dict) -> None:
    """Written whole, then renamed: run_autograder takes an existing results.json as a finished one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
