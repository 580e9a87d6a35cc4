#!/usr/bin/env bash
# Runs bench/gpu.py on a GPU machine that has PyTorch, transformers and sentence-transformers
# but no internet (the development workplace's lent H200: Python 3.12).
#
#   bash bench/gpu_device.sh --fetch   # here, with internet: the wheels it lacks into .whl/
#   bash bench/gpu_device.sh           # there: install them, run the GPU tests and the bench
#                                      # (results in $OUT, or bench-results/)
#
# faiss-cpu is carried because faiss's GPU wheels (faiss-gpu-cu12) need CUDA 12 libraries of
# several hundred MB; on a machine that has them, `pip install faiss-gpu-cu12` instead and the
# bench's FAISS table gains its GPU columns. Extra arguments go to bench/gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  alembic==1.20.1 annotated-types==0.8.0 faiss-cpu==1.15.1 greenlet==3.5.6 Mako==1.4.3
  pydantic==2.14.4 pydantic-settings==2.16.3 pydantic_core==2.50.5 python-dotenv==1.2.4
  semantic-text-splitter==0.33.1 sentence-transformers==6.2.0 SQLAlchemy==2.1.9
  typing-inspection==0.4.5 typing_extensions==4.16.0
)
if [ "${1:-}" = "--fetch" ]; then
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
  python=${PYTHON:-.venv/bin/python}
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
  "$python" -m pip wheel --quiet --no-deps -w .whl langdetect==1.0.9  # sdist only on PyPI
  du -sh .whl
  exit 0
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
out=${OUT:-bench-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu-smi.txt"
# The GPU tests first (a minute); their result is kept, the bench runs either way.
python3 -m pytest -q -p no:cacheprovider -m gpu tests/search/test_gpu_embedder.py \
  tests/search/test_vector_index.py 2>&1 | tee "$out/gpu-tests.txt" || true
python3 -m bench.gpu --repeats 2 --json "$out/gpu.json" "$@" 2> "$out/gpu-progress.log" \
  | tee "$out/gpu.md"
