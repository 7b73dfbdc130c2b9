"""The GitHub Actions workflows, and the GitHub Classroom template generated from the release notebook.

actionlint checks every workflow (the course's and the template's). The template's runner is
run as Classroom runs it: once over the notebook, then one check command per visible test, each
taken from the generated workflow, on the blank release, on right submissions and on a wrong one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.checks import nbgrader_meta, secret_only_lines
from autograder.classroom_template import RUNNER, WORKFLOW, TemplateError, check_release, requirements, write_template
from autograder.cli import main as cli_main
from autograder.course import NOTEBOOK, release_notebook, source_notebook
from autograder.notebook_regions import outside_regions
from autograder.variants import Variant, load_variants, variant_notebook

ROOT = Path(__file__).resolve().parents[1]
COMMAND_GRADER = "classroom-resources/autograding-command-grader@v1"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"
COMMAND_GRADER_INPUTS = {"test-name", "setup-command", "command", "timeout", "max-score"}
# GitHub Classroom's own two actions (@v1, the only versions) still run on node20, which actionlint
# reports as deprecated; that one message is ignored in the Classroom template, and nowhere else.
NODE20_DEPRECATION = r'runtime "node20" is deprecated'
MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION",
           "check_against_reference", "autograder.scenarios", "import tinytorch", "from tinytorch")


def _source_nb():
    return nbformat.read(source_notebook(ROOT), as_version=4)


def _release_nb():
    return nbformat.read(release_notebook(ROOT), as_version=4)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return write_template(ROOT, tmp_path_factory.mktemp("classroom") / "assignment")


@pytest.fixture
def repo(template, tmp_path) -> Path:
    """A student's copy of the template, free to change."""
    return Path(shutil.copytree(template, tmp_path / "repo"))


def _workflow(folder: Path) -> dict:
    return yaml.safe_load((folder / WORKFLOW).read_text(encoding="utf-8"))


def _steps(folder: Path) -> list[dict]:
    (job,) = _workflow(folder)["jobs"].values()
    return job["steps"]


def _grader_steps(folder: Path) -> list[dict]:
    return [step for step in _steps(folder) if step.get("uses") == COMMAND_GRADER]


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a workflow command here: its `python` is the interpreter running the tests."""
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


def _run_notebook(folder: Path) -> None:
    (step,) = [step for step in _steps(folder) if step.get("run", "").startswith(f"python {RUNNER.as_posix()} run")]
    result = _shell(step["run"], folder)
    assert result.returncode == 0, result.stderr


def _verdicts(folder: Path) -> dict[str, int]:
    """Each visible test's check step, as the command grader runs it: its exit status."""
    return {step["id"]: _shell(step["with"]["command"], folder).returncode for step in _grader_steps(folder)}


def _visible_points_from_source() -> dict[str, int]:
    """Test cells with code outside their hidden region, read from source/: independent of the template code."""
    points = {}
    for cell in _source_nb().cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            code = [line for line in outside_regions(cell.source) if line.strip() and not line.strip().startswith("#")]
            if code:
                points[meta["grade_id"]] = meta["points"]
    return points


# --- actionlint ------------------------------------------------------------------------------------------------


def _actionlint() -> str:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("actionlint", path=search)
    if found:
        return found
    reason = "actionlint is not installed (the test extra installs it: pip install -e '.[test]')"
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must run this check, not skip it")
    pytest.skip(reason)


