#!/usr/bin/env bash
# Creates .venv, installs xlsearch with the CPU build of torch pinned (so no dependency pulls
# another torch), then ingests the sample corpus in data/ unless --no-ingest is given.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0" -e '.[dev]'
if [ "${1:-}" != "--no-ingest" ]; then
  .venv/bin/xlsearch ingest data/
  echo "Ready. Try: .venv/bin/xlsearch search \"Wie hoch ist der Eiffelturm?\""
fi
