#!/usr/bin/env bash
# Gradient accumulation's overhead on the CPU (BENCHMARKS.md, "Gradient accumulation"): one
# process, 1 thread, mnist_ae on synthetic data, alternating --batch-size 256 (the fused step),
# --accumulate 4 --batch-size 64 (the same optimizer steps, split: a read-back and a host add
# per micro-batch, one write-back per step) and --batch-size 64 (four times the steps), three
# rounds. Prints samples/s of the last epoch (training time only). H= overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
H="${H:-$PWD/target/release/hourglass}"
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
    local label=$1 steps=$2
    shift 2
    RAYON_NUM_THREADS=1 "$H" train --data "$dir/mnist.npy" --encoder 784,512,256,32 \
        --steps "$steps" --device cpu --out "$dir/run" --overwrite --log-every 1000000 "$@" \
        2>/dev/null >/dev/null
    printf '%-30s %9.0f samples/s\n' "$label" "$(tail -1 "$dir/run/metrics.jsonl" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_per_sec"])')"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for round in 1 2 3; do
    run "round $round: batch 256" 32 --batch-size 256
    run "round $round: accumulate 4 x 64" 32 --batch-size 64 --accumulate 4
    run "round $round: batch 64" 128 --batch-size 64
done
