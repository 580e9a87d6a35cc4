"""Metadata filters: a small, strict query language, checked when a search arrives and
evaluated over a whole collection at once (search.filter_table).

`{"year": 2020}` is equality (types must agree: `1` does not match `true`; `null` matches
an explicit null, not a missing key). Operators: `$eq $ne $gt $gte $lt $lte $in $nin
$exists` on a field (`$ne` and `$nin` also match documents without it, as in MongoDB; order
comparisons only between numbers or between strings, so ISO 8601 dates written alike
compare as dates), and `$and $or $not` over filters. Anything else is refused, so a
misspelt operator cannot silently match nothing.

A compiled filter is a tree whose leaves test one field. A leaf is evaluated once per
distinct value the field takes in the collection, not once per document: the table maps each
document to its value's code, and the leaf's answer per code becomes a mask over documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

MISSING: Any = object()  # the "value" of a field a document does not have
_ORDER = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
          "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}
FIELD_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$exists", *_ORDER}
MAX_FIELDS = 32


class FilterError(ValueError):
    """The filter is malformed; the message says where and what is allowed."""


def canonical(value: Any) -> Any:
    """A hashable form of a JSON value in which equal values, and only those, are equal:
    JSON's types are kept apart (Python says True == 1), numbers compare by value (1 == 1.0),
    objects ignore key order. MISSING is its own form."""
    if value is MISSING:
        return MISSING
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("list", tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, canonical(v)) for k, v in value.items())))
    return ("null",)


class Column(Protocol):
    """One metadata field over a collection's documents: `codes[d]` is the code of document
    `d`'s value, `values[c]` a value of code `c` (code 0 is MISSING)."""

    @property
    def codes(self) -> np.ndarray: ...

    @property
    def values(self) -> Sequence[Any]: ...

    def code_of(self, value: Any) -> int | None:
        """The code of a value equal to `value` (canonical()), None if no document has it."""

    def orderable(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The codes whose value is of `kind` ("number" or "string"), and those values (an
        object array: numpy compares it element by element with Python's exact semantics)."""


class Columns(Protocol):
    """What a filter is evaluated over: the collection's documents, field by field."""

    def column(self, key: str) -> Column: ...

    @property
    def size(self) -> int: ...


class Filter(Protocol):
    def mask(self, columns: Columns) -> np.ndarray:
        """Which documents match, as a boolean array over `columns`' documents."""

    def fields(self) -> set[str]:
        """The metadata fields the filter reads."""


@dataclass(frozen=True)
class _All:
    parts: tuple[Filter, ...]

    def fields(self) -> set[str]:
        return set().union(*(part.fields() for part in self.parts))

    def mask(self, columns: Columns) -> np.ndarray:
        found = np.ones(columns.size, dtype=bool)
        for part in self.parts:
            found &= part.mask(columns)
        return found


@dataclass(frozen=True)
class _Any:
    parts: tuple[Filter, ...]

    def fields(self) -> set[str]:
        return set().union(*(part.fields() for part in self.parts))

    def mask(self, columns: Columns) -> np.ndarray:
        found = np.zeros(columns.size, dtype=bool)
        for part in self.parts:
            found |= part.mask(columns)
        return found


@dataclass(frozen=True)
class _Not:
    inner: Filter

    def fields(self) -> set[str]:
        return self.inner.fields()

    def mask(self, columns: Columns) -> np.ndarray:
        return ~self.inner.mask(columns)


@dataclass(frozen=True)
class _OneOf:
    """The field equals one of `operands` (`negate`: equals none of them, or is missing)."""

    key: str
    operands: tuple[Any, ...]
    negate: bool = False

    def fields(self) -> set[str]:
        return {self.key}

    def mask(self, columns: Columns) -> np.ndarray:
        column = columns.column(self.key)
        wanted = np.zeros(len(column.values), dtype=bool)
        for operand in self.operands:
            code = column.code_of(operand)
            if code is not None:
                wanted[code] = True
        return ~wanted[column.codes] if self.negate else wanted[column.codes]


@dataclass(frozen=True)
class _Exists:
    key: str
    exists: bool

    def fields(self) -> set[str]:
        return {self.key}

    def mask(self, columns: Columns) -> np.ndarray:
        present = columns.column(self.key).codes != 0  # code 0 is MISSING
        return present if self.exists else ~present


@dataclass(frozen=True)
class _Range:
    """The field is a `kind` ("number" or "string") value in order `op` to `operand`."""

    key: str
    op: str
    operand: Any
    kind: str

    def fields(self) -> set[str]:
        return {self.key}

    def mask(self, columns: Columns) -> np.ndarray:
        column = columns.column(self.key)
        codes, values = column.orderable(self.kind)
        passing = np.zeros(len(column.values), dtype=bool)
        passing[codes] = _ORDER[self.op](values, self.operand).astype(bool)
        return passing[column.codes]


def compile_filter(spec: Mapping[str, Any], where: str = "filter") -> Filter:
    """The filter tree for `spec`; FilterError for anything malformed, or for a filter that
    reads more than MAX_FIELDS fields (each is a column to build over the collection)."""
    compiled = _compile(spec, where)
    if len(compiled.fields()) > MAX_FIELDS:
        raise FilterError(f"{where} reads {len(compiled.fields())} fields; at most {MAX_FIELDS}")
    return compiled


def _compile(spec: Mapping[str, Any], where: str) -> Filter:
    if not isinstance(spec, Mapping):
        raise FilterError(f"{where} must be an object")
    parts = tuple(_compile_entry(key, value, f"{where}.{key}") for key, value in spec.items())
    return parts[0] if len(parts) == 1 else _All(parts)


def _compile_entry(key: str, value: Any, where: str) -> Filter:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise FilterError(f"{where} must be a non-empty list of filters")
        parts = tuple(_compile(item, f"{where}[{n}]") for n, item in enumerate(value))
        return _All(parts) if key == "$and" else _Any(parts)
    if key == "$not":
        return _Not(_compile(value, where))
    if key.startswith("$"):
        raise FilterError(f"{where}: unknown operator; use $and, $or, $not or a field name")
    if isinstance(value, Mapping) and any(k.startswith("$") for k in value):
        tests = tuple(_compile_operator(key, op, operand, f"{where}.{op}")
                      for op, operand in value.items())
        return tests[0] if len(tests) == 1 else _All(tests)
    return _OneOf(key, (value,))


def _compile_operator(key: str, op: str, operand: Any, where: str) -> Filter:
    if op not in FIELD_OPERATORS:
        allowed = ", ".join(sorted(FIELD_OPERATORS))
        raise FilterError(f"{where}: unknown operator; use one of {allowed}")
    if op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"{where} must be true or false")
        return _Exists(key, operand)
    if op in ("$eq", "$ne"):  # as in MongoDB, a missing field is not equal
        return _OneOf(key, (operand,), negate=op == "$ne")
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise FilterError(f"{where} must be a list")
        return _OneOf(key, tuple(operand), negate=op == "$nin")
    return _Range(key, op, operand, _orderable(operand, where))


def orderable_kind(value: Any) -> str | None:
    """"number" or "string" for values order operators compare, None for the others."""
    if value is MISSING or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def _orderable(operand: Any, where: str) -> str:
    kind = orderable_kind(operand)
    if kind is None:
        raise FilterError(f"{where} must be a number or a string")
    return kind
