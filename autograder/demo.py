"""The main job's demonstration: grade a small class made from the validity corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from .classroom import grade_class, summary
from .gradebook import class_rows
from .tables import class_table
from .variants import load_variants
from .course import copy_course, outputs_folder, release_notebook, submission_notebook_path, submitted_folder
from .validity import corpus_notebooks


def engine_demo() -> str:
    """The module's worked example f(x, y) = (x + y) * (x - y) at (3, 2), on the reference engine."""
    from tinytorch import Tensor

    x = Tensor(3.0, requires_grad=True)
    y = Tensor(2.0, requires_grad=True)
    total = x + y
    difference = x - y
    f = total * difference
    f.backward()
    return "\n".join(
        [
            "f(x, y) = (x + y) * (x - y) at x = 3, y = 2",
            f"  x + y = {total.item():g}    ({total.grad_fn!r})",
            f"  x - y = {difference.item():g}    ({difference.grad_fn!r})",
            f"  f     = {f.item():g}    ({f.grad_fn!r})",
            f"  df/dx = (x - y) + (x + y) = {x.grad.item():g}",
            f"  df/dy = (x - y) - (x + y) = {y.grad.item():g}",
        ]
    )


def build_demo_course(root: Path, workdir: Path) -> list[str]:
    """A copy of the course whose submitted/ holds the corpus plus two broken files; the student ids."""
    copy_course(root, workdir)
    notebooks, _ = corpus_notebooks(root, load_variants(root / "corpus" / "validity.py"))
    for student, notebook in notebooks.items():
        path = submission_notebook_path(workdir, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
    broken = submission_notebook_path(workdir, "truncated_upload")
    broken.parent.mkdir(parents=True, exist_ok=True)
    text = release_notebook(workdir).read_text(encoding="utf-8")
    broken.write_text(text[: len(text) // 2], encoding="utf-8")
    submission_notebook_path(workdir, "forgot_to_submit").parent.mkdir(parents=True, exist_ok=True)
    return sorted(p.name for p in submitted_folder(workdir).iterdir())


def run_demo(root: Path, *, workdir: Path | None = None, base_seed: int | None = None,
             allow_unsandboxed: bool = False) -> str:
    """Build the demo class in ``workdir`` (default: reports/demo_class/, made afresh), grade it with the
    class command's pipeline, and say what happened and where the report is."""
    workdir = workdir or root / "reports" / "demo_class"
    if workdir.exists():
        shutil.rmtree(workdir)
    students = build_demo_course(root, workdir)
    print(f"Demo class: {len(students)} submissions in {submitted_folder(workdir)}\n", flush=True)
    run = grade_class(workdir, base_seed=base_seed, allow_unsandboxed=allow_unsandboxed)
    outputs = outputs_folder(workdir)
    return "\n".join(["", engine_demo(), "", class_table(class_rows(workdir)), "", summary(run), "",
                      f"class report: {outputs / 'report.html'} (open it in a browser; report.md for a CI summary)",
                      f"gradebook: {workdir / 'gradebook.db'}   per-student results and feedback: "
                      f"{outputs / 'students'}"])
