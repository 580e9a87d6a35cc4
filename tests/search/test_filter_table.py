"""Filters evaluated over a whole collection (search.filter_table) agree with what each
filter means document by document, through additions, removals and compaction."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from search.filter_table import FilterTable
from search.filters import FilterError, compile_filter
from search.store.records import ChunkPage

LANGS = ["en", "de", "zh", "zh-tw", "th"]
VALUES: list[Any] = [0, 1, 1.0, 2.5, -3, 10**20, True, False, None, "", "a", "b", "2024-01-31",
                     "2024-02-01", [1, 2], [2, 1], {"x": 1, "y": [True]}, {"y": [True], "x": 1.0}]


def same(a: Any, b: Any) -> bool:
    """JSON equality written out plainly: the reference the table must agree with."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def reference(spec: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """What `spec` means for one document, as the README describes it."""
    for key, test in spec.items():
        if key == "$and" and not all(reference(s, metadata) for s in test):
            return False
        if key == "$or" and not any(reference(s, metadata) for s in test):
            return False
        if key == "$not" and reference(test, metadata):
            return False
        if key.startswith("$"):
            continue
        present, value = key in metadata, metadata.get(key)
        operators = test if isinstance(test, dict) and any(k.startswith("$") for k in test) \
            else {"$eq": test}
        for op, operand in operators.items():
            if op == "$eq":
                ok = present and same(value, operand)
            elif op == "$ne":
                ok = not present or not same(value, operand)
            elif op == "$in":
                ok = present and any(same(value, x) for x in operand)
            elif op == "$nin":
                ok = not present or not any(same(value, x) for x in operand)
            elif op == "$exists":
                ok = present == operand
            else:
                ok = present and kind(value) == kind(operand) and {
                    "$gt": value > operand if ok_types(value, operand) else False,
                    "$gte": value >= operand if ok_types(value, operand) else False,
                    "$lt": value < operand if ok_types(value, operand) else False,
                    "$lte": value <= operand if ok_types(value, operand) else False,
                }[op]
            if not ok:
                return False
    return True


def ok_types(value: Any, operand: Any) -> bool:
    return kind(value) is not None and kind(value) == kind(operand)


def random_spec(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return {rng.choice(["$and", "$or"]): [random_spec(rng, depth + 1) for _ in range(2)]}
    if depth < 2 and roll < 0.2:
        return {"$not": random_spec(rng, depth + 1)}
    key = rng.choice(["a", "b", "c"])
    op = rng.choice(["=", "$eq", "$ne", "$in", "$nin", "$exists", "$gt", "$gte", "$lt", "$lte"])
    if op == "=":
        return {key: rng.choice(VALUES)}
    if op in ("$in", "$nin"):
        return {key: {op: rng.sample(VALUES, 3)}}
    if op == "$exists":
        return {key: {op: rng.random() < 0.5}}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return {key: {op: rng.choice([v for v in VALUES if kind(v)])}}
    return {key: {op: rng.choice(VALUES)}}


def page(start: int, docs: list[tuple[int, str, dict[str, Any]]]) -> ChunkPage:
    """One chunk per (document id, language, metadata), ids from `start`."""
    ids = np.arange(start, start + len(docs), dtype=np.int64)
    return ChunkPage(ids, None, [d[1] for d in docs], [d[0] for d in docs],
                     [d[1] for d in docs], [json.dumps(d[2]) for d in docs])


def random_metadata(rng: random.Random) -> dict[str, Any]:
    return {key: rng.choice(VALUES) for key in ("a", "b", "c") if rng.random() < 0.8}


def test_every_operator_agrees_with_the_document_by_document_meaning() -> None:
    rng = random.Random(7)
    docs = [(n, rng.choice(LANGS), random_metadata(rng)) for n in range(400)]
    table = FilterTable()
    table.add(page(1, docs))
    for _ in range(400):
        spec = random_spec(rng)
        selected = table.select(None, spec)
        assert selected is not None
        expected = [n + 1 for n, _, metadata in docs if reference(spec, metadata)]
        assert sorted(selected.ids.tolist()) == expected, spec


def test_languages_take_regional_variants_and_combine_with_filters() -> None:
    docs = [(0, "zh", {"a": 1}), (1, "zh-tw", {"a": 1}), (2, "en", {"a": 1}), (3, "zh", {})]
    table = FilterTable()
    table.add(page(10, docs))
    assert table.select(["zh"], None).ids.tolist() == [10, 11, 13]  # type: ignore[union-attr]
    assert table.select(["zh-tw"], None).ids.tolist() == [11]  # type: ignore[union-attr]
    assert table.select(["zh", "en"], {"a": 1}).ids.tolist() == [10, 11, 12]  # type: ignore[union-attr]
    assert table.select(None, None) is None


def test_removals_replacements_and_compaction_keep_answers_exact() -> None:
    rng = random.Random(3)
    table = FilterTable()
    live: dict[int, tuple[int, dict[str, Any]]] = {}  # chunk id -> (document, metadata)
    next_id = 1
    for round_ in range(30):
        batch = [(rng.randrange(300), "en", random_metadata(rng)) for _ in range(500)]
        table.add(page(next_id, batch))
        for offset, (document, _, metadata) in enumerate(batch):
            live[next_id + offset] = (document, metadata)
        next_id += len(batch)
        gone = rng.sample(sorted(live), len(live) // 2)
        table.remove(np.asarray(gone + [10**9], dtype=np.int64))  # an unknown id is ignored
        for chunk in gone:
            del live[chunk]
        assert len(table) == len(live)
        spec = random_spec(rng)
        expected = sorted(c for c, (_, m) in live.items() if reference(spec, m))
        assert sorted(table.select(None, spec).ids.tolist()) == expected, (round_, spec)  # type: ignore[union-attr]


def test_chunks_must_arrive_in_id_order() -> None:
    table = FilterTable()
    table.add(page(5, [(0, "en", {})]))
    with pytest.raises(ValueError, match="increasing id order"):
        table.add(page(5, [(1, "en", {})]))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"year": {"$gt": [2000]}}, "must be a number or a string"),
        ({"year": {"$gt": True}}, "must be a number or a string"),
        ({"year": {"$in": 2000}}, "must be a list"),
        ({"year": {"$regex": "x"}}, "unknown operator"),
        ({"$nor": []}, "unknown operator"),
        ({"$or": []}, "non-empty list"),
        ({"year": {"$exists": 1}}, "true or false"),
    ],
)
def test_malformed_filters_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(spec)


def test_a_filter_reads_at_most_32_fields_and_builds_them_in_one_pass() -> None:
    with pytest.raises(FilterError, match="reads 33 fields; at most 32"):
        compile_filter({f"k{n}": 1 for n in range(33)})
    table = FilterTable()
    table.add(page(1, [(n, "en", {f"k{n % 32}": n}) for n in range(2000)]))
    spec = {"$or": [{f"k{n}": n} for n in range(32)]}
    assert table.select(None, spec).ids.tolist() == list(range(1, 33))  # type: ignore[union-attr]
