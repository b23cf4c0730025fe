#!/usr/bin/env bash
# Gradient accumulation's overhead (BENCHMARKS.md, "Gradient accumulation"): one process,
# 1 thread, mnist_ae on synthetic data, alternating --batch-size 256 (the fused step),
# --accumulate 4 --batch-size 64 (the same optimizer steps, split into four micro-batches)
# and --batch-size 64 (four times the steps), ROUNDS= rounds (default 3). Prints samples/s
# of the last epoch (training time only). H= overrides the binary; BEFORE= a second binary,
# run beside H's in every round (before/after side by side); DEVICE=gpu (default cpu) trains
# on the GPU (lavapipe here); STEPS= optimizer steps at batch 256 (default 32 on the CPU, 8
# on a GPU); LAUNCH= a launcher (e.g. "mpirun --allow-run-as-root --oversubscribe -np 2" with
# an mpi build: the ranks share each step's batch, rank 0's split of a step is printed too).
set -euo pipefail
cd "$(dirname "$0")/.."
H="${H:-$PWD/target/release/hourglass}"
BEFORE="${BEFORE:-}"
DEVICE="${DEVICE:-cpu}"
if [ "$DEVICE" = cpu ]; then STEPS="${STEPS:-32}"; else STEPS="${STEPS:-8}"; fi
dir="${TMPDIR:-/tmp}/hourglass-bench-accumulate"
mkdir -p "$dir"
python3 - "$dir" <<'PY'
import array, struct, sys
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (4096, 784), }"
hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
with open(sys.argv[1] + "/mnist.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    f.write(array.array("f", (((i * 2654435761) % 1000) / 1000.0 for i in range(4096 * 784))).tobytes())
PY
run() {
    local bin=$1 label=$2 steps=$3
    shift 3
    # shellcheck disable=SC2086
    RAYON_NUM_THREADS=1 ${LAUNCH:-} "$bin" train --data "$dir/mnist.npy" \
        --encoder 784,512,256,32 --steps "$steps" --device "$DEVICE" --out "$dir/run" \
        --overwrite --log-every 1000000 "$@" 2>"$dir/err" >/dev/null
    printf '%-44s %9.0f samples/s  %s\n' "$label" "$(tail -1 "$dir/run/metrics.jsonl" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_per_sec"])')" \
        "$(grep -o 'per step.*' "$dir/err" | head -1 || true)"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, device $DEVICE"
bins=("$H")
names=("")
if [ -n "$BEFORE" ]; then bins=("$BEFORE" "$H"); names=("before " "after  "); fi
for round in $(seq "${ROUNDS:-3}"); do
    for i in "${!bins[@]}"; do
        run "${bins[$i]}" "round $round: ${names[$i]}batch 256" "$STEPS" --batch-size 256
    done
    for i in "${!bins[@]}"; do
        run "${bins[$i]}" "round $round: ${names[$i]}accumulate 4 x 64" "$STEPS" \
            --batch-size 64 --accumulate 4
    done
    for i in "${!bins[@]}"; do
        run "${bins[$i]}" "round $round: ${names[$i]}batch 64" "$((STEPS * 4))" --batch-size 64
    done
done
