#!/usr/bin/env bash
# Bucketed, overlapped reduction against the one sum after the backward pass (BENCHMARKS.md,
# "Overlapping the reduction"): 2 ranks × 1 thread on the CPU, mnist_ae and large_ae/4 at the
# global batch 256 of scripts/bench-mpi.sh, alternating in each round between BEFORE (a binary
# without buckets, e.g. main's; optional), this build with `--reduce-buckets off` and this build
# with its default buckets. Needs `cargo build --release --features mpi` and Open MPI's mpirun.
# Prints samples/s of the last epoch (training time only), ms per step, and rank 0's
# per-step split for each run: the reduction is the part left after the
# backward pass (with buckets, the thread's whole reducing time is given beside it).
# DEVICE=gpu runs the ranks on the GPU instead (one adapter shared by both ranks; on lavapipe
# set LP_NUM_THREADS=1), with smaller workloads (BATCH, STEPS_MNIST, STEPS_LARGE override the
# sizes; lavapipe manages a few GFLOP/s).
set -euo pipefail
cd "$(dirname "$0")/.."
H="$PWD/target/release/hourglass"
BEFORE=${BEFORE:-}
ROUNDS=${ROUNDS:-3}
DEVICE=${DEVICE:-cpu}
if [ "$DEVICE" = gpu ]; then
    BATCH=${BATCH:-64} STEPS_MNIST=${STEPS_MNIST:-8} STEPS_LARGE=${STEPS_LARGE:-0}
else
    BATCH=${BATCH:-256} STEPS_MNIST=${STEPS_MNIST:-64} STEPS_LARGE=${STEPS_LARGE:-24}
fi
dir="${TMPDIR:-/tmp}/hourglass-bench-overlap"
mkdir -p "$dir"
python3 - "$dir" <<'PY'
import array, struct, sys
def npy(path, rows, cols):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(array.array("f", (((i * 2654435761) % 1000) / 1000.0 for i in range(rows * cols))).tobytes())
npy(sys.argv[1] + "/mnist.npy", 4096, 784)
npy(sys.argv[1] + "/large.npy", 2048, 1024)
PY
run() {
    local label=$1 bin=$2 data=$3 encoder=$4 steps=$5 extra=$6
    local out="$dir/run"
    # shellcheck disable=SC2086
    RAYON_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" train \
        --data "$dir/$data" --encoder "$encoder" --batch-size "$BATCH" --steps "$steps" --device "$DEVICE" \
        --out "$out" --overwrite --log-every 1000000 $extra 2>"$dir/err" >/dev/null
    local sps
    sps=$(tail -1 "$out/metrics.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_per_sec"])')
    printf '%-24s %6.0f samples/s %6.1f ms/step  %s\n' "$label" "$sps" \
        "$(python3 -c "print(1000 * $BATCH / $sps)")" "$(grep -o 'per step.*ms update' "$dir/err" || cat "$dir/err")"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for round in $(seq "$ROUNDS"); do
    for w in "mnist_ae mnist.npy 784,512,256,32 $STEPS_MNIST" "large_ae/4 large.npy 1024,2048,1024,256 $STEPS_LARGE"; do
        # shellcheck disable=SC2086
        set -- $w
        name=$1 data=$2 enc=$3 steps=$4 extra=""
        [ "$steps" = 0 ] && continue
        [ "$name" != mnist_ae ] && extra="--loss=mse --output-activation identity"
        [ -n "$BEFORE" ] && run "$round $name before" "$BEFORE" "$data" "$enc" "$steps" "$extra"
        run "$round $name off" "$H" "$data" "$enc" "$steps" "$extra --reduce-buckets off"
        run "$round $name buckets" "$H" "$data" "$enc" "$steps" "$extra"
    done
done
