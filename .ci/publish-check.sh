#!/usr/bin/env bash
# The publishing checks of the Rust crate (`hourglass-ae` on crates.io, imported as
# `hourglass`): run after the tests, on the same checkout, so that any scratch file a test left
# in the tree fails `cargo package` as an uncommitted change.
set -euo pipefail
cd "$(dirname "$0")/.."

list="$(cargo package --list)"
# Nothing that only exists on a developer's machine or after a run.
if grep -E '(^|/)(target|\.gpu|\.gl|__pycache__)/|\.so$|\.npy$|\.safetensors$' <<<"$list"; then
    echo "publish-check: the package would ship the files above" >&2
    exit 1
fi
# Every file the build needs is in the package: the dry run builds the packaged sources alone.
started=$(date +%s)
cargo publish --dry-run --quiet
crate=target/package/hourglass-ae-"$(cargo pkgid | sed 's/.*[@#]//')".crate
[ -f "$crate" ] || crate="$(ls target/package/tmp-crate/*.crate 2>/dev/null | head -1)"
bytes=$(stat -c %s "$crate")
echo "publish-check: $(wc -l <<<"$list") files, $((bytes / 1024)) KiB packed (crates.io limit: 10 MiB), dry run $(( $(date +%s) - started )) s"
if [ "$bytes" -gt $((10 * 1024 * 1024)) ]; then
    echo "publish-check: the crate is over crates.io's 10 MiB limit" >&2
    exit 1
fi
