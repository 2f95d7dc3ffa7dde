#!/usr/bin/env bash
# A before/after comparison of two builds in one sitting: every run of the table is made with
# build A, then with build B, then again A and B (runs alternated, so a slow minute of a shared
# machine weighs on both), and each run's JSON goes to OUT_DIR/<run>-<label>-<round>.json.
#
#   benches/ab.sh BIN_A BIN_B [OUT_DIR]
#
# ROUNDS (default 2) sets how many times each pair is run; CONSUME_RECORDS (default 4000000)
# how many records the catch-up reads store and read back. Data goes to $DATA (default
# ./bench-data), which needs room for about CONSUME_RECORDS KiB; every run removes its files.
set -euo pipefail

A=${1:?usage: benches/ab.sh BIN_A BIN_B [OUT_DIR]}
B=${2:?usage: benches/ab.sh BIN_A BIN_B [OUT_DIR]}
OUT=${3:-./bench-ab}
DATA=${DATA:-./bench-data}
ROUNDS=${ROUNDS:-2}
CONSUME_RECORDS=${CONSUME_RECORDS:-4000000}
mkdir -p "$DATA" "$OUT"

COMMON=(--embedded --data-dir "$DATA" --shards 4 --producers 2 --record-size 1024 --json)

run() {
    local bin=$1 label=$2 round=$3 name=$4
    shift 4
    echo "== $name $label round $round: $bin bench $*" >&2
    "$bin" bench "$@" >"$OUT/$name-$label-$round.json" 2>"$OUT/$name-$label-$round.log"
}

for round in $(seq 1 "$ROUNDS"); do
    for spec in \
        "produce-never --batch-size 500 --workload produce --fsync never --records 2000000 --duration 120" \
        "produce-always --batch-size 500 --workload produce --fsync always --records 2000000 --duration 120" \
        "consume-get-records --batch-size 500 --workload consume --consume-mode get-records --fsync never --records $CONSUME_RECORDS --duration 120" \
        "consume-subscribe --batch-size 500 --workload consume --consume-mode subscribe --fsync never --records $CONSUME_RECORDS --duration 120"; do
        # shellcheck disable=SC2086
        set -- $spec
        name=$1
        shift
        run "$A" A "$round" "$name" "${COMMON[@]}" "$@"
        run "$B" B "$round" "$name" "${COMMON[@]}" "$@"
    done
done

# One line per run: records/s and CPU µs per record, from each JSON object.
for f in "$OUT"/*.json; do
    rate=$(grep -o '"records_per_sec":[0-9.]*' "$f" | head -n 1 | cut -d: -f2)
    cpu=$(grep -o '"cpu_us_per_record":[0-9.]*' "$f" | head -n 1 | cut -d: -f2)
    printf '%s\t%s\t%s\n' "$(basename "$f" .json)" "$rate" "$cpu"
done
