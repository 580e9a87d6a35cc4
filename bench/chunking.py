#!/usr/bin/env python
"""Chunking cost against text length: seconds per MB should stay flat (linear cost).

What is measured
----------------
The texts are XQuAD paragraphs of one language, repeated in file order until the text has
the asked size, in two layouts: `paragraphs` (joined by blank lines) and `one paragraph`
(joined by spaces: no paragraph or line to split on, the splitter's worst case). They are
chunked with the bundled model's tokenizer (`BundledEmbedder.count_tokens`), 512 tokens with
64 of overlap (the bundled model's collection defaults), by two methods:

* `before`: semantic-text-splitter given the whole text, each span sized with
  `count_tokens` (the chunker up to commit 8277a9e);
* `windows`: `indexer.chunking.Chunker` (bounded windows, spans sized by summed word
  counts, every chunk counted exactly).

Columns: seconds, seconds per MB of UTF-8, chunks, characters handed to `count_tokens` per
character of text (the cost that grows when chunking is superlinear), the longest pause a
second thread saw while chunking ran (it sleeps 5 ms in a loop; a pause is the time it
waited beyond that: how long a search thread would have waited for the interpreter), and
the median and slowest of the queries a third thread embedded meanwhile, one every 50 ms
(the header gives the same without chunking; on a loaded machine the slowest is noise).
Repeated text makes the word-count cache hit more often than new text would: the 100 KB
rows are new text (one language's corpus is about 190 KB).

Run (from the repository root, with the venv active)::

    python -m bench.chunking                                 # 100 KB, 1 MB, 5 MB; en zh th
    python -m bench.chunking --sizes 100000 --languages en   # quick check

`before` runs only up to `--before-up-to` bytes (default 1 MB): its cost grows with the
square of the length on one paragraph. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from semantic_text_splitter import TextSplitter

from bench.common import (
    DEFAULT_XQUAD,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from indexer.chunking import Chunker
from search.embedders.bundled import BundledEmbedder

CHUNK_TOKENS = 512
OVERLAP = 64
LAYOUTS = {"paragraphs": "\n\n", "one paragraph": " "}


@dataclass
class Counted:
    """`count_tokens` that also adds up its calls and the characters it was given."""

    count_tokens: Callable[[str], int]
    calls: int = 0
    chars: int = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return self.count_tokens(text)


def before(count_tokens: Callable[[str], int], text: str) -> int:
    """The chunker as it was: the splitter on the whole text; returns the chunk count."""
    splitter = TextSplitter.from_callback(count_tokens, CHUNK_TOKENS, overlap=OVERLAP)
    pieces = splitter.chunk_indices(text)
    for _, piece in pieces:
        count_tokens(piece)
    return len(pieces)


def windows(count_tokens: Callable[[str], int], text: str) -> int:
    return len(Chunker(count_tokens, CHUNK_TOKENS, OVERLAP).split(text))


@dataclass
class Watch:
    """What a search thread saw: the longest pause (s) and each query's time (s)."""

    pause: float = 0.0
    queries: list[float] = field(default_factory=list)

    def describe(self) -> str:
        if not self.queries:
            return "-"
        return f"{statistics.median(self.queries) * 1000:.0f} / {max(self.queries) * 1000:.0f}"


@contextmanager
def watched(embedder: BundledEmbedder) -> Iterator[Watch]:
    """A Watch filled in while the block runs: the longest a thread that sleeps 5 ms in a
    loop waited beyond its sleep, and the query times of a thread embedding one every 50 ms."""
    result = Watch()
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            time.sleep(0.005)
            result.pause = max(result.pause, time.perf_counter() - started - 0.005)

    def search() -> None:
        while not stop.wait(0.05):
            started = time.perf_counter()
            embedder.embed_queries(["how tall is the Eiffel Tower?"])
            result.queries.append(time.perf_counter() - started)

    threads = [threading.Thread(target=t, daemon=True) for t in (tick, search)]
    for thread in threads:
        thread.start()
    try:
        yield result
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def build_text(paragraphs: list[str], separator: str, size: int) -> str:
    parts, total = [], 0
    while total < size:
        paragraph = paragraphs[len(parts) % len(paragraphs)]
        parts.append(paragraph)
        total += len(paragraph.encode("utf-8")) + len(separator)
    return separator.join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="bytes, comma-separated")
    parser.add_argument("--languages", default="en,zh,th")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="paragraphs, one paragraph")
    parser.add_argument("--before-up-to", type=int, default=1_000_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    languages = tuple(args.languages.split(","))
    layouts = args.layouts.split(",")
    xquad = load_xquad(args.xquad, languages)
    embedder = BundledEmbedder()
    embedder.count_tokens("warm up")
    embedder.embed_queries(["warm up"])
    with watched(embedder) as idle:
        time.sleep(3)
    methods = {"before": before, "windows": windows}
    rows = []
    for language in languages:
        for layout in layouts:
            for size in sizes:
                text = build_text(xquad.paragraphs[language], LAYOUTS[layout], size)
                megabytes = len(text.encode("utf-8")) / 1e6
                for name, method in methods.items():
                    if name == "before" and size > args.before_up_to:
                        continue
                    counted = Counted(embedder.count_tokens)
                    log(f"{language}, {layout}, {megabytes:.1f} MB, {name} ...")
                    with watched(embedder) as seen:
                        started = time.perf_counter()
                        chunks = method(counted, text)
                        seconds = time.perf_counter() - started
                    rows.append([
                        f"{language}, {layout}", f"{megabytes:.2f}", name, f"{seconds:.2f}",
                        f"{seconds / megabytes:.2f}", chunks, f"{counted.chars / len(text):.2f}",
                        counted.calls, f"{seen.pause * 1000:.0f}", seen.describe(),
                    ])
                    log(f"... {seconds:.1f} s")
    embedder.close()
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"Machine: {machine_description()}, load average {load}; {code_version()}")
    print(f"Chunks of {CHUNK_TOKENS} tokens, {OVERLAP} overlap, {embedder.name} tokenizer;")
    print(f"without chunking: longest pause {idle.pause * 1000:.0f} ms, "
          f"query median / slowest {idle.describe()} ms.\n")
    headers = ["data", "MB", "method", "s", "s/MB", "chunks", "counted chars/char",
               "count calls", "longest pause ms", "query ms median / slowest"]
    print(format_table(headers, rows))


if __name__ == "__main__":
    main()
