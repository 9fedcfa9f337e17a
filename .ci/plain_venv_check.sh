#!/usr/bin/env bash
# A venv with only `pip install -e .` (no extras, so no hypothesis) must still run another
# project's plain pytest suite: logitkit's pytest11 plugin loads in every pytest run there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Absolute: the other project's suite runs from its own directory.
VENV="$(realpath -m "${1:-.ci/plain-venv}")"

python3 -m venv --clear "$VENV"
# The CPU build of torch first, as in the README; then logitkit alone, then the other project's pytest.
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet -e .
"$VENV/bin/python" -m pip install --quiet pytest
if "$VENV/bin/python" -c "import hypothesis" 2>/dev/null; then
    echo "plain venv check: hypothesis is installed in $VENV, so this check proves nothing" >&2
    exit 1
fi

project="$(mktemp -d)"
trap 'rm -rf "$project"' EXIT
cat > "$project/test_other_project.py" <<'PY'
def test_unrelated_code_still_tests() -> None:
    assert sorted([3, 1, 2]) == [1, 2, 3]


def test_logitkit_plugin_was_loaded(pytestconfig) -> None:  # type: ignore[no-untyped-def]
    # Without this the check could pass with the plugin not loaded at all.
    assert pytestconfig.pluginmanager.get_plugin("logitkit") is not None
PY
(cd "$project" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider)
echo "plain venv check: another project's suite passed with logitkit installed and no hypothesis"
