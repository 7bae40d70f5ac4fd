#!/usr/bin/env bash
# ISC's DNS compliance tester (genreport, from the public repository
# isc-projects/DNS-Compliance-Testing) against the kadns stub and against
# unbound serving the same records as local-data, both on loopback. Prints
# each server's per-test results and the two counts; asserts nothing.
#
#   GENREPORT=/path/to/genreport scripts/bench-genreport.sh [genreport flags…]
#
# Without flags every test group runs (-t -f -c: 99 tests); -e alone is
# genreport's own default (the 11 EDNS tests); add -R for its recursive mode.
#
# genreport is third-party: it is never built from or kept in this tree.
# Build it yourself outside the tree (see its README) and point GENREPORT
# at the binary; /work/ext/genreport/genreport and $PATH are also looked at.
# Needs unbound (Debian package `unbound`), dig, and a release build of kadns.
set -euo pipefail
cd "$(dirname "$0")/.."
genreport=${GENREPORT:-}
if [[ -z $genreport ]]; then
  for candidate in /work/ext/genreport/genreport "$(command -v genreport || true)"; do
    [[ -n $candidate && -x $candidate ]] && { genreport=$candidate; break; }
  done
fi
[[ -n $genreport && -x $genreport ]] || { echo "genreport not found: set GENREPORT=/path/to/genreport" >&2; exit 1; }
command -v unbound >/dev/null || { echo "needs unbound (apt-get install unbound)" >&2; exit 1; }
kadns_port=5397
unbound_port=5396
cargo build --release -q -p kadns
work=$(mktemp -d)
demo=
unbound_pid=
cleanup() {
  [[ -n $demo ]] && kill "$demo" 2>/dev/null && wait "$demo" 2>/dev/null
  [[ -n $unbound_pid ]] && kill "$unbound_pid" 2>/dev/null && wait "$unbound_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# One list of records, absolute names: the zone kadns publishes and
# unbound's local-data.
records=(
  "compliance.kad. 300 IN SOA ns.compliance.kad. hostmaster.compliance.kad. 1 3600 600 86400 60"
  "compliance.kad. 300 IN NS ns.compliance.kad."
  "compliance.kad. 300 IN A 192.0.2.1"
  "compliance.kad. 300 IN AAAA 2001:db8::1"
  "compliance.kad. 300 IN MX 10 mail.compliance.kad."
  "compliance.kad. 300 IN TXT \"v=spf1 mx -all\""
  "ns.compliance.kad. 300 IN A 192.0.2.53"
  "www.compliance.kad. 300 IN A 192.0.2.80"
  "mail.compliance.kad. 300 IN A 192.0.2.25"
)
{
  echo '$ORIGIN compliance.kad.'
  printf '%s\n' "${records[@]}"
} > "$work/compliance.zone"
{
  echo "server:"
  echo "  interface: 127.0.0.1@$unbound_port"
  echo "  port: $unbound_port"
  echo "  do-daemonize: no"
  echo "  use-syslog: no"
  echo "  logfile: \"\""
  echo "  chroot: \"\""
  echo "  username: \"\""
  echo "  directory: \"$work\""
  echo "  pidfile: \"\""
  echo "  access-control: 127.0.0.0/8 allow"
  echo "  module-config: \"iterator\""
  echo "  do-not-query-localhost: yes"
  echo "  local-zone: \"compliance.kad.\" static"
  for r in "${records[@]}"; do echo "  local-data: '$r'"; done
} > "$work/unbound.conf"
unbound -c "$work/unbound.conf" > "$work/unbound.out" 2>&1 &
unbound_pid=$!
target/release/kadns demo --listen "127.0.0.1:$kadns_port" --nodes 3 --zone "$work/compliance.zone" > "$work/demo.out" 2>&1 &
demo=$!
for _ in $(seq 300); do grep -q 'Ctrl-C' "$work/demo.out" && break; sleep 0.2; done
grep -q 'Ctrl-C' "$work/demo.out" || { cat "$work/demo.out"; exit 1; }
for _ in $(seq 50); do dig @127.0.0.1 -p "$unbound_port" compliance.kad SOA +short +tries=1 +time=1 | grep -q hostmaster && break; sleep 0.2; done

run() { echo "compliance.kad ns.compliance.kad 127.0.0.1" | "$genreport" -P "$1" "${@:2}"; }
count() { # "name=ok" words among the results
  tr ' ' '\n' | grep -E '^[A-Za-z0-9@-]+=' | awk -F= '{ total++; if ($2 == "ok") ok++ } END { printf "%d of %d\n", ok, total }'
}
# Every test group (99 tests): TYPE, then FULL (includes EDNS) and COMMON.
[[ $# -gt 0 ]] || set -- -t -f -c
extra=("$@")
kadns_out=$(run "$kadns_port" "${extra[@]}")
unbound_out=$(run "$unbound_port" "${extra[@]}")
echo "== kadns stub (127.0.0.1:$kadns_port)"
echo "$kadns_out"
echo "== unbound $(unbound -V | head -1 | awk '{print $2}') local-data (127.0.0.1:$unbound_port)"
echo "$unbound_out"
echo
echo "genreport ${extra[*]}: kadns $(echo "$kadns_out" | count), unbound $(echo "$unbound_out" | count)"
echo "== tests where they differ (test: kadns / unbound)"
join <(echo "$kadns_out" | tr ' ' '\n' | grep -E '^[A-Za-z0-9@-]+=' | sed 's/=/ /' | sort) \
     <(echo "$unbound_out" | tr ' ' '\n' | grep -E '^[A-Za-z0-9@-]+=' | sed 's/=/ /' | sort) |
  awk '$2 != $3 { print "  " $1 ": " $2 " / " $3 }'
