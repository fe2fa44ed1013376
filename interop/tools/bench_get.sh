#!/usr/bin/env bash
# End-to-end throughput of `amicn get` (one run, ratios against the direct transfer measured in
# the same run). 8000-byte segments over Unix sockets:
#   direct      amicn put --listen (no forwarder) -> amicn get
#   fwd miss    amicn put -> amicn fwd --cs-capacity 0 -> amicn get (every fetch a Content Store miss)
#   fwd hit     the same through a forwarder whose Content Store holds the object (hits)
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

# Fetches NAME via URI once to warm up, then REPS times; prints the best MB/s (the machine is
# shared, so the best of a few runs is the least disturbed one). Checks the bytes every time.
REPS=${REPS:-3}
# With a third argument `once`, one cold run is measured (on-the-fly signing happens only the
# first time a segment is asked for; later fetches would see the producer's signed copies).
get_rate() {
    local uri=$1 name=$2 json best=0 r first=0
    [ "${3:-}" = once ] && first=1
    for i in $(seq 0 "$([ $first = 1 ] && echo 0 || echo "$REPS")"); do
        json=$("$B" get --connect "$uri" --integrity-only --json -q -o "$dir/out.bin" "$name")
        cmp -s "$dir/in.bin" "$dir/out.bin" || { echo "bytes differ for $name" >&2; exit 1; }
        r=$(python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["mb_per_s"])' "$json")
        [ "$i" -gt 0 ] || [ $first = 1 ] && best=$(python3 -c 'import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))' "$best" "$r")
    done
    echo "$best"
}

start_fwd() {
    "$B" fwd --socket "$dir/$1.sock" --no-tcp --no-udp --log-level warn "${@:2}" > "$dir/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "$dir/$1.sock" ] && return 0; sleep 0.1; done
    echo "forwarder $1 did not start" >&2
    exit 1
}
# One forwarder that caches nothing (every fetch is a Content Store miss), one that caches all.
start_fwd miss --cs-capacity 0
start_fwd hit --cs-capacity 100000 --cs-capacity-bytes $((SIZE_MB * 1000000 * 2))

declare -A rate
for sig in digest ed25519 ed25519-lazy; do
    case $sig in
        digest) flags=(--digest) ;;
        ed25519) flags=(--identity /bench/producer) ;;
        ed25519-lazy) flags=(--identity /bench/producer --lazy-sign) ;;
    esac
    once=$([ $sig = ed25519-lazy ] && echo once || echo)
    start_put "${flags[@]}" --listen "$dir/direct-$sig.sock" "/bench/direct/$sig" "$dir/in.bin"
    rate[$sig,direct]=$(get_rate "unix://$dir/direct-$sig.sock" "/bench/direct/$sig" $once)
    start_put "${flags[@]}" --connect "unix://$dir/miss.sock" "/bench/miss/$sig" "$dir/in.bin"
    rate[$sig,miss]=$(get_rate "unix://$dir/miss.sock" "/bench/miss/$sig" $once)
    start_put "${flags[@]}" --connect "unix://$dir/hit.sock" "/bench/hit/$sig" "$dir/in.bin"
    rate[$sig,hit]=$(get_rate "unix://$dir/hit.sock" "/bench/hit/$sig")
done

ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
echo
echo "amicn get, ${SIZE_MB} MB object, 8000-B segments, Unix sockets, best of $REPS after a warm-up ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo "| segments | direct MB/s | fwd CS miss MB/s | fwd CS hit MB/s | miss/direct | hit/direct |"
echo "| --- | --- | --- | --- | --- | --- |"
for sig in digest ed25519 ed25519-lazy; do
    d=${rate[$sig,direct]} m=${rate[$sig,miss]} h=${rate[$sig,hit]}
    echo "| $sig | $d | $m | $h | $(ratio "$m" "$d") | $(ratio "$h" "$d") |"
done
echo "(ed25519-lazy direct and miss: one cold run each, every segment signed as its Interest arrives)"
