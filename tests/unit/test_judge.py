"""How the judge words a scenario's failure (autograder/judge.py): pure logic."""

from __future__ import annotations

from autograder.judge import compare_results

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


def _observed(**values) -> dict:
    from autograder.scenario_runtime import to_plain

    return {"observed": to_plain(values)}


def test_a_small_array_is_shown_whole():
    import numpy as np

    (problem,) = compare_results(_observed(g=np.array([1.0, 2.0])), _observed(g=np.array([1.0, 3.0])))
    assert problem == "g: expected [1., 2.] (shape (2,)), got [1., 3.] (shape (2,))"


def test_a_long_array_is_shown_by_its_shape_and_first_differences():
    import numpy as np

    expected = np.arange(15.0).reshape(3, 5)
    actual = expected.copy()
    actual[1, 2], actual[2, 4] = -1.0, 7.0
    (problem,) = compare_results(_observed(g=expected), _observed(g=actual))
    assert problem == "g: 2 of 15 entries differ (shape (3, 5)); at [1, 2] expected 7, got -1; at [2, 4] expected 14, got 7"


def test_gradient_differences_name_the_tensor_also_under_a_nested_key():
    from autograder.judge import gradient_differences

    found = gradient_differences(["second.x.grad: expected 1., got 2.", "w.grad, on the left: expected 3, got 4",
                                  "z.grad_fn: expected AddBackward, got NoneType", "apply calls: expected 1, got 3"])
    assert found == {"x": "expected 1., got 2.", "w": "expected 3, got 4"}
