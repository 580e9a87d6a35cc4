"""Where in its file a span of a document's text lies: the page, slide or section.

A document read from a PDF, a presentation or a structured text keeps its `parts`: where each
page, slide or section begins in the extracted text. A chunk's locator is the part its first
character lies in, with `to` naming the part of its last character when the chunk runs on
into another one (`{"page": 12, "to": 13}`), so a chunk never spans pages silently.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from search.schemas import PART_KINDS

Locator = dict[str, int | str]
# How a locator reads: (kind, one, several), as the CLI and the page (web/app.js) show it.
LABELS = (("page", "p.", "pp."), ("slide", "slide", "slides"), ("section", "§", "§"))


def locate(parts: Sequence[dict[str, Any]] | None, start: int, end: int) -> Locator | None:
    """The locator of `text[start:end]` among `parts` (as stored: `{"start", kind}` in
    order); None without parts, or for a span before the first part (a preface before the
    first heading)."""
    if not parts:
        return None
    kind = next(k for k in PART_KINDS if k in parts[0])
    starts = [part["start"] for part in parts]
    first = bisect_right(starts, start) - 1
    last = bisect_right(starts, max(start, end - 1)) - 1
    if last < 0:
        return None
    first = max(first, 0)  # a span that begins in the preface and runs into the first part
    locator: Locator = {kind: parts[first][kind]}
    if parts[last][kind] != parts[first][kind]:
        locator["to"] = parts[last][kind]
    return locator


def describe_locator(locator: Locator | None) -> str:
    """A locator as a reader says it: "p. 12", "pp. 12–13", "slide 3", "§ 2.3 Liability"."""
    for kind, one, several in LABELS:
        if locator and kind in locator:
            if "to" not in locator:
                return f"{one} {locator[kind]}"
            if kind == "section":
                return f"§ {locator[kind]} → {locator['to']}"
            return f"{several} {locator[kind]}–{locator['to']}"
    return ""
