"""A class's outputs: grades.csv, junit.xml and the class report, from the gradebook and the records.

Written at the end of every class run and of every merge of shard runs, so
that they always describe the whole gradebook, not only what the last
command graded.
"""

from __future__ import annotations

from pathlib import Path

from .course import outputs_folder
from .gradebook import class_rows, read_record, write_atomically


def write_class_outputs(root: Path) -> Path:
    """grades.csv, junit.xml and the class report, from the gradebook and every recorded results.json."""
    from .class_report import write_report  # matplotlib: imported only when a report is written
    from .tables import class_csv, class_junit

    folder = outputs_folder(root)
    rows = class_rows(root)
    records = {row.student_id: read_record(root, row.student_id) for row in rows}
    write_atomically(folder / "grades.csv", class_csv(rows))
    write_atomically(folder / "junit.xml", class_junit(records))
    write_report(folder, rows, records)
    return folder
