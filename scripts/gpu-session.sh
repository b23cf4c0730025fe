#!/usr/bin/env bash
# What a session with the lent H100 owes (BENCHMARKS.md, "What remains to be measured"), in
# one command on the GPU machine, so none of its scarce time goes on typing. Two halves:
#
#   scripts/gpu-session.sh prepare   on the dev machine: release build, the test binaries that
#                                    check the GPU paths, the PyTorch anchor and the Vulkan loader
#                                    into the git-ignored .gpu/ and .gl/ (about 41 MiB, under the
#                                    device tool's 64 MiB carry limit)
#   scripts/gpu-session.sh remote    on the GPU machine, e.g. through the device tool:
#                                    run(command="bash scripts/gpu-session.sh remote",
#                                        carry=[".gpu", ".gl"])
#                                    every log and JSON line goes to $OUT (or /tmp/hourglass-gpu)
#
# HG_WORKLOADS (default all), HG_SECONDS (5) and HG_CURVE_EPOCHS (3; 0 skips the curve) shorten
# the remote half, e.g. to rehearse it on lavapipe:
#   VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json HG_WORKLOADS=mnist_ae \
#   HG_SECONDS=0.2 HG_CURVE_EPOCHS=0 bash scripts/gpu-session.sh remote
#
# The remote half runs correctness before speed: the mixed-precision tests there exercise the
# cooperative-matrix kernel (the trainer and executor pick it wherever the GPU has f16
# cooperative matrices), which CI can only validate with naga. See ../shared/gpu/README.md for
# the machine itself.
set -uo pipefail
cd "$(dirname "$0")/.."

test_binary() {
    cargo test --release --no-run --test "$1" --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" | tail -n 1
}

case "${1:-}" in
prepare)
    set -e
    rm -rf .gpu && mkdir -p .gpu
    # The data-parallel build (feature mpi) first: the default build below replaces the binary.
    if command -v mpicc >/dev/null; then
        cargo build --release --features mpi
        cp target/release/hourglass .gpu/hourglass-mpi
    fi
    cargo build --release
    cp target/release/hourglass .gpu/
    for t in mixed_precision kernels autotune; do
        cp "$(test_binary "$t")" ".gpu/test-$t"
    done
    strip .gpu/hourglass* .gpu/test-*
    cp ../shared/bench/torch_ae_bench.py .gpu/
    [ -d .gl ] || bash ../shared/gpu/fetch-vulkan-loader.sh .gl
    du -sh .gpu .gl
    ;;
remote)
    out=${OUT:-/tmp/hourglass-gpu}
    mkdir -p "$out"
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
    export XDG_RUNTIME_DIR=/tmp CI=true
    # A fresh cache: the first bench is the cold start (shader compilation and tile timing).
    export XDG_CACHE_HOME="$out/cache"
    rm -rf "$XDG_CACHE_HOME"
    hg=./.gpu/hourglass
    step() { echo "== $*" | tee -a "$out/summary.txt"; }

    step info
    $hg info > "$out/info.txt" 2>&1
    cat "$out/info.txt"
    for t in mixed_precision kernels autotune; do
        step "test $t"
        ./.gpu/test-$t --test-threads 1 > "$out/test-$t.log" 2>&1
        echo "exit $? $(grep -E '^test result' "$out/test-$t.log")" | tee -a "$out/summary.txt"
    done
    step "cold start, then warm start (mnist_ae)"
    for run in cold warm; do
        /usr/bin/time -f "$run: %e s wall" $hg bench --workload mnist_ae --device gpu \
            --seconds 0.5 --json > "$out/start-$run.json" 2>> "$out/summary.txt"
    done
    step "bench f32 (all workloads) and the PyTorch anchor, same call"
    workloads=${HG_WORKLOADS:-all}
    seconds=${HG_SECONDS:-5}
    $hg bench --workload "$workloads" --device gpu --seconds "$seconds" --json \
        > "$out/bench-f32.json" 2>&1
    $hg bench --workload "$workloads" --device gpu --seconds "$seconds" --json \
        --precision mixed > "$out/bench-mixed.json" 2>&1
    python3 .gpu/torch_ae_bench.py > "$out/torch.txt" 2>&1
    cp "$XDG_CACHE_HOME"/hourglass/*.tiles "$out/" 2>/dev/null
    step "mixed vs f32 loss curve (Fashion-MNIST test set, bundled)"
    epochs=${HG_CURVE_EPOCHS:-3}
    for p in f32 mixed; do
        [ "$epochs" -gt 0 ] || break
        $hg train --encoder 784,512,128 --loss bce --epochs "$epochs" --batch-size 256 \
            --device gpu --precision $p --out "$out/curve-$p" --quiet > /dev/null 2>&1
    done
    tail -n 3 "$out"/curve-*/metrics.jsonl >> "$out/summary.txt" 2>/dev/null
    # Data parallel (BENCHMARKS.md, "More than one device"): large_ae on 1 rank, then 2 ranks
    # (one per GPU: adapter = local rank mod adapters) at the same global batch (strong) and at
    # twice it (weak). Target: ≥ 90% scaling efficiency at 2 ranks on a machine with 2 GPUs.
    if command -v mpirun >/dev/null && [ -x .gpu/hourglass-mpi ]; then
        step "data parallel: large_ae, 1 rank, 2 ranks (batch 4096 and 8192)"
        python3 - "$out/large.npy" <<'PY'
import array, struct, sys
rows, cols = 16384, 4096
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    row = array.array("f", ((i * 2654435761 % 1000) / 1000.0 for i in range(cols)))
    for _ in range(rows):
        f.write(row.tobytes())
PY
        for cfg in "1 4096" "2 4096" "2 8192"; do
            set -- $cfg
            mpirun --allow-run-as-root --oversubscribe -np "$1" .gpu/hourglass-mpi train \
                --data "$out/large.npy" --encoder 4096,8192,4096,1024 --loss mse \
                --output-activation identity --batch-size "$2" --steps 24 --log-every 8 \
                --device gpu --out "$out/dp-$1-$2" > "$out/dp-$1-$2.log" 2>&1
            echo "ranks $1 batch $2: $(tail -n 1 "$out/dp-$1-$2/metrics.jsonl" 2>/dev/null)" \
                "$(grep -o 'per step.*MB' "$out/dp-$1-$2.log")" | tee -a "$out/summary.txt"
        done
    else
        step "data parallel: skipped (no mpirun here, or no .gpu/hourglass-mpi from prepare)"
    fi
    cat "$out/summary.txt" "$out"/bench-*.json "$out/torch.txt"
    ;;
*)
    echo "usage: scripts/gpu-session.sh prepare|remote" >&2
    exit 2
    ;;
esac
