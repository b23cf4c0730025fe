#!/usr/bin/env bash
# The Python package's CI: a fresh virtual environment, `pip install ./python` (pip fetches
# maturin as the build backend; the extension builds into the workspace's target/), then the
# package's pytest suite. Needs the `hourglass` binary of this checkout for the CLI parity
# tests (cargo build --release), and lavapipe for the device="gpu" test, as .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
started=$(date +%s)
"$venv/bin/pip" install --quiet ./python pytest
echo "python: wheel built and installed in $(( $(date +%s) - started )) s"
cargo build --release --quiet --bin hourglass
# From a folder outside the source tree, so that `import hourglass` is the installed package.
cd "$venv/.." && "$venv/bin/python" -m pytest -q "$OLDPWD/python/tests"
