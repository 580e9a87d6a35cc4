"""Markdown: sections by heading (ATX `## Title` and setext underlines), found in the text as
written, which is stored as it is. Fenced code blocks and YAML front matter hold no headings;
a list item or a quote followed by `---` is not a setext heading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from indexer.formats.builder import one_line
from search.schemas import MAX_PARTS, SECTION_LIMIT

ATX = re.compile(r" {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)$")
NOT_PARAGRAPH = re.compile(r" {0,3}(?:[-+*>]|\d{1,9}[.)])(?:[ \t]|$)")  # list item, quote
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")  # Markdown's line endings, and no others
FRONT_MATTER = re.compile(r"---[ \t]*\r?\n.*?^(?:---|\.\.\.)[ \t]*$", re.DOTALL | re.MULTILINE)


def markdown_parts(text: str) -> list[dict[str, Any]]:
    """Where each heading's section begins in `text`, as `{"start", "section"}` parts."""
    parts: list[dict[str, Any]] = []
    fence: tuple[str, int] | None = None  # the open fence's character and length
    previous: tuple[int, str] | None = None  # the last line of a paragraph: a setext title
    front = FRONT_MATTER.match(text)
    for offset, line in _lines(text, front.end() if front else 0):
        bare = line.rstrip("\r\n")
        opened = FENCE.match(bare)
        heading: tuple[int, str] | None = None
        if fence is not None:
            if opened and _closes(opened, fence):
                fence = None
        elif opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            fence = opened.group(1)[0], len(opened.group(1))
        elif found := ATX.match(bare):
            heading = offset, found.group(2)
        elif previous is not None and SETEXT.match(bare):
            heading = previous
        if heading is not None:
            name = one_line(heading[1].strip("# \t"), SECTION_LIMIT)
            if name and (not parts or parts[-1]["start"] < heading[0]):
                parts.append({"start": heading[0], "section": name})
        paragraph = bare.strip() and not NOT_PARAGRAPH.match(bare)
        previous = (offset, bare) if paragraph and heading is None and fence is None else None
    return parts[:MAX_PARTS]


def _lines(text: str, start: int) -> Iterator[tuple[int, str]]:
    """Each line from `start` with its offset; `str.splitlines` would also split at form
    feeds, U+0085 and U+2028, which Markdown does not."""
    for found in LINE.finditer(text, start):
        if found.group():
            yield found.start(), found.group()


def _closes(line: re.Match[str], fence: tuple[str, int]) -> bool:
    """A closing fence: the opening's character, at least as long, nothing after it."""
    marks = line.group(1)
    return marks[0] == fence[0] and len(marks) >= fence[1] and not line.group(2).strip()
