# Sourced by the venv build scripts: reuse a venv built with the same pins, and link the checkout into it.
# Expects VENV, REPO and PINS; sets STAMP.
STAMP="$VENV/.logitkit-vllm-stamp"

link_checkout() {
    # Editable, without dependencies: follows the checkout and keeps the venv's own pins.
    local args=(-e "$REPO")
    for plugin in "$REPO"/contrib/*/; do
        args+=(-e "$plugin")
    done
    # The venv's own python, not whatever `python` is on PATH (a moved venv's activate points elsewhere).
    "$VENV/bin/python" -m pip install --quiet --no-deps "${args[@]}"
}

reuse_or_reset() {
    # A venv stamped with the same pins is reused (relinked) and the build script stops; else a fresh one.
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$PINS" ]]; then
        link_checkout
        exit 0
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
}
