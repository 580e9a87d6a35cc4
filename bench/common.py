"""Helpers shared by the benchmark scripts: XQuAD loading (with an alignment check), timing,
progress on stderr and plain-text (Markdown) tables.

Not a benchmark itself; the scripts import it as `bench.common` (run them from the repository
root as `python -m bench.<name>`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_XQUAD = (REPO_ROOT / ".." / "shared" / "data" / "xquad").resolve()
XQUAD_LANGUAGES: tuple[str, ...] = (
    "ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh",
)


# -- XQuAD -------------------------------------------------------------------------------


@dataclass(frozen=True)
class XQuAD:
    """The 12 parallel XQuAD files, checked to be aligned.

    `paragraphs[lang][p]` is paragraph `p` (0..239) in `lang`; `questions[lang][q]` is
    question `q` (0..1189) in `lang`; `question_paragraph[q]` is the paragraph that question
    `q` was written for, the same in every language.
    """

    languages: tuple[str, ...]
    paragraphs: dict[str, list[str]]
    questions: dict[str, list[str]]
    question_ids: list[str]
    question_paragraph: list[int]

    @property
    def n_paragraphs(self) -> int:
        return len(self.paragraphs[self.languages[0]])

    @property
    def n_questions(self) -> int:
        return len(self.question_ids)


class AlignmentError(ValueError):
    """The XQuAD files are not parallel."""


def _read_squad(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(context, [(question id, question)]) per paragraph, in file order."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        (paragraph["context"], [(qa["id"], qa["question"]) for qa in paragraph["qas"]])
        for article in data["data"]
        for paragraph in article["paragraphs"]
    ]


def load_xquad(folder: Path, languages: Sequence[str] = XQUAD_LANGUAGES) -> XQuAD:
    """Load and align XQuAD; raises AlignmentError unless every language has the same
    paragraphs count and, paragraph by paragraph, the same question ids in the same order."""
    parsed = {lang: _read_squad(folder / f"xquad.{lang}.json") for lang in languages}
    reference = languages[0]
    ref_ids = [[qid for qid, _ in qas] for _, qas in parsed[reference]]
    for lang in languages[1:]:
        ids = [[qid for qid, _ in qas] for _, qas in parsed[lang]]
        if len(ids) != len(ref_ids):
            raise AlignmentError(
                f"{lang} has {len(ids)} paragraphs, {reference} has {len(ref_ids)}"
            )
        for p, (mine, theirs) in enumerate(zip(ids, ref_ids, strict=True)):
            if mine != theirs:
                raise AlignmentError(
                    f"paragraph {p}: question ids of {lang} differ from {reference}"
                )
    question_ids = [qid for qids in ref_ids for qid in qids]
    if len(set(question_ids)) != len(question_ids):
        raise AlignmentError("question ids are not unique")
    question_paragraph = [p for p, qids in enumerate(ref_ids) for _ in qids]
    paragraphs = {lang: [ctx for ctx, _ in parsed[lang]] for lang in languages}
    questions = {lang: [q for _, qas in parsed[lang] for _, q in qas] for lang in languages}
    for lang in languages:
        if any(not text.strip() for text in paragraphs[lang] + questions[lang]):
            raise AlignmentError(f"{lang} has an empty paragraph or question")
    return XQuAD(tuple(languages), paragraphs, questions, question_ids, question_paragraph)


# -- timing and progress -----------------------------------------------------------------


class Stopwatch:
    """Wall-clock seconds of a `with` block (perf_counter), readable as `.seconds`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started


@contextmanager
def stage(name: str) -> Iterator[Stopwatch]:
    """Log the start and duration of a stage on stderr."""
    log(f"{name} ...")
    with Stopwatch() as watch:
        yield watch
    log(f"{name}: done in {watch.seconds:.1f} s")


def log(message: str) -> None:
    """A progress line on stderr (stdout is kept for the tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Progress:
    """Rate-limited `done/total, rate, ETA` lines on stderr."""

    def __init__(self, label: str, total: int, every_s: float = 15.0) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._every_s = every_s
        self._started = time.perf_counter()
        self._last = self._started

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self._every_s or self.done >= self.total:
            self._last = now
            elapsed = now - self._started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            log(f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s, ETA {eta:.0f} s)")


# -- tables ------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats get 3 decimals, right-aligned columns except the first."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(values)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([line(list(headers)), rule, *(line(r) for r in text)])


def machine_description() -> str:
    """CPU model and core count, for the header of a result."""
    model = platform.processor() or "unknown CPU"
    try:
        for entry in Path("/proc/cpuinfo").read_text().splitlines():
            if entry.startswith("model name"):
                model = entry.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def code_version() -> str:
    """The repository's commit and the package files changed since it, for the header."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown commit"
    status = git("status", "--porcelain", "--", "search", "indexer")
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    if changed:
        return f"commit {commit}, uncommitted changes in {', '.join(changed)}"
    return f"commit {commit}"
