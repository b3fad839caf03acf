"""jsontext.dumps writes what json.dumps(data, ensure_ascii=False, indent=2) writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memstore import jsontext

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()))
)
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=30,
)


def standard(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


@given(values)
def test_the_same_text_as_the_standard_library(data: Any) -> None:
    assert jsontext.dumps(data) == standard(data)


class Tag(str):
    pass


class Count(int):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {"a": Tag("b"), "c": [Count(3), 1.5, float("nan"), -float("inf")]},
        {Tag("k"): {}, "l": [], "m": [[], {}, [{}]]},
        {"text": 'quote " backslash \\ tab \t nul \x00 café \u2028 \ud800'},
        [True, False, None, 10**30, -0.0],
    ],
)
def test_subclasses_and_odd_values(data: Any) -> None:
    assert jsontext.dumps(data) == standard(data)


def test_a_loop_fails_as_in_the_standard_library() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsontext.dumps(loop)
    with pytest.raises(TypeError):
        jsontext.dumps({"a": object()})
