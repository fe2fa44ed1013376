#!/usr/bin/env bash
# `amicn get` throughput per segment signature type, in one sitting: DigestSha256, Ed25519 and
# ECDSA P-256 segments (8000 bytes each, signed before serving) published by `amicn put` into
# `amicn fwd` over TCP loopback (Content Store off, so every segment comes from the producer),
# fetched by `amicn get` over TCP loopback and verified segment by segment against a trust
# anchor (--integrity-only for DigestSha256, which has no key). The ECDSA key is the ndn-cxx
# vector key (kms/tests/identity_vectors/ndn-cxx-keys). Each rate is the best of REPS runs after
# a warm-up; ratios are to the DigestSha256 rate of the same sitting.
#
# usage: interop/tools/bench_get_sigtypes.sh [SIZE_MB]   (default 100; AMICN=path/to/amicn, REPS=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${AMICN:-${CARGO_TARGET_DIR:-target}/release/amicn}
SIZE_MB=${1:-100}
REPS=${REPS:-3}
[ -x "$B" ] || { echo "build first: cargo build --release -p amicn-cli (or set AMICN=)" >&2; exit 1; }
V=kms/tests/identity_vectors/ndn-cxx-keys

dir=$(mktemp -d /tmp/amicn-bench-sig.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
export AMICN_KEYCHAIN=$dir/kc
head -c $((SIZE_MB * 1000000)) /dev/urandom > "$dir/in.bin"
"$B" key create /bench/ed25519 > /dev/null
"$B" key cert /bench/ed25519 -o "$dir/ed25519.cert"
printf 'amicn-vector' > "$dir/pass"
"$B" key import "$V/ecdsa.safebag.b64" --passphrase-file "$dir/pass" > /dev/null

port=$((20000 + RANDOM % 20000))
"$B" fwd --socket "$dir/fwd.sock" --tcp "127.0.0.1:$port" --no-udp --cs-capacity 0 \
    --log-level warn > "$dir/fwd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$dir/fwd.sock" ] && break; sleep 0.1; done
uri=tcp://127.0.0.1:$port

start_put() {
    local out=$dir/put.$RANDOM
    "$B" put --connect "$uri" "$@" "$dir/in.bin" > "$out" 2> "$out.err" &
    pids+=($!)
    for _ in $(seq 1200); do [ -s "$out" ] && return 0; sleep 0.1; done
    echo "put did not start: $(cat "$out.err")" >&2
    exit 1
}

# get_rate NAME TRUST-ARGS...: best MB/s of REPS runs after one warm-up; checks the bytes.
get_rate() {
    local name=$1 json best=0 r
    shift
    for i in $(seq 0 "$REPS"); do
        json=$("$B" get --connect "$uri" "$@" --json -q -o "$dir/out.bin" "$name")
        cmp -s "$dir/in.bin" "$dir/out.bin" || { echo "bytes differ for $name" >&2; exit 1; }
        r=$(python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["mb_per_s"])' "$json")
        [ "$i" -gt 0 ] && best=$(python3 -c 'import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))' "$best" "$r")
    done
    echo "$best"
}

declare -A rate
start_put --digest /bench/digest
rate[digest]=$(get_rate /bench/digest --integrity-only)
start_put --identity /bench/ed25519 /bench/ed25519/file
rate[ed25519]=$(get_rate /bench/ed25519/file --trust-anchor "$dir/ed25519.cert")
start_put --identity /example/ecdsa /example/ecdsa/file
rate[ecdsa]=$(get_rate /example/ecdsa/file --trust-anchor "$V/ecdsa.cert.b64")

ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
echo
echo "amicn get, ${SIZE_MB} MB object, 8000-B segments, amicn fwd over TCP loopback (CS off), best of $REPS after a warm-up ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo "| segments | verified against | MB/s | ratio to DigestSha256 |"
echo "| --- | --- | --- | --- |"
echo "| DigestSha256 | digest (--integrity-only) | ${rate[digest]} | 1.00 |"
echo "| Ed25519 | trust anchor, batches of 64 | ${rate[ed25519]} | $(ratio "${rate[ed25519]}" "${rate[digest]}") |"
echo "| ECDSA P-256 | trust anchor | ${rate[ecdsa]} | $(ratio "${rate[ecdsa]}" "${rate[digest]}") |"
