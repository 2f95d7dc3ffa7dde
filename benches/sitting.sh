#!/usr/bin/env bash
# One benchmark sitting, as BENCHMARKS.md reports it: the disk's own rate by `dd`, then every
# run of the results table against an embedded server, one after another.
#
#   cargo build --release && benches/sitting.sh [OUT_DIR]
#
# Each run writes its JSON object to OUT_DIR/<run>.json and its progress lines (one a second,
# with the process's resident memory) to OUT_DIR/<run>.log. Data goes to $DATA (default
# ./bench-data), which must have room for about 12 GB; every run removes its own files.
# The whole sitting takes about 12 minutes. Set SKIP_LONG=1 to leave out the 5-minute run.
set -euo pipefail

B=${B:-target/release/shardlog}
DATA=${DATA:-./bench-data}
OUT=${1:-./bench-results}
mkdir -p "$DATA" "$OUT"

COMMON=(--embedded --data-dir "$DATA" --shards 4 --producers 2 --record-size 1024)

run() {
    local name=$1
    shift
    echo "== $name: $B bench $*" >&2
    "$B" bench "$@" --json >"$OUT/$name.json" 2>"$OUT/$name.log"
    cat "$OUT/$name.json"
}

disk() {
    local name=$1
    shift
    echo "== $name: dd $*" >&2
    dd if=/dev/zero of="$DATA/ddtest" "$@" 2>&1 | tail -n 1 | tee "$OUT/$name.txt"
    rm -f "$DATA/ddtest"
}

disk dd-page-cache bs=1M count=2048
disk dd-fdatasync bs=1M count=2048 conv=fdatasync

run produce-never "${COMMON[@]}" --batch-size 500 --workload produce --fsync never \
    --records 2000000 --duration 120
run produce-always "${COMMON[@]}" --batch-size 500 --workload produce --fsync always \
    --records 2000000 --duration 120
run consume-get-records "${COMMON[@]}" --batch-size 500 --workload consume \
    --consume-mode get-records --fsync never --records 10000000 --duration 120
run consume-subscribe "${COMMON[@]}" --batch-size 500 --workload consume \
    --consume-mode subscribe --fsync never --records 10000000 --duration 120
run e2e-always "${COMMON[@]}" --batch-size 20 --workload e2e --fsync always \
    --rate 20000 --duration 30

disk dd-fdatasync-after bs=1M count=2048 conv=fdatasync

if [[ -z ${SKIP_LONG:-} ]]; then
    # Full speed for 5 minutes with 100 idle subscriptions open; each shard keeps 1 GiB.
    run memory-5min "${COMMON[@]}" --batch-size 500 --workload produce --fsync never \
        --duration 300 --idle-subscribers 100 --shard-retention-bytes 1073741824
fi
