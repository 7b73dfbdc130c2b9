"""How a scenario's failure is worded (autograder/scenarios.compare_results): pure logic."""

from __future__ import annotations

from autograder.scenarios import compare_results

EXPECTED = {"observed": {"x.grad": 1.0}}


def test_an_exercise_not_written_yet_is_named_so():
    problems = compare_results(EXPECTED, {"error": "NotImplementedError (your cell exercise_add, line 3)"})
    assert problems == ["not written yet: your engine raised NotImplementedError (your cell exercise_add, line 3)"]


def test_a_recursion_error_points_to_step_2():
    (problem,) = compare_results(EXPECTED, {"error": "RecursionError: maximum recursion depth exceeded"})
    assert problem.startswith("your engine raised RecursionError") and "walk the graph with a loop and a stack" in problem


def test_the_graders_own_sentence_is_passed_on_as_it_is():
    assert compare_results(EXPECTED, {"problem": "your engine did not finish within 10 s"}) == [
        "your engine did not finish within 10 s"]
