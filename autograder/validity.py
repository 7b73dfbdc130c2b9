"""The validity corpus: does every test grade right?

The corpus holds the blank release (must score 0), the instructor's solution
(must score 100%), and the variants of a corpus file: realistic wrong
implementations that must lose exactly the tests naming their mistake, and
correct ones in other styles that must score 100%.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .nbgrader_autograde import autograde_with_nbgrader, ran_to_end
from .progress import Progress, step
from .tables import score_matrix
from .variants import Variant, instructor_bodies, load_variants, submission_notebook, variant_notebook
from .course import release_notebook, source_notebook
from .results import CellScore, Status


def lost_tests(cell_scores: dict[str, CellScore]) -> frozenset[str]:
    """The tests that did not get full points (ungraded counts as lost)."""
    return frozenset(
        grade_id for grade_id, cell in cell_scores.items() if cell.score is None or cell.score < cell.max_score
    )


@dataclass
class CorpusReport:
    scores: dict[str, dict[str, CellScore]]
    expected_lost: dict[str, frozenset[str]]
    ran_to_end: dict[str, bool]
    may_lose: dict[str, frozenset[str]] = field(default_factory=dict)

    def differences(self) -> dict[str, str]:
        """Per submission whose grades differ from the expectation, what differs."""
        found = {}
        for name, expected in self.expected_lost.items():
            row = self.scores.get(name) or {}
            if not row:
                found[name] = "was not graded"
                continue
            lost = lost_tests(row)
            parts = []
            unexpected = lost - expected - self.may_lose.get(name, frozenset())
            if unexpected:
                parts.append("lost unexpectedly: " + ", ".join(sorted(unexpected)))
            if expected - lost:
                parts.append("kept unexpectedly: " + ", ".join(sorted(expected - lost)))
            if parts:
                found[name] = "; ".join(parts)
        return found

    @property
    def all_as_expected(self) -> bool:
        return not self.differences()

    def text(self) -> str:
        lines = [score_matrix(self.scores), ""]
        differences = self.differences()
        for name in self.expected_lost:
            lines.append(f"{'ok  ' if name not in differences else 'DIFF'} {name}"
                         + (f": {differences[name]}" if name in differences else ""))
        return "\n".join(lines)


def corpus_notebooks(root: Path, variants: list[Variant]):
    """Every corpus submission as a notebook, with the tests each must lose."""
    source_nb = nbformat.read(source_notebook(root), as_version=4)
    release_nb = nbformat.read(release_notebook(root), as_version=4)
    all_tests = frozenset(
        cell.metadata["nbgrader"]["grade_id"]
        for cell in source_nb.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    )
    notebooks = {
        "blank": release_nb,
        "instructor": submission_notebook(release_nb, instructor_bodies(source_nb)),
    }
    expected = {"blank": all_tests, "instructor": frozenset()}
    for variant in variants:
        notebooks[variant.name] = variant_notebook(variant, root=root)
        expected[variant.name] = frozenset(variant.loses)
    return notebooks, expected


def may_lose(variants: list[Variant]) -> dict[str, frozenset[str]]:
    return {variant.name: variant.may_lose for variant in variants if variant.may_lose}


def grade_corpus(root: Path, corpus_file: Path) -> CorpusReport:
    """The corpus under ``nbgrader autograde`` (tests run inside the submission's kernel)."""
    variants = load_variants(corpus_file)
    notebooks, expected = corpus_notebooks(root, variants)
    step(f"grading {len(notebooks)} corpus notebooks with nbgrader autograde, one kernel each "
         f"(about {3 * len(notebooks)} s) ...")
    scores, autograded = autograde_with_nbgrader(notebooks, root=root)
    return CorpusReport(scores, expected, {name: ran_to_end(nb) for name, nb in autograded.items()},
                        may_lose(variants))


def grade_corpus_trusted(root: Path, corpus_file: Path, *, base_seed: int | None = None,
                         allow_unsandboxed: bool = False) -> CorpusReport:
    """The corpus under the trusted grader (the student's engine in the sandbox, judged outside)."""
    from .grader import grade_submission

    variants = load_variants(corpus_file)
    notebooks, expected = corpus_notebooks(root, variants)
    scores, finished = {}, {}
    progress = Progress(len(notebooks), "grading the corpus")
    with tempfile.TemporaryDirectory(prefix="corpus-trusted-") as folder:
        for name, notebook in notebooks.items():
            path = Path(folder) / f"{name}.ipynb"
            nbformat.write(notebook, path)
            result = grade_submission(path, root=root, student=name, base_seed=base_seed,
                                      allow_unsandboxed=allow_unsandboxed)
            scores[name] = {test.name: CellScore(test.score, test.max_score) for test in result.tests}
            finished[name] = result.status == Status.GRADED
            progress.advance()
    progress.close()
    return CorpusReport(scores, expected, finished, may_lose(variants))
