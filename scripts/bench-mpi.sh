#!/usr/bin/env bash
# Data-parallel scaling on the CPU (BENCHMARKS.md, "More than one device"): 1 rank × 1 thread,
# 1 rank × 2 threads and 2 ranks × 1 thread (strong scaling, the same global batch), and 2 ranks
# at twice the batch (weak scaling), on mnist_ae and a large_ae-shaped model a quarter as wide.
# Needs `cargo build --release --features mpi` and Open MPI's mpirun. Prints one line per run:
# samples/s of the last epoch (training time only), ms per step, and rank 0's split of a step.
set -euo pipefail
cd "$(dirname "$0")/.."
H="$PWD/target/release/hourglass"
dir="${TMPDIR:-/tmp}/hourglass-bench-mpi"
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
mpi="mpirun --allow-run-as-root --oversubscribe"
# name, data, encoder, extra flags, steps
run() {
    local label=$1 launcher=$2 threads=$3 data=$4 encoder=$5 batch=$6 steps=$7 extra=$8
    local out="$dir/run"
    # shellcheck disable=SC2086
    env ${threads:+RAYON_NUM_THREADS=$threads} $launcher "$H" train --data "$dir/$data" \
        --encoder "$encoder" --batch-size "$batch" --steps "$steps" --device cpu --out "$out" \
        --overwrite --log-every 1000000 $extra 2>"$dir/err" >/dev/null
    local sps
    sps=$(tail -1 "$out/metrics.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_per_sec"])')
    printf '%-34s %9.0f samples/s %9.1f ms/step  %s\n' "$label" "$sps" \
        "$(python3 -c "print(1000 * $batch / $sps)")" "$(grep -o 'per step.*ms update' "$dir/err" || true)"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for w in "mnist_ae mnist.npy 784,512,256,32 --output-activation=sigmoid 256 64" \
         "large_ae/4 large.npy 1024,2048,1024,256 --loss=mse 256 24"; do
    # shellcheck disable=SC2086
    set -- $w
    name=$1 data=$2 enc=$3 extra="$4 --output-activation identity" batch=$5 steps=$6
    [ "$name" = mnist_ae ] && extra=""
    run "$name 1 rank x 1 thread" "" 1 "$data" "$enc" "$batch" "$steps" "$extra"
    run "$name 1 rank x 2 threads" "" 2 "$data" "$enc" "$batch" "$steps" "$extra"
    run "$name 2 ranks x 1 thread" "$mpi -np 2" "" "$data" "$enc" "$batch" "$steps" "$extra"
    run "$name 2 ranks x 1, batch x2" "$mpi -np 2" "" "$data" "$enc" "$((batch * 2))" "$steps" "$extra"
done
