"""`payload_of` (our one walk from a call_result dataclass to the camelCase payload) gives what
the `ocpp` library's three passes give, for every call_result class of both versions filled
with generated values (nested dataclasses, lists with None items, enums, dicts)."""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v16 import call_result as result16
from ocpp.v201 import call_result as result201

from csms.ocpp.framing import payload_of

CLASSES = [cls for module in (result16, result201) for cls in vars(module).values()
           if isinstance(cls, type) and dataclasses.is_dataclass(cls)
           and cls.__module__ == module.__name__]
ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                   lambda inner: st.lists(inner, max_size=2)
                   | st.dictionaries(st.sampled_from(["a_b", "cD", "x"]), inner, max_size=2),
                   max_leaves=4)


def values_of(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a type hint of the library's dataclasses."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return st.one_of([values_of(arg) for arg in args])
    if origin is list or hint is list:
        return st.lists((values_of(args[0]) if args else ANY) | st.none(), max_size=3)
    if origin is dict or hint is dict or hint is Any:
        return ANY
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return instances(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if hint is type(None):
        return st.none()
    return st.from_type(hint)


def instances(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{field.name: st.deferred(lambda h=hints[field.name]: values_of(h))
                             for field in dataclasses.fields(cls)})


def name(cls: type) -> str:
    return f"{cls.__module__.split('.')[1]}.{cls.__name__}"


@pytest.mark.parametrize("cls", CLASSES, ids=name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_payload_of_is_the_librarys_three_passes(cls: type, data: st.DataObject) -> None:
    response = data.draw(instances(cls))
    assert payload_of(response) == snake_to_camel_case(remove_nones(serialize_as_dict(response)))
