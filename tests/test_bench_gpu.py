"""`bench/gpu.py` runs end to end on the CPU with a tiny random Qwen3 (the GPU run uses the
same code with Qwen3-Embedding-4B's shape), and its tables hold what its docstring promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.processes import REPO


def test_gpu_bench_smoke_run_on_the_cpu(tmp_path: Path) -> None:
    results = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.gpu", "--shape", "tiny", "--lengths", "32,128",
            "--tokens", "1024", "--repeats", "2", "--queries", "20",
            "--faiss-vectors", "20000", "--faiss-dim", "64", "--faiss-queries", "100",
            "--work-dir", str(tmp_path), "--json", str(results),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Ingest path vs bare forward pass" in done.stdout
    report = json.loads(results.read_text())
    assert report["model"]["attention"] == "sdpa" and report["model"]["dtype"] == "float32"
    assert [row[0] for row in report["ingest"]] == [32, 128]
    for row in report["ingest"]:
        assert row[1] == 1024 // row[0]  # chunks: each text is exactly one chunk
        assert 0 < row[6] < 2  # ingest/bare ratio, a median of the repeats
    stages = {row[0]: float(row[1]) for row in report["latency"]}
    assert 0 < stages["query embedding"] <= stages["search (whole)"]
    recalls = [row[1] for row in report["faiss"]["rows"]]
    assert recalls == sorted(recalls) and recalls[-1] >= 0.99  # more lists probed, more found
    assert "no GPU" in report["faiss"]["header"]
    assert list(tmp_path.iterdir()) == [results]  # the model and database were temporary