def _lint(*files: Path, ignore: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    ignored = [argument for pattern in ignore for argument in ("-ignore", pattern)]
    return subprocess.run([_actionlint(), "-oneline", "-no-color", *ignored, *map(str, files)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_course_workflows_pass_actionlint():
    files = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "grade.yml"}
    result = _lint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_template_workflow_passes_actionlint(template):
    result = _lint(template / WORKFLOW, ignore=(NODE20_DEPRECATION,))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The check can fail: a step reading an output of a step that does not exist."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ steps.nowhere.outputs.result }}\n", encoding="utf-8")
    assert _lint(broken).returncode != 0


# --- what the template holds ------------------------------------------------------------------------------------


def test_the_template_holds_the_release_notebook_and_its_runner(template):
    assert (template / NOTEBOOK).read_bytes() == release_notebook(ROOT).read_bytes()
    assert (template / RUNNER).read_bytes() == (ROOT / RUNNER).read_bytes()
    assert "results.json" in (template / ".gitignore").read_text(encoding="utf-8")


def _texts(path: Path) -> list[str]:
    """What a file says: a notebook's cell sources, a JSON file's strings, else the text."""
    if path.suffix == ".ipynb":
        return [cell.source for cell in nbformat.read(path, as_version=4).cells]
    if path.suffix == ".json":
        strings = []

        def walk(value):
            if isinstance(value, str):
                strings.append(value)
            elif isinstance(value, (list, dict)):
                for item in (value.values() if isinstance(value, dict) else value):
                    walk(item)

        walk(json.loads(path.read_text(encoding="utf-8")))
        return strings
    return [path.read_text(encoding="utf-8")]


def test_the_template_holds_no_hidden_test_and_no_solution(template):
    secret = secret_only_lines(_source_nb())
    assert len(secret) > 100  # the solution and hidden-test lines were read, so their absence means something
    files = [path for path in template.rglob("*") if path.is_file()]
    assert len(files) >= 6
    for path in files:
        texts = _texts(path)
        for marker in MARKERS:
            assert not any(marker in text for text in texts), f"{path.name} contains {marker!r}"
        lines = {line.strip() for text in texts for line in text.splitlines()}
        assert not lines & secret, f"{path.name} contains solution or hidden-test lines: {sorted(lines & secret)[:3]}"


def test_a_release_that_leaks_is_refused():
    leaking = _release_nb()
    hidden_line = sorted(secret_only_lines(_source_nb(), hidden_only=True), key=len)[-1]
    leaking.cells[-1].source += "\n" + hidden_line
    with pytest.raises(TemplateError, match="not fit for students"):
        check_release(ROOT, leaking)


def test_requirements_cover_the_notebook_and_refuse_the_reference_engine(template):
    wanted = {line.split(">")[0].split("=")[0].split("<")[0].strip()
              for line in (template / "requirements.txt").read_text(encoding="utf-8").splitlines() if line.strip()}
    assert wanted == {"numpy", "nbclient", "nbformat", "ipykernel"}
    importing = _release_nb()
    importing.cells[1].source += "\nimport tinytorch\n"
    with pytest.raises(TemplateError, match="tinytorch"):
        requirements(ROOT, importing)


def test_one_step_per_visible_test_worth_its_points(template):
    release_points = {nbgrader_meta(c)["grade_id"]: nbgrader_meta(c).get("points")
                      for c in _release_nb().cells if nbgrader_meta(c).get("grade")}
    steps = _grader_steps(template)
    assert {step["id"]: step["with"]["max-score"] for step in steps} == _visible_points_from_source()
    for step in steps:
        assert step["with"]["max-score"] == release_points[step["id"]]
        assert set(step["with"]) <= COMMAND_GRADER_INPUTS
        assert step["with"]["command"].endswith(f"check {step['id']}")
        assert step["with"]["test-name"] == step["name"]
    assert len({step["with"]["test-name"] for step in steps}) == len(steps)


def test_the_reporter_reads_every_test_step(template):
    steps = _steps(template)
    assert steps[-1]["uses"] == REPORTER
    ids = [step["id"] for step in _grader_steps(template)]
    assert steps[-1]["with"]["runners"].split(",") == ids
    assert steps[-1]["env"] == {f"{i.upper()}_RESULTS": f"${{{{ steps.{i}.outputs.result }}}}" for i in ids}


def test_the_workflow_runs_the_notebook_once_before_the_checks(template):
    steps = _steps(template)
    runs = [n for n, step in enumerate(steps) if step.get("run", "").startswith(f"python {RUNNER.as_posix()} run")]
    checks = [n for n, step in enumerate(steps) if step.get("uses") == COMMAND_GRADER]
    assert len(runs) == 1 and runs[0] < min(checks)
    assert not any("run" in step["with"]["command"].split()[:3] for step in _grader_steps(template))
    # A run that dies must not skip the checks: Classroom then gets a report of failures, not nothing.
    assert steps[runs[0]].get("continue-on-error") is True


# --- the runner, as Classroom runs it -----------------------------------------------------------------------------


@pytest.mark.nbgrader
def test_the_blank_release_fails_every_visible_test(repo):
    _run_notebook(repo)
    verdicts = _verdicts(repo)
    assert len(verdicts) == len(_visible_points_from_source())
    assert all(code != 0 for code in verdicts.values()), verdicts


@pytest.mark.nbgrader
@pytest.mark.parametrize("variant", ["instructor_solution", "correct_helper_cell"])
def test_a_right_submission_passes_every_visible_test(repo, variant):
    chosen = ({v.name: v for v in load_variants(ROOT / "corpus" / "validity.py")}.get(variant)
              or Variant(variant, "the instructor's solutions, unchanged"))
    nbformat.write(variant_notebook(chosen, root=ROOT), repo / NOTEBOOK)
    _run_notebook(repo)
    verdicts = _verdicts(repo)
    assert verdicts and all(code == 0 for code in verdicts.values()), verdicts


@pytest.mark.nbgrader
def test_a_wrong_multiplication_fails_only_the_tests_that_use_it(repo):
    variant = {v.name: v for v in load_variants(ROOT / "corpus" / "validity.py")}["mul_swapped_operands"]
    nbformat.write(variant_notebook(variant, root=ROOT), repo / NOTEBOOK)
    _run_notebook(repo)
    failed = {test for test, code in _verdicts(repo).items() if code != 0}
    assert failed == {"test_mul_visible", "test_complex_graph_visible"}


@pytest.mark.nbgrader
def test_edited_test_cells_count_as_the_originals(repo):
    notebook = nbformat.read(repo / NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if nbgrader_meta(cell).get("grade"):
            cell.source = 'print("passed")'
    nbformat.write(notebook, repo / NOTEBOOK)
    _run_notebook(repo)
    assert all(code != 0 for code in _verdicts(repo).values())


@pytest.mark.nbgrader
def test_a_check_after_the_notebook_changed_fails(repo):
    nbformat.write(variant_notebook(Variant("instructor", "right"), root=ROOT), repo / NOTEBOOK)
    _run_notebook(repo)
    (repo / NOTEBOOK).write_bytes(release_notebook(ROOT).read_bytes())
    result = _shell(_grader_steps(repo)[0]["with"]["command"], repo)
    assert result.returncode != 0 and "changed" in result.stderr


def test_a_check_without_a_run_fails(repo):
    result = _shell(_grader_steps(repo)[0]["with"]["command"], repo)
    assert result.returncode != 0 and "no recorded run" in result.stderr


def test_a_missing_notebook_fails_every_test_and_says_why(repo):
    (repo / NOTEBOOK).unlink()
    _run_notebook(repo)
    result = _shell(_grader_steps(repo)[0]["with"]["command"], repo)
    assert result.returncode != 0 and "not in the repository" in result.stderr


# --- the command ------------------------------------------------------------------------------------------------


def test_the_command_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path, capsys):
    out = tmp_path / "assignment"
    assert cli_main(["classroom-template", str(out)]) == 0
    assert (out / WORKFLOW).is_file()
    (out / NOTEBOOK).write_text("changed")
    assert cli_main(["classroom-template", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / NOTEBOOK).read_text() == "changed"
    assert cli_main(["classroom-template", str(out), "--force"]) == 0
    assert (out / NOTEBOOK).read_bytes() == release_notebook(ROOT).read_bytes()
    (tmp_path / "file").write_text("")
    assert cli_main(["classroom-template", str(tmp_path / "file")]) == 2
