#!/usr/bin/env bash
# What a session with the lent GPU (an H200, about 15 minutes a loan, minutes of it start-up)
# owes, in one command on the GPU machine, so none of its scarce time goes on typing. Two halves:
#
#   scripts/gpu-session.sh prepare   on the dev machine: release build, the test binaries that
#                                    check the GPU paths and the PyTorch anchor, packed into the
#                                    git-ignored .gpu/bundle.tar.xz, and the Vulkan loader into
#                                    .gl/ (the device tool carries 64 MiB at most)
#   scripts/gpu-session.sh remote    on the GPU machine, e.g. through the device tool:
#                                    run(command="bash scripts/gpu-session.sh remote",
#                                        carry=[".gpu", ".gl"], timeout_s=570)
#
# The remote half fits in HG_BUDGET seconds (default 480: 8 minutes) and writes everything to
# $OUT (or /tmp/hourglass-gpu) as it goes: summary.txt gets one line per part as the part ends
# (name, exit status, seconds), so a run cut short still leaves every finished measurement.
# Each part has its own time limit, cut further to what is left of the budget. The order is
# correctness first (kernel, convolution, mixed-precision and autotune tests), then cold and
# warm start, then `bench` f32 and mixed beside the PyTorch anchor in the same call, then the
# rest (the mixed-vs-f32 loss curve). Rehearse it on lavapipe with:
#   VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json HG_WORKLOADS=mnist_ae \
#   HG_SECONDS=0.2 HG_CURVE_EPOCHS=1 HG_NO_TORCH=1 HG_NO_LOADER=1 bash scripts/gpu-session.sh remote
#
# The mixed-precision tests exercise the cooperative-matrix kernel (the trainer and executor
# pick it wherever the GPU has f16 cooperative matrices), which CI can only validate with naga.
# See ../shared/gpu/README.md for the machine itself.
set -uo pipefail
cd "$(dirname "$0")/.."

# The GPU test binaries the remote half runs, in this order (those this checkout lacks are
# skipped at prepare time).
TESTS=(kernels kernels_conv kernels_regularized mixed_precision autotune)

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
    stage="$(mktemp -d)"
    # The data-parallel build (feature mpi) first: the default build below replaces the binary.
    if command -v mpicc >/dev/null; then
        cargo build --release --features mpi
        cp target/release/hourglass "$stage/hourglass-mpi"
    fi
    cargo build --release
    cp target/release/hourglass "$stage/"
    for t in "${TESTS[@]}"; do
        [ -f "tests/$t.rs" ] || { echo "prepare: no tests/$t.rs here, skipped"; continue; }
        cp "$(test_binary "$t")" "$stage/test-$t"
    done
    strip "$stage"/hourglass* "$stage"/test-*
    cp ../shared/bench/torch_ae_bench.py "$stage/"
    rm -rf .gpu && mkdir -p .gpu
    tar -C "$stage" -cJf .gpu/bundle.tar.xz .
    rm -rf "$stage"
    [ -d .gl ] || bash ../shared/gpu/fetch-vulkan-loader.sh .gl
    du -sh .gpu .gl
    ;;
