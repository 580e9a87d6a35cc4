"""The built wheel is the whole product: installed in a fresh virtual environment outside the
checkout, it ingests its sample corpus, serves the page and answers a search.

The fresh environment borrows the dependencies of the one running the tests (a .pth file to
its site-packages) so that nothing is downloaded; xlsearch itself comes only from the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import httpx

from tests.processes import REPO, running_server


def clean_copy(target: Path) -> Path:
    """The checkout's files as a clean clone has them (no build/ or egg-info leftovers)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_the_wheel_installed_elsewhere_serves_the_page_and_the_sample(tmp_path: Path) -> None:
    source = clean_copy(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, cwd=tmp_path, capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("xlsearch-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([python, "-c", ask], check=True, capture_output=True, text=True)
    borrowed = sysconfig.get_paths()["purelib"] + "\n"
    (Path(purelib.stdout.strip()) / "borrowed-dependencies.pth").write_text(borrowed)
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)
    where = subprocess.run([python, "-c", "import search; print(search.__file__)"], check=True,
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(env_dir)), where  # the wheel's copy, not the checkout

    data_dir = tmp_path / "data"
    ingested = subprocess.run(
        [python, "-m", "search", "ingest", "--sample"], cwd=tmp_path, capture_output=True,
        text=True, env={"XLSEARCH_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
    )
    assert ingested.returncode == 0, ingested.stderr
    assert "42 documents" in ingested.stdout and "0 failed" in ingested.stdout
    with running_server(data_dir, "--no-worker", python=python, cwd=tmp_path) as base:
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "xlsearch" in page.text
        assert httpx.get(f"{base}/web/app.js").status_code == 200
        found = httpx.get(f"{base}/v1/search", params={"q": "Wie hoch ist der Eiffelturm?"})
        assert found.status_code == 200 and found.json()["results"][0]["id"].startswith("eiffel-")
