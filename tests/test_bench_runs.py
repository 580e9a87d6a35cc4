"""The benchmarks that drive the product through its public paths run end to end on a tiny
XQuAD-shaped corpus the test writes, so a change of the product's interfaces cannot leave a
benchmark broken until someone runs it for real."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import XQUAD_LANGUAGES
from tests.processes import REPO

PARAGRAPHS = [
    "The Loire is the longest river in France; it rises in the Massif Central.",
    "Copper conducts heat and electricity well and has been mined for seven thousand years.",
]


@pytest.fixture(scope="module")
def tiny_xquad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two parallel paragraphs with 60 questions each (the benches draw up to 1,200
    questions round-robin over the 12 languages), in XQuAD's 12 files and format."""
    folder = tmp_path_factory.mktemp("xquad")
    for lang in XQUAD_LANGUAGES:
        paragraphs = [
            {
                "context": f"{text} ({lang})",
                "qas": [{"id": f"q{n}-{m}", "question": f"Which one? {m}"} for m in range(60)],
            }
            for n, text in enumerate(PARAGRAPHS)
        ]
        data = {"data": [{"title": "tiny", "paragraphs": paragraphs}]}
        (folder / f"xquad.{lang}.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def run_bench(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_ingest_bench_runs_end_to_end(tiny_xquad: Path) -> None:
    out = run_bench("ingest", str(tiny_xquad), "--documents", "4", "--repeats", "1")
    assert "engine/raw" in out


def test_pipeline_bench_runs_end_to_end(tiny_xquad: Path) -> None:
    out = run_bench("pipeline", str(tiny_xquad), "--documents", "24", "--searches", "10")
    assert "JSONL job" in out and "of which tokenizer" in out


def test_serve_bench_runs_end_to_end(tiny_xquad: Path) -> None:
    out = run_bench(
        "serve", str(tiny_xquad), "--documents", "6", "--repeats", "1", "--searches", "10"
    )
    assert "QPS" in out


def test_extract_bench_runs_end_to_end(tiny_xquad: Path) -> None:
    out = run_bench(
        "extract", str(tiny_xquad), "--files", "2", "--pages", "3", "--repeats", "1",
        "--ingest-files", "1",
    )
    assert "| pdf " in out and "| html " in out and "of the time" in out


def test_translations_bench_runs_end_to_end(tiny_xquad: Path, tmp_path: Path) -> None:
    out = run_bench(
        "translations", str(tiny_xquad), "--cache", str(tmp_path / "cache"), "--questions", "2"
    )
    assert "| mutual best, margin >= 1.05 (k = 4) " in out and "no translations" in out
    assert re.search(r"\| xlsearch \(through the API\) +\| +1\.000 \| +1\.000 \|", out), out
    assert "distinct paragraphs in top 10" in out and "share of ingest time" in out


def test_migration_bench_runs_end_to_end(tiny_xquad: Path) -> None:
    out = run_bench("migration", str(tiny_xquad), "--paragraphs", "2", "--repeats", "1",
                    "--chunks", "300", "--searches", "5")
    assert "migration throughput / fresh ingest throughput" in out and "p99 ms" in out
