#!/usr/bin/env bash
# Cached answers, kadns against unbound, side by side (issue 11). Prints
# figures and ratios; asserts nothing.
#
#   scripts/bench-vs-unbound.sh [NAMES] [ROUNDS] [SECONDS]
#
# Three servers on loopback, all started here (nothing leaves the machine):
# - "upstream": unbound serving fwd.example. as local-data, the forwarded
#   names' origin for both measured servers;
# - "unbound": unbound 1.x, num-threads 1, serving bench.kad. as local-data
#   (NAMES A records, an SOA) and forwarding fwd.example. to the upstream;
# - "kadns": `kadns serve` (release, [dns] workers = 1) whose DHT node joins
#   a `kadns demo` network on which the same NAMES records of bench.kad. are
#   signed and published; its --upstream is the same loopback upstream.
#   A second stub with workers = 2 is measured on both cores.
# Mixes: cached (hostN.bench.kad A), NXDOMAIN (nxN.bench.kad A),
# forwarded-cached (hostN.fwd.example A). Each server pinned to core 0
# (taskset -c 0), dnsperf to core 1, UDP, 10 clients, 100 outstanding,
# ROUNDS alternating rounds of SECONDS each, every round after a warm-up
# pass. Then p99 at a fixed 5,000 qps (dnsperf -Q 5000 -v), per mix.
#
# KADNS_BIN=path measures that binary instead of building this tree's.
# KADNS_BASE=path adds a third stub from another binary (say main's), set
# up like the first and measured in the same rounds, alternating with it:
# its columns and the ratio of the two come after unbound's.
set -euo pipefail
cd "$(dirname "$0")/.."
names=${1:-1000}
rounds=${2:-3}
secs=${3:-10}
base=${BENCH_PORT_BASE:-5410}
up_port=$base
ub_port=$((base + 1))
k1_port=$((base + 2))
k2_port=$((base + 3))
demo_port=$((base + 4))
metrics_port=$((base + 5))
kb_port=$((base + 6))
for tool in dnsperf unbound taskset dig curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
if [ -z "${KADNS_BIN:-}" ]; then cargo build --release -q -p kadns; fi
kadns=$(realpath "${KADNS_BIN:-target/release/kadns}")
base_bin=${KADNS_BASE:+$(realpath "$KADNS_BASE")}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- the data ---------------------------------------------------------------
addr() { echo "10.$(($1 / 65536 % 256)).$(($1 / 256 % 256)).$(($1 % 256))"; }
{
  echo '$ORIGIN bench.kad.'
  echo '$TTL 3600'
  echo '@ IN SOA ns hostmaster ( 1 3600 600 86400 3600 )'
  for ((i = 0; i < names; i++)); do echo "host$i IN A $(addr "$i")"; done
} > "$work/bench.zone"
for ((i = 0; i < names; i++)); do echo "host$i.bench.kad A"; done > "$work/cached.q"
for ((i = 0; i < names; i++)); do echo "nx$i.bench.kad A"; done > "$work/nxdomain.q"
for ((i = 0; i < names; i++)); do echo "host$i.fwd.example A"; done > "$work/forwarded.q"

unbound_conf() { # PORT, then local-data lines on stdin
  cat <<EOF
server:
  interface: 127.0.0.1
  port: $1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
EOF
  cat
}
{
  echo '  local-zone: "fwd.example." static'
  echo '  local-data: "fwd.example. 3600 IN SOA ns.fwd.example. h.fwd.example. 1 3600 600 86400 3600"'
  for ((i = 0; i < names; i++)); do echo "  local-data: \"host$i.fwd.example. 3600 IN A $(addr "$i")\""; done
  echo 'remote-control:'
  echo '  control-enable: no'
} | unbound_conf "$up_port" > "$work/upstream.conf"
{
  echo '  local-zone: "bench.kad." static'
  echo '  local-data: "bench.kad. 3600 IN SOA ns.bench.kad. hostmaster.bench.kad. 1 3600 600 86400 3600"'
  for ((i = 0; i < names; i++)); do echo "  local-data: \"host$i.bench.kad. 3600 IN A $(addr "$i")\""; done
  echo 'forward-zone:'
  echo '  name: "fwd.example."'
  echo "  forward-addr: 127.0.0.1@$up_port"
  echo 'remote-control:'
  echo '  control-enable: no'
} | unbound_conf "$ub_port" > "$work/unbound.conf"

# --- the servers ------------------------------------------------------------
wait_answer() { # PORT NAME: until the server answers NAME with NOERROR
  for _ in $(seq 300); do
    dig @127.0.0.1 -p "$1" "$2" A +tries=1 +time=1 2>/dev/null | grep -q 'status: NOERROR' && return 0
    sleep 0.2
  done
  echo "no answer for $2 on port $1" >&2
  return 1
}
unbound -d -c "$work/upstream.conf" > "$work/upstream.log" 2>&1 &
pids+=($!)
taskset -c 0 unbound -d -c "$work/unbound.conf" > "$work/unbound.log" 2>&1 &
pids+=($!)
unbound_pid=$!
wait_answer "$up_port" host0.fwd.example
wait_answer "$ub_port" host0.bench.kad

