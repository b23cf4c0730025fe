#!/usr/bin/env bash
# The Python package's CI: build the abi3 wheel once (pip fetches maturin as the build backend;
# the extension builds into the workspace's target/), check its name and metadata, install it
# in a fresh virtual environment and run the package's pytest suite. Needs the `hourglass`
# binary of this checkout for the CLI parity tests (cargo build --release), and lavapipe for
# the device="gpu" test, as .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
venv="$scratch/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
started=$(date +%s)
"$venv/bin/pip" wheel --quiet --no-deps ./python -w "$scratch/dist"
echo "python: wheel built in $(( $(date +%s) - started )) s"
wheel="$(ls "$scratch"/dist/hourglass_ae-*.whl)"
# One wheel for every CPython >= 3.9, with the licences and the homepage in its metadata.
case "$(basename "$wheel")" in
    *-cp39-abi3-*) ;;
    *) echo "python: $(basename "$wheel") is not an abi3 wheel for CPython >= 3.9" >&2; exit 1 ;;
esac
metadata="$("$venv/bin/python" - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    print(z.read(name).decode())
PY
)"
for field in "License: MIT" "Fashion-MNIST" "Project-URL: Homepage"; do
    grep -q "$field" <<<"$metadata" || { echo "python: the wheel's metadata lacks '$field'" >&2; exit 1; }
done
"$venv/bin/pip" install --quiet "$wheel" pytest
cargo build --release --quiet --bin hourglass
# From a folder outside the source tree, so that `import hourglass` is the installed package.
cd "$scratch" && "$venv/bin/python" -m pytest -q "$OLDPWD/python/tests"
