"""Metadata filters: a small, strict query language checked when a search arrives.

`{"year": 2020}` is equality (types must agree: `1` does not match `true`; `null` matches
an explicit null, not a missing key). Operators: `$eq $ne $gt $gte $lt $lte $in $nin
$exists` on a field (`$ne` and `$nin` also match documents without it, as in MongoDB; order
comparisons only between numbers or between strings), and `$and $or $not` over filters.
Anything else is refused, so a misspelt operator cannot silently match nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Filter = Callable[[Mapping[str, Any]], bool]
_MISSING = object()
_ORDER = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
          "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}
FIELD_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$exists", *_ORDER}


class FilterError(ValueError):
    """The filter is malformed; the message says where and what is allowed."""


def same(a: Any, b: Any) -> bool:
    """Equality that keeps JSON's types apart (Python says True == 1 and 1 == 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def compile_filter(spec: Mapping[str, Any], where: str = "filter") -> Filter:
    """A predicate over a document's metadata; FilterError for anything malformed."""
    if not isinstance(spec, Mapping):
        raise FilterError(f"{where} must be an object")
    parts = [_compile_entry(key, value, f"{where}.{key}") for key, value in spec.items()]
    return lambda metadata: all(part(metadata) for part in parts)


def _compile_entry(key: str, value: Any, where: str) -> Filter:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise FilterError(f"{where} must be a non-empty list of filters")
        parts = [compile_filter(item, f"{where}[{n}]") for n, item in enumerate(value)]
        combine = all if key == "$and" else any
        return lambda metadata: combine(part(metadata) for part in parts)
    if key == "$not":
        inner = compile_filter(value, where)
        return lambda metadata: not inner(metadata)
    if key.startswith("$"):
        raise FilterError(f"{where}: unknown operator; use $and, $or, $not or a field name")
    if isinstance(value, Mapping) and any(k.startswith("$") for k in value):
        tests = [_compile_operator(op, operand, f"{where}.{op}") for op, operand in value.items()]
        return lambda metadata: all(test(metadata.get(key, _MISSING)) for test in tests)
    return lambda metadata: key in metadata and same(metadata[key], value)


def _compile_operator(op: str, operand: Any, where: str) -> Callable[[Any], bool]:
    if op not in FIELD_OPERATORS:
        allowed = ", ".join(sorted(FIELD_OPERATORS))
        raise FilterError(f"{where}: unknown operator; use one of {allowed}")
    if op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"{where} must be true or false")
        return lambda found: (found is not _MISSING) == operand
    if op == "$eq":
        return lambda found: found is not _MISSING and same(found, operand)
    if op == "$ne":  # as in MongoDB, a missing field is not equal
        return lambda found: found is _MISSING or not same(found, operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(f"{where} must be a list")
        if op == "$in":
            return lambda found: found is not _MISSING and any(same(found, x) for x in operand)
        return lambda found: found is _MISSING or not any(same(found, x) for x in operand)
    kind = _orderable(operand, where)
    compare = _ORDER[op]
    return lambda found: _orderable_kind(found) == kind and compare(found, operand)


def _orderable_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def _orderable(operand: Any, where: str) -> str:
    kind = _orderable_kind(operand)
    if kind is None:
        raise FilterError(f"{where} must be a number or a string")
    return kind