remote)
    out=${OUT:-/tmp/hourglass-gpu}
    mkdir -p "$out"
    started=$(date +%s)
    budget=${HG_BUDGET:-480}
    summary="$out/summary.txt"
    # part NAME LIMIT_S LOG COMMAND...: runs COMMAND with its output in $out/LOG, under
    # min(LIMIT_S, what is left of the budget), and appends one line to the summary.
    part() {
        local name=$1 limit=$2 log=$3
        shift 3
        local left=$((budget - ($(date +%s) - started)))
        if [ "$left" -lt 5 ]; then
            echo "$name: skipped, the budget of ${budget} s is spent" | tee -a "$summary"
            return
        fi
        [ "$limit" -gt "$left" ] && limit=$left
        local t0=$(date +%s)
        timeout --kill-after=5 "$limit" "$@" > "$out/$log" 2>&1
        local rc=$?
        local note=""
        [ "$rc" -eq 124 ] && note=" (cut at its ${limit} s limit)"
        echo "$name: exit $rc, $(( $(date +%s) - t0 )) s$note $(grep -hE '^test result' "$out/$log" | tr '\n' ' ')" |
            tee -a "$summary"
    }
    bundle=.gpu/run
    if [ -f .gpu/bundle.tar.xz ]; then
        mkdir -p "$bundle" && tar -C "$bundle" -xJf .gpu/bundle.tar.xz
    else
        bundle=.gpu
    fi
    # The GPU machine has no Vulkan loader; a rehearsal here keeps the system's (HG_NO_LOADER=1).
    if [ -z "${HG_NO_LOADER:-}" ]; then
        for f in .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
        ldconfig 2>/dev/null
    fi
    export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
    export XDG_RUNTIME_DIR=/tmp CI=true
    # A fresh cache: the first bench is the cold start (shader compilation and tile timing).
    export XDG_CACHE_HOME="$out/cache"
    rm -rf "$XDG_CACHE_HOME"
    hg="$bundle/hourglass"
    echo "unpacked in $(( $(date +%s) - started )) s" | tee "$summary"

    part info 20 info.txt "$hg" info
    for t in "${TESTS[@]}"; do
        [ -x "$bundle/test-$t" ] || continue
        part "test $t" 60 "test-$t.log" "$bundle/test-$t" --test-threads 1
    done
    for run in cold warm; do
        part "$run start (mnist_ae)" 40 "start-$run.json" \
            /usr/bin/time -f "$run: %e s wall" "$hg" bench --workload mnist_ae --device gpu \
            --seconds 0.5 --json
    done
    workloads=${HG_WORKLOADS:-all}
    seconds=${HG_SECONDS:-3}
    part "bench f32 ($workloads)" 120 bench-f32.json \
        "$hg" bench --workload "$workloads" --device gpu --seconds "$seconds" --json
    part "bench mixed ($workloads)" 100 bench-mixed.json \
        "$hg" bench --workload "$workloads" --device gpu --seconds "$seconds" --json --precision mixed
    if [ -z "${HG_NO_TORCH:-}" ]; then
        part "PyTorch anchor" 120 torch.txt python3 "$bundle/torch_ae_bench.py"
    fi
    cp "$XDG_CACHE_HOME"/hourglass/*.tiles "$out/" 2>/dev/null
    epochs=${HG_CURVE_EPOCHS:-3}
    if [ "$epochs" -gt 0 ]; then
        for p in f32 mixed; do
            part "loss curve $p" 60 "curve-$p.log" \
                "$hg" train --encoder 784,512,128 --loss bce --epochs "$epochs" --batch-size 256 \
                --device gpu --precision $p --out "$out/curve-$p" --quiet
        done
        tail -n 3 "$out"/curve-*/metrics.jsonl >> "$summary" 2>/dev/null
    fi
    # Data parallel (BENCHMARKS.md, "More than one device"): large_ae on 1 rank, then 2 ranks
    # (one per GPU: adapter = local rank mod adapters) at the same global batch (strong) and at
    # twice it (weak). Target: >= 90% scaling efficiency at 2 ranks on a machine with 2 GPUs.
    if command -v mpirun >/dev/null && [ -x "$bundle/hourglass-mpi" ]; then
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
            part "data parallel: large_ae, $1 rank(s), batch $2" 60 "dp-$1-$2.log" \
                mpirun --allow-run-as-root --oversubscribe -np "$1" "$bundle/hourglass-mpi" train \
                --data "$out/large.npy" --encoder 4096,8192,4096,1024 --loss mse \
                --output-activation identity --batch-size "$2" --steps 24 --log-every 8 \
                --device gpu --out "$out/dp-$1-$2"
            echo "ranks $1 batch $2: $(tail -n 1 "$out/dp-$1-$2/metrics.jsonl" 2>/dev/null)" \
                "$(grep -o 'per step.*MB' "$out/dp-$1-$2.log")" | tee -a "$summary"
        done
    else
        echo "data parallel: skipped (no mpirun here, or no hourglass-mpi from prepare)" | tee -a "$summary"
    fi
    echo "remote half: $(( $(date +%s) - started )) s of the ${budget} s budget" | tee -a "$summary"
    cat "$out"/bench-*.json "$out/torch.txt" 2>/dev/null
    ;;
*)
    echo "usage: scripts/gpu-session.sh prepare|remote" >&2
    exit 2
    ;;
esac