"$kadns" demo --listen "127.0.0.1:$demo_port" --nodes 5 --zone "$work/bench.zone" > "$work/demo.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do grep -q 'Ctrl-C' "$work/demo.out" && break; sleep 0.2; done
grep -q 'Ctrl-C' "$work/demo.out" || { cat "$work/demo.out"; exit 1; }
zone_id=$(sed -n 's/^zone bench.kad = //p' "$work/demo.out")
boot=$(sed -n 's/^bootstrap //p' "$work/demo.out")
start_stub() { # PORT WORKERS CPUS [ARGS]: WORKERS UDP sockets and runtime threads
  local port=$1 workers=$2 cpus=$3 bin=${STUB_BIN:-$kadns}
  shift 3
  mkdir -p "$work/stub$port"
  printf '[dns]\nworkers = %s\n' "$workers" > "$work/stub$port.toml"
  TOKIO_WORKER_THREADS=$workers taskset -c "$cpus" "$bin" serve --config "$work/stub$port.toml" --listen "127.0.0.1:$port" "$@" \
    --data-dir "$work/stub$port" --p2p-listen /ip4/127.0.0.1/tcp/0 --bootstrap "$boot" \
    --anchor "bench.kad=$zone_id" --upstream "127.0.0.1:$up_port" > "$work/stub$port.log" 2>&1 &
  pids+=($!)
}
start_stub "$k1_port" 1 0 --metrics "127.0.0.1:$metrics_port"
kadns_pid=$!
start_stub "$k2_port" 2 0,1
kadns2_pid=$!
wait_answer "$k1_port" host0.bench.kad
wait_answer "$k2_port" host0.bench.kad
base_pid=
if [ -n "$base_bin" ]; then
  STUB_BIN=$base_bin start_stub "$kb_port" 1 0
  base_pid=$!
  wait_answer "$kb_port" host0.bench.kad
fi

