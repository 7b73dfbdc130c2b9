"""A thin command line over the library functions of ``autograder``.

    python -m autograder release              generate release/ from source/ and check the assignment
    python -m autograder grade NOTEBOOK       grade one submission in the sandbox
    python -m autograder grade-class [SOURCE] grade a class (submitted/, a folder or an LMS zip) into
                                              gradebook.db; outputs and report in reports/05_autograd/
    python -m autograder merge SHARD...       merge the outputs of grade-class --shard runs into this course
    python -m autograder report               the class's scores from gradebook.db, student x test
    python -m autograder demo                 grade a demo class made from the validity corpus
    python -m autograder corpus               the validity corpus as a matrix (--grader nbgrader|trusted)
    python -m autograder gradescope-bundle    Gradescope's autograder.zip (default: reports/05_autograd/);
                                              gradescope-run is the step it runs per submission
    python -m autograder classroom-template OUT
                                              a GitHub Classroom assignment repository made from release/

Exit codes: 0 done, whatever the scores; 1 a check failed (release, corpus, a release the Classroom
template refuses), or a class run stopped (run it again to resume); 2 a usage error (a mistyped
path, a folder where a notebook was expected, an empty intake, shards that do not make one whole
class): nothing was recorded; 3 no sandbox here (see --unsafe-no-sandbox).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import default_root
from .intake import describe_layouts
from .identity import InvalidStudentId, check_student_id


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="course root (default: this checkout)")
    sub = parser.add_subparsers(dest="command", required=True)

    release = sub.add_parser("release", help="generate release/ from source/ and check the assignment")
    release.add_argument("--no-execute", action="store_true", help="skip the checks that execute notebooks")

    grade = sub.add_parser("grade", help="grade one submission in the sandbox")
    grade.add_argument("submission", type=Path)
    grade.add_argument("--student", type=_student_id,
                       help="student id; required with --record (otherwise the file name is shown). "
                            "ASCII letters, digits and _ . - @ +, starting with a letter or digit, "
                            "at most 128 characters")
    grade.add_argument("--format", choices=("text", "json", "junit", "markdown"), default="text")
    grade.add_argument("--out", type=Path, help="write the result here instead of to standard output")
    grade.add_argument("--feedback", type=Path, help="also write feedback.md and feedback.html into this folder")
    grade.add_argument("--record", action="store_true",
                       help="also store the scores in gradebook.db under --student (which is then required)")
    _common_grading_options(grade)

    grade_class = sub.add_parser("grade-class", help="grade a class: submitted/, a folder of notebooks, or an LMS zip")
    grade_class.add_argument("source", type=Path, nargs="?",
                             help="where the submissions are (default: the course's submitted/): "
                                  + describe_layouts())
    grade_class.add_argument("--workers", type=int, default=None,
                             help="submissions graded at once (default: the number of cores)")
    grade_class.add_argument("--force", action="store_true",
                             help="grade again submissions already graded with the same notebook and assignment")
    grade_class.add_argument("--student", type=_student_id, help="grade (again) this student only")
    grade_class.add_argument("--shard", type=_shard, metavar="I/N",
                             help="grade only slice I of N (by a hash of the student id, so that adding a "
                                  "student moves nobody else), e.g. to split a class over CI jobs")
    grade_class.add_argument("--csv", type=Path, help="also copy the class CSV (reports/.../grades.csv) here")
    _common_grading_options(grade_class)

    merge = sub.add_parser("merge", help="merge the outputs of grade-class --shard I/N runs into this course",
                           description="Merge the outputs of every shard of a grade-class --shard I/N split "
                                       "into this course: gradebook, records, feedback, autograded notebooks, "
                                       "grades.csv, junit.xml and the class report. Each SHARD is a folder "
                                       "shaped like a course root, holding the shard run's reports/05_autograd/ "
                                       "(with its shard.json) and autograded/. Missing, repeated or unfinished "
                                       "shards, or shards of different intakes, are refused: nothing is written.")
    merge.add_argument("shards", type=Path, nargs="+", metavar="SHARD")
    merge.add_argument("--csv", type=Path, help="also copy the class CSV (reports/.../grades.csv) here")

    report = sub.add_parser("report", help="the class's scores from gradebook.db, student x test")
    report.add_argument("--csv", type=Path, help="also write them as CSV here")

    demo = sub.add_parser("demo", help="grade a demo class made from the validity corpus")
    demo.add_argument("--workdir", type=Path,
                      help="where to build the demo course (default: reports/demo_class/, made afresh)")
    _common_grading_options(demo)

    corpus = sub.add_parser("corpus", help="grade the validity corpus with nbgrader autograde; print the matrix")
    corpus.add_argument("--corpus-file", type=Path, default=None, help="default: corpus/validity.py")
    corpus.add_argument("--grader", choices=("nbgrader", "trusted"), default="nbgrader",
                        help="grade with nbgrader autograde (default) or with the sandboxed trusted grader")
    _common_grading_options(corpus)

    template = sub.add_parser("classroom-template",
                              help="write a GitHub Classroom assignment repository made from the release notebook")
    template.add_argument("out", type=Path, metavar="OUT", help="the folder to write (must be empty or new)")
    template.add_argument("--force", action="store_true",
                          help="write into OUT even if it is not empty (its other files are left alone)")

    bundle = sub.add_parser("gradescope-bundle", help="write Gradescope's autograder.zip (setup.sh, run_autograder, "
                                                      "the grader and the instructor notebook)")
    bundle.add_argument("--out", type=Path, default=None,
                        help="the zip to write, or an existing folder to write autograder.zip in "
                             "(default: reports/05_autograd/autograder.zip)")
    bundle.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="make the bundle grade where Gradescope's container has no sandbox (usual in "
                             "Docker). UNSAFE: student code then runs with the grader's rights in the "
                             "container and can read the hidden tests and rewrite its own results.json")
    gradescope_run = sub.add_parser("gradescope-run", help="(run by the bundle's run_autograder on Gradescope) "
                                                           "grade submission/, write results/results.json")
    gradescope_run.add_argument("--gradescope-root", type=Path, default=None,
                                help="Gradescope's folder (default: $GRADESCOPE_ROOT, else /autograder)")
    gradescope_run.add_argument("--unsafe-no-sandbox", action="store_true",
                                help="grade even where no sandbox is available (the bundle's builder chose so)")
    return parser


def _common_grading_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, help="base seed of the random inputs (default: fresh each run)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade even where no sandbox is available. UNSAFE: student code then runs with "
                             "the grader's own rights, so neither this machine nor the grade is protected: it "
                             "can read or change any file the grader can (the gradebook, instructor files), "
                             "import the reference engine to copy its answers, and leave processes behind. "
                             "Use only for code you trust")


def _shard(text: str):
    from .intake import Shard

    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _student_id(text: str) -> str:
    try:
        return check_student_id(text)
    except InvalidStudentId as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid student id: {error}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "grade" and args.record and args.student is None:
        # The file name is the uploader's choice: recording under it would let
        # anyone's upload named victim.ipynb replace victim's grade.
        parser.error("grade --record needs --student ID: the gradebook entry is never taken from the file name")
    root = (args.root or default_root()).resolve()
    from .grader import SandboxUnavailable

    try:
        return COMMANDS[args.command](args, root)
    except SandboxUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 3


def _release(args, root: Path) -> int:
    from .release import release

    results = release(root, execute=not args.no_execute)
    for result in results:
        print(("ok    " if result.passed else "FAIL  ") + result.name)
        for problem in result.problems:
            print("      - " + problem)
    return 0 if all(result.passed for result in results) else 1


def _grade(args, root: Path) -> int:
    from .formats import instructor_summary, render
    from .grader import grade_submission

    problem = _not_a_notebook(args.submission)
    if problem:
        print(f"error: {problem}; nothing was graded or recorded", file=sys.stderr)
        return 2
    result = grade_submission(args.submission, root=root, student=args.student, base_seed=args.seed,
                              allow_unsandboxed=args.unsafe_no_sandbox)
    # The seed and the isolation detail are for the instructor: standard error,
    # never the rendered result, which may be handed to the student (--out).
    print(instructor_summary(result), file=sys.stderr)
    text = render(result, args.format)
    if args.out:
        args.out.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
    else:
        print(text)
    if args.feedback:
        from .assignment import load_assignment
        from .course import source_notebook
        from .feedback import write_feedback

        write_feedback(result, load_assignment(source_notebook(root)), args.feedback)
    if args.record:
        from .gradebook import record

        record(result, root=root)
    return 0  # graded, whatever the score: only a failure of the grader itself is an error


def _grade_class(args, root: Path) -> int:
    from concurrent.futures.process import BrokenProcessPool

    from .classroom import UnknownStudent, grade_class, summary
    from .course import outputs_folder
    from .gradebook import class_rows
    from .intake import UnreadableIntake
    from .tables import class_table

    source = args.source or root / "submitted"
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        run = grade_class(root, source=source, workers=args.workers, force=args.force, student=args.student,
                          base_seed=args.seed, allow_unsandboxed=args.unsafe_no_sandbox, shard=args.shard)
    except (UnreadableIntake, UnknownStudent) as error:
        print(f"error: {error}; nothing was graded", file=sys.stderr)
        return 2
    except BrokenProcessPool:
        print("error: a grading worker process died (out of memory?). What was recorded is kept: run the "
              "same command again to grade the rest", file=sys.stderr)
        return 1
    if not run.intake.submissions and run.other_shards:
        print(f"shard {args.shard.index}/{args.shard.count} holds none of the {run.other_shards} submissions in "
              f"{run.intake.looked}: nothing to grade here")
        return 0
    if not run.intake.submissions and not run.skipped:
        print(f"error: no submissions found in {run.intake.looked}. The class command reads "
              f"{describe_layouts()}.", file=sys.stderr)
        return 2
    if run.graded or run.kept:
        print()
        print(class_table(class_rows(root)))
    if run.skipped:
        print("\nNot graded: names that are not valid student ids (rename them and grade again):")
        for skipped in run.skipped:
            print(f"  {skipped.shown_name}: {skipped.reason}")
        print(f"warning: {len(run.skipped)} submission(s) have names that are not valid student ids and were "
              "not graded; see the end of the table", file=sys.stderr)
    print()
    print(summary(run))
    outputs = outputs_folder(root)
    if run.graded or run.kept:
        print(f"class report: {outputs / 'report.html'} (and report.md); grades.csv, junit.xml and each "
              f"student's results.json and feedback in {outputs}")
    if args.csv and (outputs / "grades.csv").exists():
        args.csv.write_bytes((outputs / "grades.csv").read_bytes())
    return 0


def _not_a_notebook(path: Path) -> str:
    """Why ``path``, named by the person running the command, cannot be a submission; "" if it can."""
    if not path.exists():
        return f"{path} does not exist"
    if path.is_dir():
        return f"{path} is a folder; grade one notebook file, or a class with grade-class"
    if path.suffix != ".ipynb":
        return f"{path} is not a notebook (.ipynb)"
    return ""


def _merge(args, root: Path) -> int:
    from .course import outputs_folder
    from .gradebook import class_rows
    from .shards import MergeRefused, merge_shards
    from .tables import class_table

    try:
        merged = merge_shards(root, args.shards, show_progress=True)
    except MergeRefused as error:
        print(f"error: {error}; nothing was merged", file=sys.stderr)
        return 2
    print(class_table(class_rows(root)))
    print()
    print(f"merged {len(merged.shards)} shard(s), {len(merged.students)} student(s), in {merged.seconds:.1f} s")
    outputs = outputs_folder(root)
    print(f"class report: {outputs / 'report.html'} (and report.md); grades.csv, junit.xml and each "
          f"student's results.json and feedback in {outputs}")
    if args.csv:
        args.csv.write_bytes((outputs / "grades.csv").read_bytes())
    return 0


def _report(args, root: Path) -> int:
    from .gradebook import assignment_in_gradebook, class_rows, class_scores
    from .tables import class_csv, class_table, score_matrix

    if not assignment_in_gradebook(root):
        print("gradebook.db has no grades for this assignment yet: run grade-class first", file=sys.stderr)
        return 1
    rows = class_rows(root)
    print(score_matrix(class_scores(root=root)))
    print()
    print(class_table(rows))
    if args.csv:
        args.csv.write_text(class_csv(rows), encoding="utf-8")
    return 0


def _demo(args, root: Path) -> int:
    from . import sandbox
    from .demo import run_demo

    isolation = sandbox.detect_isolation()
    print(f"sandbox: {isolation.level}" + (f" ({isolation.how_to_enable})" if isolation.how_to_enable else ""))
    if isolation.level == "none":
        # The demo's submissions are generated by this project's own code, so
        # grading them unisolated harms nothing; real submissions still need
        # a sandbox or --unsafe-no-sandbox.
        print("no sandbox here: the demo grades its own generated submissions without one")
    print(run_demo(root, workdir=args.workdir, base_seed=args.seed,
                   allow_unsandboxed=args.unsafe_no_sandbox or isolation.level == "none"))
    return 0


def _corpus(args, root: Path) -> int:
    from .validity import grade_corpus, grade_corpus_trusted

    corpus_file = args.corpus_file or root / "corpus" / "validity.py"
    if args.grader == "trusted":
        report = grade_corpus_trusted(root, corpus_file, base_seed=args.seed,
                                      allow_unsandboxed=args.unsafe_no_sandbox)
    else:
        report = grade_corpus(root, corpus_file)
    print(report.text())
    return 0 if report.all_as_expected else 1


def _gradescope_bundle(args, root: Path) -> int:
    from .course import outputs_folder
    from .gradescope import BundleError, build_bundle

    out = args.out
    if out is None:
        out = outputs_folder(root) / "autograder.zip"
        out.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = build_bundle(root, out, allow_unsandboxed=args.unsafe_no_sandbox)
    except BundleError as error:
        print(f"error: {error}; no bundle was written", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB): upload it as the assignment's autograder on Gradescope")
    if args.unsafe_no_sandbox:
        print("warning: this bundle grades without a sandbox where the container has none: student code can then "
              "read the hidden tests and set its own score", file=sys.stderr)
    else:
        print("where Gradescope's container has no sandbox, this bundle grades nothing and says so (see "
              "--unsafe-no-sandbox)")
    return 0


def _gradescope_run(args, root: Path) -> int:
    import os

    from .gradescope import run

    gradescope_root = args.gradescope_root or Path(os.environ.get("GRADESCOPE_ROOT") or "/autograder")
    return run(gradescope_root, root, allow_unsandboxed=args.unsafe_no_sandbox)


def _classroom_template(args, root: Path) -> int:
    from .classroom_template import TemplateError, write_template

    if args.out.exists() and not args.out.is_dir():
        print(f"error: {args.out} is a file; name a folder to write the template in", file=sys.stderr)
        return 2
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        print(f"error: {args.out} is not empty; name a new folder, or add --force to write into it",
              file=sys.stderr)
        return 2
    try:
        out = write_template(root, args.out)
    except TemplateError as error:
        print(f"error: {error}; no template was written", file=sys.stderr)
        return 1
    print(f"wrote the GitHub Classroom template in {out}: push it to a repository, mark that a template "
          "repository and choose it as the assignment's starter code")
    return 0


COMMANDS = {"release": _release, "grade": _grade, "grade-class": _grade_class, "merge": _merge,
            "report": _report, "demo": _demo, "corpus": _corpus, "gradescope-bundle": _gradescope_bundle,
            "gradescope-run": _gradescope_run, "classroom-template": _classroom_template}
