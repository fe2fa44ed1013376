#!/usr/bin/env bash
# End-to-end throughput of `amicn get` (one run, ratios against the direct transfer measured in
# the same run). 8000-byte segments over Unix sockets:
#   direct      amicn put --listen (no forwarder) -> amicn get
#   fwd miss    amicn put -> amicn fwd -> amicn get, first fetch (Content Store miss)
#   fwd hit     the same object fetched again (Content Store hit)
# for DigestSha256 segments, Ed25519 segments signed before serving, and Ed25519 segments signed
# on the fly as Interests arrive; the consumer verifies every segment (Ed25519 in batches of 64).
#
# usage: interop/tools/bench_get.sh [SIZE_MB]      (default 200; AMICN=path/to/amicn)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${AMICN:-${CARGO_TARGET_DIR:-target}/release/amicn}
SIZE_MB=${1:-200}
[ -x "$B" ] || { echo "build first: cargo build --release -p amicn-cli (or set AMICN=)" >&2; exit 1; }

dir=$(mktemp -d /tmp/amicn-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
export AMICN_KEYCHAIN=$dir/kc
head -c $((SIZE_MB * 1000000)) /dev/urandom > "$dir/in.bin"
"$B" key create /bench/producer > /dev/null

# Starts `amicn put ARGS...` in the background and waits for the versioned name it prints.
start_put() {
    local out=$dir/put.$RANDOM
    "$B" put "$@" > "$out" 2> "$out.err" &
    pids+=($!)
    for _ in $(seq 600); do [ -s "$out" ] && return 0; sleep 0.1; done
    echo "put did not start: $(cat "$out.err")" >&2
    exit 1
}

# Fetches NAME via URI; prints MB/s; checks the bytes.
get_rate() {
    local uri=$1 name=$2 json
    json=$("$B" get --connect "$uri" --json -q -o "$dir/out.bin" "$name")
    cmp -s "$dir/in.bin" "$dir/out.bin" || { echo "bytes differ for $name" >&2; exit 1; }
    python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["mb_per_s"])' "$json"
}

"$B" fwd --socket "$dir/fwd.sock" --no-tcp --no-udp --log-level warn \
    --cs-capacity 100000 --cs-capacity-bytes $((SIZE_MB * 1000000 * 2)) > "$dir/fwd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/fwd.sock" ] && break; sleep 0.1; done
FWD=unix://$dir/fwd.sock

declare -A rate
for sig in digest ed25519 ed25519-lazy; do
    case $sig in
        digest) flags=(--digest) ;;
        ed25519) flags=(--identity /bench/producer) ;;
        ed25519-lazy) flags=(--identity /bench/producer --lazy-sign) ;;
    esac
    start_put "${flags[@]}" --listen "$dir/direct-$sig.sock" "/bench/direct/$sig" "$dir/in.bin"
    rate[$sig,direct]=$(get_rate "unix://$dir/direct-$sig.sock" "/bench/direct/$sig")
    start_put "${flags[@]}" --connect "$FWD" "/bench/fwd/$sig" "$dir/in.bin"
    rate[$sig,miss]=$(get_rate "$FWD" "/bench/fwd/$sig")
    rate[$sig,hit]=$(get_rate "$FWD" "/bench/fwd/$sig")
done

ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
echo
echo "amicn get, ${SIZE_MB} MB object, 8000-B segments, Unix sockets ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo "| segments | direct MB/s | fwd CS miss MB/s | fwd CS hit MB/s | miss/direct | hit/direct |"
echo "| --- | --- | --- | --- | --- | --- |"
for sig in digest ed25519 ed25519-lazy; do
    d=${rate[$sig,direct]} m=${rate[$sig,miss]} h=${rate[$sig,hit]}
    echo "| $sig | $d | $m | $h | $(ratio "$m" "$d") | $(ratio "$h" "$d") |"
done
