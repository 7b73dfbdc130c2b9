"""A thin command line over the library functions of ``autograder``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .course import default_root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    parser.add_argument("--root", type=Path, default=None, help="course root (default: this checkout)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show the reference engine on f(x, y) = (x + y) * (x - y)")
    release = sub.add_parser("release", help="generate release/ from source/ and check the assignment")
    release.add_argument("--no-execute", action="store_true", help="skip the checks that execute notebooks")
    corpus = sub.add_parser("corpus", help="grade the validity corpus and print the submission x test matrix")
    corpus.add_argument("--corpus-file", type=Path, default=None, help="default: corpus/validity.py")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = (args.root or default_root()).resolve()
    if args.command == "demo":
        from .demo import engine_demo

        print(engine_demo())
        return 0
    if args.command == "release":
        from .release import release

        results = release(root, execute=not args.no_execute)
        for result in results:
            print(("ok    " if result.passed else "FAIL  ") + result.name)
            for problem in result.problems:
                print("      - " + problem)
        return 0 if all(result.passed for result in results) else 1
    if args.command == "corpus":
        from .validity import grade_corpus

        report = grade_corpus(root, args.corpus_file or root / "corpus" / "validity.py")
        print(report.text())
        return 0 if report.all_as_expected else 1
    return 2
