"""The course's grading harness: release the assignment, grade submissions, report."""
