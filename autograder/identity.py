"""Student ids: the one rule every entry point checks before an id names a grade or a folder.

A student id becomes a row in gradebook.db and a folder name (submitted/<id>/,
feedback/<id>/), so a wrong id can overwrite another student's grade or write
outside the course.  The rule:

- 1 to 128 characters (nbgrader stores ids in a column of 128);
- ASCII letters, digits and ``_ . - @ +`` only: enough for nbgrader usernames,
  numeric university ids and LMS logins or e-mail addresses such as
  ``jane.doe+cs101@example.edu``.  No path separators, whitespace, control
  characters, or non-ASCII letters (which can look like another student's id
  or change under a file system's Unicode normalisation);
- it starts with a letter or a digit, so it is never ``.``/``..``, a hidden
  folder, or something a command line reads as an option;
- no ``..`` anywhere.
"""

from __future__ import annotations

import re

MAX_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*")


class InvalidStudentId(ValueError):
    """A student id that breaks the rule in this module's docstring."""


def student_id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid student id, or None if it is one."""
    if not isinstance(value, str):
        return "a student id must be text"
    if not value:
        return "a student id must not be empty"
    if len(value) > MAX_LENGTH:
        return f"a student id has at most {MAX_LENGTH} characters (this one has {len(value)})"
    if not _ALLOWED.fullmatch(value):
        return ("a student id uses only ASCII letters, digits and _ . - @ + "
                "and starts with a letter or a digit")
    if ".." in value:
        return "a student id must not contain '..'"
    return None


def check_student_id(value: object) -> str:
    """``value`` if it is a valid student id; InvalidStudentId saying why not otherwise."""
    problem = student_id_problem(value)
    if problem is not None:
        raise InvalidStudentId(problem)
    return value
