"""Check a JSON value against a type of the wire contract (`async_kernel.wire`).

The test validator reads the field names and types from the contract's TypedDicts instead of
spelling them again, so a field renamed or retyped on one side of the process boundary fails
the tests. Supported: TypedDicts (required and NotRequired keys; extra keys allowed, as the
contract allows more fields), Literal, unions with None, list[...], dict[str, ...], str, bool,
int (a bool is not an int) and float (an int is a float, as in JSON).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict


def conform(value: Any, kind: Any, where: str = "content") -> None:
    """Assert `value` is a `kind`, naming the path of the first field that is not."""
    origin = get_origin(kind)
    if is_typeddict(kind):
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        missing = sorted(kind.__required_keys__ - value.keys())
        assert not missing, f"{where}: missing {', '.join(missing)} in {value!r}"
        for key, hint in get_type_hints(kind).items():
            if key in value:
                conform(value[key], hint, f"{where}.{key}")
    elif origin is Literal:
        assert value in get_args(kind), f"{where}: {value!r} is not one of {get_args(kind)}"
    elif origin is Union or origin is types.UnionType:
        errors = []
        for option in get_args(kind):
            try:
                conform(value, option, where)
            except AssertionError as e:
                errors.append(str(e))
            else:
                return
        raise AssertionError(" / ".join(errors))
    elif origin is list:
        assert isinstance(value, list), f"{where}: expected a list, got {value!r}"
        (item,) = get_args(kind)
        for i, element in enumerate(value):
            conform(element, item, f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        key_kind, value_kind = get_args(kind)
        for key, element in value.items():
            conform(key, key_kind, f"{where} key")
            conform(element, value_kind, f"{where}.{key}")
    elif kind is type(None):
        assert value is None, f"{where}: expected null, got {value!r}"
    elif kind is bool:
        assert isinstance(value, bool), f"{where}: expected a boolean, got {value!r}"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        assert ok, f"{where}: expected an integer, got {value!r}"
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        assert ok, f"{where}: expected a number, got {value!r}"
    elif kind is str:
        assert isinstance(value, str), f"{where}: expected a string, got {value!r}"
    elif kind is typing.Any:
        return
    else:
        raise TypeError(f"{where}: wire_check does not know the type {kind!r}")
