"""The tamper corpus (corpus/tamper.py) under the trusted grader.

Each attack must score exactly what the honest code under it scores, read
nothing it should not (a leak would raise its score), and leave no trace: no
surviving process, no file written outside its scratch folder, the gradebook
untouched, no connection made.  Needs a sandbox (bubblewrap or unshare);
without one the module is skipped and says how to get one.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from autograder.variants import attack_notebook, base_notebook, load_corpus_file
from autograder.course import copy_course, source_notebook
from autograder.assignment import load_assignment
from autograder.checks import secret_only_lines
from autograder.feedback import feedback_html, feedback_markdown
from autograder.formats import render
from autograder.grader import grade_submission

pytestmark = [pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261126
LIMITS = sandbox.Limits(wall_seconds=20.0, cpu_seconds=20, memory_bytes=1024**3, max_processes=16,
                        output_bytes=4 * 1024**2)


CORPUS = load_corpus_file(ROOT / "corpus" / "tamper.py")
ASSIGNMENT = load_assignment(source_notebook(ROOT))
# Scenario explanations are meant to be shown; only code must not be.
SUMMARIES = "\n".join(scenario.summary for test in ASSIGNMENT.tests for scenario in test.scenarios)
# Lines of solutions and hidden tests that stand nowhere public (long ones: "}" is everywhere).
SECRET_LINES = {line for line in secret_only_lines(nbformat.read(source_notebook(ROOT), as_version=4))
                if len(line) >= 8}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the course with a gradebook whose bytes the attacks must not change."""
    root = copy_course(ROOT, tmp_path_factory.mktemp("tamper-course"))
    (root / "gradebook.db").write_bytes(b"the instructor's gradebook")
    return root


@pytest.fixture(scope="module")
def listener():
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def _grade(notebook, path: Path, course: Path):
    nbformat.write(notebook, path)
    return grade_submission(path, root=course, base_seed=SEED, limits=LIMITS)


@pytest.fixture(scope="module")
def honest(isolation, course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("honest")
    return {base: _grade(base_notebook(base, root=ROOT), folder / f"{base}.ipynb", course)
            for base in ("blank", "backward_only", "aliasing")}


def test_honest_bases_score_as_expected(honest):
    assert honest["blank"].score == 0
    # backward alone earns the tests that need only backward() and the given operations.
    assert 0 < honest["backward_only"].score < 100
    assert honest["backward_only"].status == "graded"
    # The aliasing engine loses exactly the tests of shared gradient arrays (the visible and the hidden one).
    assert [t.name for t in honest["aliasing"].tests if t.score == 0] == ["test_backward_visible",
                                                                          "hidden_no_shared_gradients"]


def _surviving(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(text)
    return found


@pytest.mark.parametrize("attack", CORPUS.ATTACKS, ids=lambda attack: attack.name)
def test_attack_scores_what_the_honest_code_scores(attack, honest, course, listener, tmp_path, monkeypatch):
    port, accepted = listener
    marker = f"tamper-{attack.name}-{tmp_path.name}"
    monkeypatch.setenv("TAMPER_SECRET", "a CI secret the student must never see")
    notebook = attack_notebook(attack, root=ROOT, tokens={"COURSE_ROOT": str(course), "REPO_ROOT": str(ROOT),
                                                           "MARKER": marker, "PORT": str(port)})
    gradebook_before = hashlib.sha256((course / "gradebook.db").read_bytes()).hexdigest()

    result = _grade(notebook, tmp_path / "attack.ipynb", course)

    expected = honest[attack.base]
    assert result.status in attack.statuses, result.message
    assert {t.name: t.score for t in result.tests} == {t.name: t.score for t in expected.tests}
    assert result.max_score == 100
    assert _surviving(marker) == []
    assert hashlib.sha256((course / "gradebook.db").read_bytes()).hexdigest() == gradebook_before
    assert not (course / "results.json").exists()
    assert not list(Path(tempfile.gettempdir()).glob("grade-*/d")), "a scratch folder was left behind"
    assert accepted == []
    assert result.isolation.split(":")[0] in ("bubblewrap", "unshare")
    # Nothing the submission could read (hidden tests, solutions) comes back in what a student sees.
    # Every output format renders (a lone surrogate or a control character must not break them).
    shown = "".join(render(result, fmt) for fmt in ("json", "text", "markdown", "junit"))
    shown += feedback_markdown(result, ASSIGNMENT)
    shown.encode("utf-8")
    assert [line for line in SECRET_LINES if line in shown and line not in SUMMARIES] == []
    # Text from the student's process is shown as text: no link, emphasis or element of its own.
    page = feedback_html(feedback_markdown(result, ASSIGNMENT), "feedback")
    assert "<a " not in page and "<strong>Score" not in page and "<script" not in page and "<img" not in page


KEYRING_WRITER = """
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_payload = ENGINE.encode()
# add_key("user", "tamper-engine", payload, len, KEY_SPEC_SESSION_KEYRING)
_libc.syscall(248, b"user", b"tamper-engine", _payload, len(_payload), -3)
"""

KEYRING_READER = """
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_key = _libc.syscall(249, b"user", b"tamper-engine", None, -3)  # request_key
if _key > 0:
    _buffer = ctypes.create_string_buffer(65536)
    _size = _libc.syscall(250, 11, _key, _buffer, 65536)  # keyctl(KEYCTL_READ)
    if _size > 0:
        exec(_buffer.raw[:_size].decode(), globals())
        _cheat()
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the attack uses x86_64 syscall numbers")
def test_a_keyring_cannot_carry_an_engine_from_one_submission_to_the_next(honest, course, tmp_path):
    writer = base_notebook("backward_only", root=ROOT)
    reader = base_notebook("backward_only", root=ROOT)
    for notebook, code in ((writer, KEYRING_WRITER.replace("ENGINE", repr(CORPUS.CHEAT))),
                           (reader, KEYRING_READER)):
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "exercise_mul":
                cell.source += "\n\n" + code
    _grade(writer, tmp_path / "writer.ipynb", course)
    result = _grade(reader, tmp_path / "reader.ipynb", course)
    assert result.score == honest["backward_only"].score
