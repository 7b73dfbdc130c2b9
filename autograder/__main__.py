"""Command line: ``python -m autograder <command>``."""

from .cli import main

raise SystemExit(main())