# --- measuring --------------------------------------------------------------
warm() { # PORT MIX: every name once, so the round measures cached answers
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/$2.q" -n 2 -c 1 -q 20 > /dev/null 2>&1
}
qps_of() { sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p'; }
avg_of() { sed -n 's/^ *Average Latency (s): *\([0-9.]*\).*/\1/p'; }
lost_of() { sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p'; }
done_of() { sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p'; }
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system, all threads
throughput() { # PORT MIX CPUS PID -> "qps avg_ms lost cpu_us_per_query"
  local out before after
  warm "$1" "$2"
  before=$(cpu_ticks "$4")
  out=$(taskset -c "$3" dnsperf -s 127.0.0.1 -p "$1" -d "$work/$2.q" -l "$secs" -c 10 -q 100 2>&1)
  after=$(cpu_ticks "$4")
  echo "$(echo "$out" | qps_of) $(echo "$out" | avg_of | awk '{printf "%.3f", $1 * 1000}') $(echo "$out" | lost_of)" \
    "$(awk -v t=$((after - before)) -v hz="$ticks" -v q="$(echo "$out" | done_of)" 'BEGIN { if (q > 0) printf "%.2f", t / hz * 1e6 / q; else print "n/a" }')"
}
p99() { # PORT MIX -> "p50_ms p99_ms lost" at a fixed 5,000 qps
  warm "$1" "$2"
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/$2.q" -l "$secs" -c 10 -q 100 -Q 5000 -v 2>/dev/null |
    awk '$1 == ">" { print $NF * 1000 } /Queries lost:/ { lost = $3 } END { print "lost", lost + 0 > "/dev/stderr" }' \
      2> "$work/lost" | sort -n > "$work/lat"
  local n
  n=$(wc -l < "$work/lat")
  echo "$(sed -n "$(((n + 1) / 2))p" "$work/lat") $(sed -n "$(((n * 99 + 99) / 100))p" "$work/lat") $(awk '{print $2}' "$work/lost")"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
echo "kadns stub pid $kadns_pid (workers 1, core 0), $kadns2_pid (workers 2, cores 0-1); unbound pid $unbound_pid (core 0)"
if [ -n "${KADNS_BIN:-}" ]; then
  echo "kadns: $kadns"
else
  echo "kadns: $kadns, built from $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' with changes')"
fi
[ -n "$base_pid" ] && echo "base: $base_bin, pid $base_pid (workers 1, core 0)"
echo "$names names, $rounds alternating rounds of $secs s per mix, dnsperf -c 10 -q 100 on core 1"
echo
echo "qps: answered per second; cpu: the server's CPU time (user + system) per answered query, in"
echo "microseconds, which the other engineers' load on the machine disturbs far less than qps."
echo "cpu ratio = unbound's CPU per query / kadns's: the qps ratio on a core of their own."
printf '%-10s %5s %10s %8s %7s %10s %8s %7s %9s %9s\n' mix round kadns_qps k_avg_ms k_cpu unbound_qps u_avg_ms u_cpu qps_ratio cpu_ratio
declare -A kq uq kc uc bq bc
for mix in cached nxdomain forwarded; do
  for ((r = 1; r <= rounds; r++)); do
    read -r k_qps k_avg k_lost k_cpu < <(throughput "$k1_port" "$mix" 1 "$kadns_pid")
    read -r u_qps u_avg u_lost u_cpu < <(throughput "$ub_port" "$mix" 1 "$unbound_pid")
    kq[$mix]+="$k_qps "
    uq[$mix]+="$u_qps "
    kc[$mix]+="$k_cpu "
    uc[$mix]+="$u_cpu "
    printf '%-10s %5s %10.0f %8s %7s %10.0f %8s %7s %9s %9s   lost %s/%s' "$mix" "$r" "$k_qps" "$k_avg" "$k_cpu" \
      "$u_qps" "$u_avg" "$u_cpu" "$(ratio "$k_qps" "$u_qps")" "$(ratio "$u_cpu" "$k_cpu")" "$k_lost" "$u_lost"
    if [ -n "$base_pid" ]; then
      read -r b_qps b_avg b_lost b_cpu < <(throughput "$kb_port" "$mix" 1 "$base_pid")
      bq[$mix]+="$b_qps "
      bc[$mix]+="$b_cpu "
      printf '   base %.0f qps %s us (lost %s): kadns/base qps %s, cpu base/kadns %s' "$b_qps" "$b_cpu" "$b_lost" \
        "$(ratio "$k_qps" "$b_qps")" "$(ratio "$b_cpu" "$k_cpu")"
    fi
    echo
  done
done
echo
echo "medians over $rounds rounds (ratios kadns/unbound):"
for mix in cached nxdomain forwarded; do
  k=$(echo "${kq[$mix]}" | tr ' ' '\n' | grep . | median)
  u=$(echo "${uq[$mix]}" | tr ' ' '\n' | grep . | median)
  kcpu=$(echo "${kc[$mix]}" | tr ' ' '\n' | grep . | median)
  ucpu=$(echo "${uc[$mix]}" | tr ' ' '\n' | grep . | median)
  printf '  %-10s qps kadns %8.0f unbound %8.0f ratio %s | cpu/query kadns %s us unbound %s us ratio %s\n' \
    "$mix" "$k" "$u" "$(ratio "$k" "$u")" "$kcpu" "$ucpu" "$(ratio "$ucpu" "$kcpu")"
  if [ -n "$base_pid" ]; then
    b=$(echo "${bq[$mix]}" | tr ' ' '\n' | grep . | median)
    bcpu=$(echo "${bc[$mix]}" | tr ' ' '\n' | grep . | median)
    printf '  %-10s base qps %8.0f (kadns/base %s) | cpu/query base %s us (base/kadns %s; unbound/base %s)\n' \
      "" "$b" "$(ratio "$k" "$b")" "$bcpu" "$(ratio "$bcpu" "$kcpu")" "$(ratio "$ucpu" "$bcpu")"
  fi
done

echo
echo "latency at a fixed 5,000 qps (p50 / p99 in ms, lost):"
for mix in cached nxdomain forwarded; do
  read -r k50 k99 kl < <(p99 "$k1_port" "$mix")
  read -r u50 u99 ul < <(p99 "$ub_port" "$mix")
  printf '  %-10s kadns %s / %s (lost %s)   unbound %s / %s (lost %s)' "$mix" "$k50" "$k99" "$kl" "$u50" "$u99" "$ul"
  if [ -n "$base_pid" ]; then
    read -r b50 b99 bl < <(p99 "$kb_port" "$mix")
    printf '   base %s / %s (lost %s)' "$b50" "$b99" "$bl"
  fi
  echo
done

echo
echo "kadns on two cores (workers 2, cores 0-1; dnsperf unpinned, so it shares them) vs one core, cached:"
for ((r = 1; r <= rounds; r++)); do
  read -r one _ _ one_cpu < <(throughput "$k1_port" cached 1 "$kadns_pid")
  read -r two _ _ two_cpu < <(throughput "$k2_port" cached 0,1 "$kadns2_pid")
  printf '  round %s: one core %.0f qps (%s us/query), two cores %.0f qps (%s us/query), ratio %s\n' \
    "$r" "$one" "$one_cpu" "$two" "$two_cpu" "$(ratio "$two" "$one")"
done
echo
echo "load after: $(uptime | sed 's/.*load average/load average/')"
echo "kadns stub (workers 1) answer cache and outcomes:"
curl -s "http://127.0.0.1:$metrics_port/metrics" |
  grep -E '^kadns_(answer_cache_(hits|misses|uncacheable|stored|entries|bytes)|stub_(kadns|forwarded)_queries)(_total)? ' |
  sed 's/^/  /'
echo "kadns stub RSS after the runs: $(awk '/VmRSS/ {print $2, $3}' "/proc/$kadns_pid/status")"
