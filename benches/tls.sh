#!/usr/bin/env bash
# Produce over loopback to a served shardlog, plain and with TLS and an auth file on, runs
# alternated in one sitting. Certificates (a CA and a server certificate for 127.0.0.1) and the
# auth file are made in a temporary directory with openssl; each run has a fresh data directory
# and a server of its own, whose CPU time is read from /proc around the run.
#
#   benches/tls.sh [BIN] [OUT_DIR]
#
# ROUNDS (default 2), DURATION (default 30s) and FSYNC (default never) set the runs; each line
# of OUT_DIR/summary.tsv is: mode, round, records/s, bench CPU µs/record, server CPU µs/record.
set -euo pipefail

BIN=${1:-target/release/shardlog}
OUT=${2:-./bench-tls}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-30s}
FSYNC=${FSYNC:-never}
PORT=${PORT:-50071}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/server.pem" 2>/dev/null
TOKEN=bench-token-$RANDOM$RANDOM
cat >"$WORK/auth.toml" <<TOML
[[principal]]
name = "bench"
tokens_sha256 = ["$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"]
[[principal.allow]]
streams = "*"
actions = ["read", "write", "admin"]
TOML

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
    local mode=$1 round=$2
    local data="$WORK/data-$mode-$round"
    local serve=(serve --data-dir "$data" --listen "127.0.0.1:$PORT" --fsync "$FSYNC"
        --http-listen off --kinesis-listen off --log warn)
    local client=(--server "http://127.0.0.1:$PORT")
    if [ "$mode" = tls-auth ]; then
        serve+=(--tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key"
            --auth-file "$WORK/auth.toml")
        client=(--server "https://127.0.0.1:$PORT" --ca-cert "$WORK/ca.pem" --token "$TOKEN")
    fi
    "$BIN" "${serve[@]}" 2>"$OUT/serve-$mode-$round.log" &
    local pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    local before
    before=$(cpu_ticks "$pid")
    echo "== $mode round $round" >&2
    "$BIN" bench "${client[@]}" --workload produce --shards 4 --producers 2 \
        --record-size 1024 --batch-size 500 --duration "$DURATION" --json \
        >"$OUT/$mode-$round.json" 2>"$OUT/$mode-$round.log"
    local after
    after=$(cpu_ticks "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$data"
    python3 - "$OUT/$mode-$round.json" "$mode" "$round" "$before" "$after" "$(getconf CLK_TCK)" <<'PY' >>"$OUT/summary.tsv"
import json, sys
report = json.load(open(sys.argv[1]))
records = report["records"]
server_cpu = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
print("\t".join([sys.argv[2], sys.argv[3], f"{report['records_per_sec']:.0f}",
                 f"{report['cpu_us_per_record']:.2f}", f"{server_cpu / records * 1e6:.2f}"]))
PY
}

: >"$OUT/summary.tsv"
for round in $(seq 1 "$ROUNDS"); do
    run plain "$round"
    run tls-auth "$round"
done
cat "$OUT/summary.tsv"
