"""Text extraction speed per file format, and its share of ingestion with the bundled model.

Data: XQuAD paragraphs (real text in 10 languages: ar de el en es ro ru tr vi zh; Hindi and
Thai are left out because the PDF writer has no font for them here), written into PDF, Word,
PowerPoint, EPUB and HTML files by bench/files.py: one language a file, one paragraph a
page, slide, section or chapter. Method: each format's files are read in this process
(`read_extracted`, the reader alone) `--repeats` times, median; then through `read_sources`
with 1 and 2 extraction processes (what ingestion uses: process start and hand-over
included). Last, a folder of PDFs is ingested end to end with the bundled model, and the
extraction time of those files is set against the whole.

    python -m bench.extract [XQUAD_DIR] [--files 12] [--pages 10] [--ingest-files 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import files
from bench.common import (
    DEFAULT_XQUAD,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from indexer.pipeline import Ingestor, ingest_stream
from indexer.readers import Extraction, read_extracted, read_sources
from search.collections import ensure_collection
from search.engine import Engine
from search.schemas import DocumentIn
from search.settings import Settings

LANGUAGES = ("ar", "de", "el", "en", "es", "ro", "ru", "tr", "vi", "zh")
MAX_DOCUMENT_BYTES = 2**24
POOLED_COPIES = 5

Writer = Callable[[list[tuple[str, str]], str], bytes]
WRITERS: dict[str, tuple[str, Writer]] = {
    "pdf": ("pages", lambda parts, lang: files.pdf_bytes([(lang, t) for _, t in parts], "T")),
    "docx": ("sections", lambda parts, lang: files.docx_bytes(parts, title="T")),
    "pptx": ("slides", lambda parts, lang: files.pptx_bytes(parts)),
    "epub": ("chapters", lambda parts, lang: files.epub_bytes(parts, "T", "A", lang)),
    "html": ("sections", lambda parts, lang: files.news_html("T", parts, lang).encode()),
}


def write_files(folder: Path, kind: str, count: int, pages: int, xquad_dir: Path) -> list[Path]:
    """`count` files of `kind`, file n in language n mod 10, from consecutive paragraphs
    (taken again from the first when the corpus runs out)."""
    xquad = load_xquad(xquad_dir, LANGUAGES)
    _, write = WRITERS[kind]
    written = []
    for n in range(count):
        lang = LANGUAGES[n % len(LANGUAGES)]
        numbers = [(n * pages + k) % xquad.n_paragraphs for k in range(pages)]
        parts = [(f"Part {k + 1}", xquad.paragraphs[lang][p]) for k, p in enumerate(numbers)]
        path = folder / kind / f"{n:03d}-{lang}.{kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(write(parts, lang))
        written.append(path)
    return written


def read_alone(paths: Sequence[Path]) -> tuple[float, int]:
    """Seconds to extract every file in this process, and the parts found."""
    started = time.perf_counter()
    parts = 0
    for path in paths:
        found = read_extracted(path, path.name, MAX_DOCUMENT_BYTES)
        if not isinstance(found, DocumentIn):
            raise RuntimeError(f"{path}: {found.reason}")
        parts += len(found.parts or [])
    return time.perf_counter() - started, parts


def read_pooled(folder: Path, processes: int) -> tuple[float, float]:
    """Seconds to read the folder through worker processes, and until its first document
    (about the time a process takes to start)."""
    started = time.perf_counter()
    first = None
    for item in read_sources([folder], MAX_DOCUMENT_BYTES, Extraction(processes=processes)):
        if not isinstance(item, DocumentIn):
            raise RuntimeError(f"{item.source}: {item.reason}")
        first = first or time.perf_counter() - started
    return time.perf_counter() - started, first or 0.0


def copies(paths: Sequence[Path], folder: Path, times: int) -> Path:
    """`times` copies of the files in one folder, so that process start weighs little."""
    folder.mkdir(parents=True)
    for n in range(times):
        for path in paths:
            (folder / f"{n}-{path.name}").write_bytes(path.read_bytes())
    return folder


def ingest_share(paths: Sequence[Path], data_dir: Path) -> tuple[float, float, int]:
    """(ingestion seconds, extraction seconds of the same files, chunks) for PDFs ingested
    end to end into a fresh engine with the bundled model (1 extraction process)."""
    settings = Settings(data_dir=data_dir, extract_processes=1)
    engine = Engine.open(settings)
    try:
        engine.embedder.embed_documents(["warm-up passage"])
        collection = ensure_collection(engine.store, settings, engine.embedder, "extract")
        folder = paths[0].parent
        started = time.perf_counter()
        summary = ingest_stream(
            read_sources([folder], settings.max_document_bytes, Extraction.of(settings)),
            Ingestor.for_engine(engine, collection), settings.ingest_batch_documents,
            batch_seconds=settings.ingest_batch_seconds,
        )
        total = time.perf_counter() - started
    finally:
        engine.close()
    if summary.errors:
        raise RuntimeError(f"ingestion errors: {summary.errors[:3]}")
    extraction, _ = read_alone(paths)
    return total, extraction, summary.chunks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--files", type=int, default=12, help="files per format")
    parser.add_argument("--pages", type=int, default=10, help="pages (slides...) per file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingest-files", type=int, default=4)
    args = parser.parse_args(argv)
    rows: list[list[object]] = []
    starts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="xlsearch-extract-") as scratch:
        root = Path(scratch)
        for kind, (unit, _) in WRITERS.items():
            paths = write_files(root / "files", kind, args.files, args.pages, args.xquad)
            size = sum(p.stat().st_size for p in paths)
            runs = [read_alone(paths) for _ in range(args.repeats)]
            seconds = statistics.median(s for s, _ in runs)
            parts = runs[0][1]
            many = copies(paths, root / "copies" / kind, POOLED_COPIES)
            pooled = {n: [read_pooled(many, n) for _ in range(args.repeats)] for n in (1, 2)}
            rates = {n: POOLED_COPIES * parts / statistics.median(s for s, _ in runs)
                     for n, runs in pooled.items()}
            starts.extend(first for runs in pooled.values() for _, first in runs)
            log(f"{kind}: {parts} {unit} in {seconds:.2f} s")
            rows.append([
                kind, len(paths), f"{parts} {unit}", f"{size / 2**20:.1f}",
                f"{parts / seconds:,.0f}", f"{size / 2**20 / seconds:.1f}",
                f"{rates[1]:,.0f}", f"{rates[2]:,.0f}",
            ])
        pdfs = write_files(root / "ingest", "pdf", args.ingest_files, args.pages, args.xquad)
        total, extraction, chunks = ingest_share(pdfs, root / "data")
    print("# xlsearch text extraction per format\n")
    print(f"Machine: {machine_description()}")
    print(f"Code: {code_version()}")
    print(f"Files: {args.files} per format, {args.pages} XQuAD paragraphs each, "
          f"languages {' '.join(LANGUAGES)}; medians of {args.repeats} runs.\n")
    print(format_table(
        ["format", "files", "parts", "MB", "parts/s (reader)", "MB/s (reader)",
         "parts/s, 1 process", "parts/s, 2 processes"],
        rows,
    ))
    print(f"\nThrough worker processes: {POOLED_COPIES} copies of each format's files, "
          f"process start included (median {statistics.median(starts):.2f} s to the first "
          "document).")
    print(f"\nIngestion of {len(pdfs)} PDFs ({len(pdfs) * args.pages} pages, {chunks} chunks) "
          f"with the bundled model: {total:.1f} s, of which extraction would take "
          f"{extraction:.2f} s alone: {extraction / total:.1%} of the time (it runs in its "
          "own process, beside the embedding).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
