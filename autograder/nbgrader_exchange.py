"""nbgrader's collect, with the two things it only warns about made refusals.

nbgrader's default exchange lets every account write into ``inbound/`` and
names an entry's student by the entry's folder name.  When that name is not
the folder owner's, its collect only logs "cheating attempt?" and collects the
entry anyway; and it copies whatever a symbolic link in an entry points at,
with the instructor's rights.  So one student could replace another's
submission (a newer entry in their name), or carry an instructor file into
``submitted/`` (a link to ``source/``), and the grade would follow.

``CheckedCollect`` (the course's nbgrader_config.py makes it nbgrader's
collect) leaves such entries in ``inbound/``, logs an error naming each, and
collects every student's newest acceptable entry, as nbgrader would have
(before the due date first, with ``--before-duedate``).

Where every student runs as one account (JupyterHub's Docker images: all are
``jovyan``), ownership says nothing about who submitted: there, set
``c.ExchangeCollect.check_owner = False`` (nbgrader's own option), and only
entries holding links are refused.
"""

from __future__ import annotations

import glob
import os
import pwd
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect


class CheckedCollect(ExchangeCollect):
    def init_src(self):
        super().init_src()  # nbgrader's own checks, the inbound folder and the due date
        student = self.coursedir.student_id or "*"
        pattern = os.path.join(self.inbound_path, f"{student}+{self.coursedir.assignment_id}+*")
        records = [self._path_to_record(path) for path in glob.glob(pattern)]
        accepted = []
        for record in records:
            problem = entry_problem(Path(self.inbound_path) / record["filename"], record["username"],
                                    check_owner=self.check_owner)
            if problem:
                self.log.error("not collected: %s %s", record["filename"], problem)
            else:
                accepted.append(record)
        self.src_records = newest_per_student(accepted, self.duedate if self.before_duedate else None)


def entry_problem(entry: Path, student: str, *, check_owner: bool) -> str:
    """Why an inbound entry must not be collected for ``student``; "" when it may."""
    if entry.is_symlink():
        return "is a symbolic link"
    for here, folders, files in os.walk(entry):
        for name in folders + files:
            if os.path.islink(os.path.join(here, name)):
                shown = os.path.relpath(os.path.join(here, name), entry)
                return f"holds a symbolic link ({shown!r}), which collect would follow"
    if check_owner:
        owner = owner_name(entry)
        if owner != student:
            return (f"names {student!r} but belongs to the account {owner!r} (if every student runs as one "
                    "account, set c.ExchangeCollect.check_owner = False)")
    return ""


def owner_name(path: Path) -> str:
    uid = path.lstat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def newest_per_student(records: list[dict], duedate) -> list[dict]:
    """Each student's newest entry; with a due date, their newest one on time if they have one."""
    by_student: dict[str, list[dict]] = {}
    for record in records:
        by_student.setdefault(record["username"], []).append(record)
    chosen = []
    for entries in by_student.values():
        entries.sort(key=lambda record: record["timestamp"], reverse=True)
        on_time = [record for record in entries if duedate is not None and record["timestamp"] <= duedate]
        chosen.append((on_time or entries)[0])
    return chosen
