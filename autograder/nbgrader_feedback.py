"""A preprocessor for nbgrader's generate_feedback: hidden test code must not show through tracebacks.

nbgrader's ClearHiddenTests removes hidden test regions from the cells'
source, but a failing hidden check leaves its traceback in the cell's
outputs, and IPython's tracebacks quote the lines around each frame: hidden
test code, and the path of the grader's own modules.  For every test cell
that holds hidden tests, this keeps each error's type and message (the
scenario's explanation and what differed, which the student should read) and
drops the quoted frames.  It must run before ClearHiddenTests, which removes
the markers it looks for (nbgrader_config.py lists them in that order).
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade

from .notebook_regions import BEGIN_HIDDEN

MAX_MESSAGE = 4000


class HideHiddenTestTracebacks(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and is_grade(cell) and BEGIN_HIDDEN in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:MAX_MESSAGE]
                    output["traceback"] = [message]
        return cell, resources
