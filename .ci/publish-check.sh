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
# Every file the build needs is in the package: the packaged sources alone build, with the
# release artifacts of the dependencies the tests already built (`cargo publish --dry-run`'s
# own verification would rebuild every dependency in the dev profile: minutes on 2 cores).
started=$(date +%s)
cargo publish --dry-run --no-verify --quiet
version="$(cargo pkgid | sed 's/.*[@#]//')"
crate=target/package/hourglass-ae-"$version".crate
[ -f "$crate" ] || crate="$(ls target/package/tmp-crate/hourglass-ae-"$version".crate)"
unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "$crate" -C "$unpacked"
# Touched, so that cargo compiles the packaged sources instead of finding the tests' artifacts
# fresh (the package is the workspace root in both places, so its fingerprints match).
find "$unpacked" -type f -exec touch {} +
(cd "$unpacked/hourglass-ae-$version" && CARGO_TARGET_DIR="$OLDPWD/target" cargo build --release --locked --quiet)
bytes=$(stat -c %s "$crate")
echo "publish-check: $(wc -l <<<"$list") files, $((bytes / 1024)) KiB packed (crates.io limit: 10 MiB), packaged build $(( $(date +%s) - started )) s"
if [ "$bytes" -gt $((10 * 1024 * 1024)) ]; then
    echo "publish-check: the crate is over crates.io's 10 MiB limit" >&2
    exit 1
fi
