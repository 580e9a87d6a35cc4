"""Markdown: sections by heading (ATX `## Title` and setext underlines), found in the text as
written, which is stored as it is; fenced code blocks hold no headings."""

from __future__ import annotations

import re
from typing import Any

from search.schemas import MAX_PARTS, SECTION_LIMIT

ATX = re.compile(r" {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def markdown_parts(text: str) -> list[dict[str, Any]]:
    """Where each heading's section begins in `text`, as `{"start", "section"}` parts."""
    parts: list[dict[str, Any]] = []
    fence: str | None = None
    previous: tuple[int, str] | None = None  # the last line of a paragraph: a setext title
    offset = 0
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        opened = FENCE.match(bare)
        heading: tuple[int, str] | None = None
        if fence is not None:
            if opened and opened.group(1).startswith(fence):
                fence = None
        elif opened:
            fence = opened.group(1)[:3]
        elif found := ATX.match(bare):
            heading = offset, found.group(2)
        elif previous is not None and SETEXT.match(bare):
            heading = previous
        if heading is not None:
            name = " ".join(heading[1].strip("# \t").split())[:SECTION_LIMIT]
            if name and (not parts or parts[-1]["start"] < heading[0]):
                parts.append({"start": heading[0], "section": name})
        previous = (offset, bare) if bare.strip() and heading is None and fence is None else None
        offset += len(line)
    return parts[:MAX_PARTS]
