"""localcloud/lambda_runtime.py: the stack's functions share one process, so their environments must
agree, except while a stack update changes a variable one function at a time."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from batchsight_tools.localcloud import lambda_runtime

NAME = "BATCHSIGHT_TEST_RUNTIME_VARIABLE"


@pytest.fixture
def variable() -> Iterator[str]:
    yield NAME
    lambda_runtime.forget({NAME})
    os.environ.pop(NAME, None)


def test_functions_that_disagree_are_refused(variable: str) -> None:
    lambda_runtime._apply_environment({variable: "a"})
    with pytest.raises(RuntimeError, match=f"functions disagree on {variable}"):
        lambda_runtime._apply_environment({variable: "b"})


def test_during_an_update_either_value_is_taken_and_after_it_the_new_one_is_held(variable: str) -> None:
    lambda_runtime._apply_environment({variable: "old"})
    lambda_runtime.updating({variable})
    lambda_runtime._apply_environment({variable: "new"})   # a function updated already
    lambda_runtime._apply_environment({variable: "old"})   # one not updated yet: no disagreement
    lambda_runtime.forget({variable})
    lambda_runtime._apply_environment({variable: "new"})
    assert os.environ[variable] == "new"
    with pytest.raises(RuntimeError, match="disagree"):
        lambda_runtime._apply_environment({variable: "old"})
