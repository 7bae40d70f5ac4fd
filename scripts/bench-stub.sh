#!/usr/bin/env bash
# Measures the DNS stub on loopback: cold and cached latency and queries per
# second, with dnsperf (Debian package `dnsperf`) and dig, against
# `kadns demo` serving a synthetic zone. Prints figures; asserts nothing.
#
#   scripts/bench-stub.sh [NAMES] [NODES]
#
# KADNS_BIN=path measures that binary instead of building this tree's
# (e.g. the previous release, to compare in the same session).
set -euo pipefail
cd "$(dirname "$0")/.."
names=${1:-2000}
nodes=${2:-10}
port=5398
command -v dnsperf >/dev/null || { echo "needs dnsperf (apt-get install dnsperf)" >&2; exit 1; }
if [ -z "${KADNS_BIN:-}" ]; then cargo build --release -q -p kadns; fi
kadns=${KADNS_BIN:-target/release/kadns}
work=$(mktemp -d)
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$work"' EXIT

{
  echo '$ORIGIN bench.kad.'
  echo '$TTL 3600'
  echo '@ IN SOA ns hostmaster ( 1 3600 600 86400 60 )'
  for ((i = 0; i < names; i++)); do
    echo "host$i IN A 10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"
  done
} > "$work/bench.zone"
for ((i = 0; i < names; i++)); do echo "host$i.bench.kad A"; done > "$work/queries"

start=$(date +%s.%N)
"$kadns" demo --listen "127.0.0.1:$port" --nodes "$nodes" --zone "$work/bench.zone" > "$work/demo.out" 2>&1 &
demo=$!
for _ in $(seq 600); do grep -q 'Ctrl-C' "$work/demo.out" && break; sleep 0.2; done
grep -q 'Ctrl-C' "$work/demo.out" || { cat "$work/demo.out"; exit 1; }
echo "network of $nodes nodes with $names names published in $(echo "$(date +%s.%N) - $start" | bc) s"
grep '^published' "$work/demo.out"

echo
echo "== dig: host0 cold (first query), then cached"
dig @127.0.0.1 -p "$port" host0.bench.kad A +tries=1 | grep -E 'status|Query time'
dig @127.0.0.1 -p "$port" host0.bench.kad A +tries=1 | grep -E 'Query time'

summary() { grep -E 'Queries per second|Average Latency|Latency StdDev|Queries completed|Queries lost'; }
# With one query outstanding dnsperf idles between a slow answer and its next
# query, so its queries-per-second there says nothing: latency only.
latency() { grep -E 'Average Latency|Latency StdDev|Queries completed|Queries lost'; }

echo
echo "== cold: each name once, one query outstanding (DHT lookup, verification, cache fill)"
dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -n 1 -c 1 -q 1 | latency
echo
echo "== cached: the same names, one query outstanding"
dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -n 1 -c 1 -q 1 | latency
echo
echo "== cached: throughput, 10 s, 4 clients, 64 queries outstanding"
dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l 10 -c 4 -q 64 | summary
