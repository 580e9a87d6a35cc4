#!/usr/bin/env bash
# Installs xlsearch on a CUDA 12 GPU host: PyTorch's CUDA build (from TORCH_INDEX), the project
# with its `gpu` extra, and FAISS's GPU build in place of faiss-cpu. Then checks both see the GPU.
#
#   bash scripts/install-gpu.sh
#   TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash scripts/install-gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch --index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}"
.venv/bin/python -m pip install --quiet -e '.[gpu]'
# faiss-cpu (a dependency, so that a plain install works everywhere) and faiss-gpu-cu12 both
# install the `faiss` package, and faiss would load faiss-cpu's AVX2 library first: remove it,
# then put the GPU build's files back in place.
.venv/bin/python -m pip uninstall --quiet -y faiss-cpu
.venv/bin/python -m pip install --quiet --force-reinstall --no-deps "faiss-gpu-cu12>=1.9"
.venv/bin/python - <<'PY'
import faiss
import torch

print(f"torch {torch.__version__}: CUDA {torch.cuda.is_available()}, {torch.cuda.device_count()} GPUs")
print(f"faiss {faiss.__version__}: {faiss.get_num_gpus()} GPUs")
PY
