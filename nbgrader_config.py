"""nbgrader configuration of the course (read by every nbgrader command run in this folder)."""

import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from autograder.course import DB_URL_VARIABLE
from autograder.nbgrader_feedback import HideHiddenTestTracebacks

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "tinytorch-05-autograd"
c.CourseDirectory.root = COURSE_ROOT
# nbgrader's standard folders, spelled out so that nobody has to guess them.
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The gradebook: SQLite in the course root for one machine; any SQLAlchemy URL nbgrader accepts when
# AUTOGRADER_DB_URL is set, e.g. postgresql+psycopg://grader:PASSWORD@db.example.org/course for a
# server several graders (CI shards) write to at once. An environment variable, so that CI can pass
# it as a secret and no password is committed.
c.CourseDirectory.db_url = (os.environ.get(DB_URL_VARIABLE)
                            or "sqlite:///" + os.path.join(COURSE_ROOT, "gradebook.db"))

# nbgrader's exchange: collect leaves in inbound/ an entry whose owner is not the student it names, or
# that holds a symbolic link, instead of only warning (autograder/nbgrader_exchange.py says why).
c.ExchangeFactory.collect = "autograder.nbgrader_exchange.CheckedCollect"

# Per cell. The slowest cell of the instructor notebook takes under 2 s; a
# backward that follows every path separately never finishes the 50-doubling
# test and is interrupted here.
c.Execute.timeout = 15

# A warning on stderr (numpy's RuntimeWarning, a DeprecationWarning) must not
# zero a correct cell: nbgrader scores any stderr output as an error.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\w*Warning:"

# A submission that deleted a grade cell gets it back (and fails it) instead
# of leaving it for manual grading forever.
c.OverwriteCells.add_missing_cells = True

# Feedback must never show hidden test code: neither the hidden regions of the
# test cells nor the tracebacks of failed hidden checks, which quote the code
# around each frame.  HideHiddenTestTracebacks finds those cells by the markers
# that ClearHiddenTests removes, so it comes first.
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTestTracebacks, ClearHiddenTests,
                                    CSSHTMLHeaderPreprocessor]
