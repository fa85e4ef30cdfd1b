#!/usr/bin/env bash
# Installs what the peers need beyond the JDK (Debian 12 packages; run as root):
#   python3-torch (PyTorch 1.13.1, the reference data's version), python3-numpy (export_onnx.py writes its check file
#   through it), and OpenBLAS. Debian's torch is built with BLAS=generic and calls libblas.so.3: with
#   only the reference BLAS that python3-torch pulls in, fp32 runs ~10x slower than with OpenBLAS.
#   The openmp build shares PyTorch's OpenMP threads, so torch.set_num_threads governs the GEMMs too.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (apt-get install)" >&2; exit 1; fi
apt-get update -q
apt-get install -y -q python3-torch python3-numpy libopenblas0-openmp
/usr/bin/python3 -c 'import torch; print("setup.sh: torch", torch.__version__, "ready")'
