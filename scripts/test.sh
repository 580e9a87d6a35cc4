#!/usr/bin/env bash
# The whole check: lint, types and the test suite (installs first on a fresh clone).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/xlsearch ] || bash scripts/install.sh --no-ingest
.venv/bin/ruff check search indexer migrations tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
