#!/usr/bin/env bash
# Memory of `kadns serve` (issue 11 targets: idle <= 30 MB, 100,000 stored
# records <= 150 MB). Prints VmRSS; asserts nothing.
#
#   scripts/bench-rss.sh [NAMES]
#
# One `kadns serve` node on loopback (its --upstream a loopback port nobody
# answers: no name here is forwarded). RSS is read idle, then once NAMES
# one-record names of a fresh zone are published into it (the node stores
# them all: it is the whole network), then once every name has been asked
# through its stub once (the resolver's and the answer cache filled).
# KADNS_BIN=path measures that binary instead of building this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
names=${1:-100000}
port=${BENCH_PORT:-5420}
for tool in dnsperf dig; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
if [ -z "${KADNS_BIN:-}" ]; then cargo build --release -q -p kadns; fi
kadns=${KADNS_BIN:-target/release/kadns}
work=$(mktemp -d)
serve=
trap '[ -n "$serve" ] && kill "$serve" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

rss() { awk '/VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/$serve/status"; }
zone_id=$("$kadns" key generate --out "$work/zone.key")
{
  echo '$ORIGIN rss.kad.'
  echo '$TTL 3600'
  echo '@ IN SOA ns hostmaster ( 1 3600 600 86400 60 )'
  for ((i = 0; i < names; i++)); do
    echo "host$i IN A 10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"
  done
} > "$work/rss.zone"
for ((i = 0; i < names; i++)); do echo "host$i.rss.kad A"; done > "$work/queries"

"$kadns" serve --listen "127.0.0.1:$port" --data-dir "$work/node" --p2p-listen /ip4/127.0.0.1/tcp/0 \
  --upstream "127.0.0.1:$((port + 1))" --anchor "rss.kad=$zone_id" > "$work/serve.out" 2> "$work/serve.err" &
serve=$!
for _ in $(seq 300); do grep -q '^dns udp' "$work/serve.out" && break; sleep 0.2; done
boot=$(sed -n 's/^p2p //p' "$work/serve.out" | head -1)
[ -n "$boot" ] || { cat "$work/serve.out" "$work/serve.err"; exit 1; }
sleep 5
echo "idle serve: $(rss)"

start=$(date +%s)
"$kadns" zone publish --key "$work/zone.key" --bootstrap "$boot" --min-replicas 1 "$work/rss.zone" \
  > "$work/publish.out" 2>&1 || { tail -5 "$work/publish.out"; exit 1; }
echo "published $names names in $(($(date +%s) - start)) s"
sleep 5
echo "holding $names stored records: $(rss)"

dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -n 1 -c 4 -q 32 |
  grep -E 'Queries (completed|lost)' | sed 's/^ */  /'
echo "after answering each name once: $(rss)"
