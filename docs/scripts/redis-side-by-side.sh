#!/usr/bin/env bash
# Durable writes, side by side in one run: Redis (appendonly, appendfsync always / everysec) under
# redis-benchmark, and kvstore at SYNC / INTERVAL under its load tool, over HTTP (the standalone
# server) and embedded. Same machine, same disk, 8 clients, 100-byte values, 100,000 keys, runs
# interleaved, with the HTTP server in memory (--in-memory) as the HTTP path's own baseline. Used for
# docs/BENCHMARKS.md §4; nothing here runs in `./mvnw verify`.
#
#   ./mvnw -B -q package -DskipTests && docs/scripts/redis-side-by-side.sh [runs] [seconds]
#
# BASELINE_JAR=<an older kvstore-server.jar> adds, before each HTTP run, the same run against that
# jar's server, driven by this load tool's java.net.http client (--http-client jdk), as the runs up to
# 2026-12-03 were (an A/B of the HTTP path in one run; the older tool itself would preload 100,000
# keys first, its --no-preload being read backwards). WARMUP (default 5s) is each kvstore
# run's unmeasured warm-up: --no-preload leaves the server's JIT cold, and 3 s did not warm it on
# 2 shared cores. Each HTTP run also prints the server's fsyncs during the run (puts per sync).
#
# Installs Debian's redis-server/redis-tools when missing (needs root). Starts and stops only its
# own processes, by PID, on loopback ports 6390 and 18090/17990/17991; data under target/side-by-side.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-2}
SECONDS_PER_RUN=${2:-10}
JAR=kvstore-examples/target/kvstore-server.jar
WORK=$PWD/target/side-by-side
CLIENTS=8
KEYS=100000
WARMUP=${WARMUP:-5s}
BASELINE_JAR=${BASELINE_JAR:-}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
[ -f "$JAR" ] || { echo "build first: ./mvnw -B -q package -DskipTests" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { # host port, at most 60 s
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2; return 1
}

redis_run() { # fsync-policy run
  local dir="$WORK/redis-$1-$2"; mkdir -p "$dir"
  redis-server --port 6390 --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync "$1" \
      --save "" --daemonize no --logfile "$dir/redis.log" &
  local pid=$!; PIDS+=("$pid"); wait_port 6390
  # -r: random keys out of $KEYS; -d: value bytes; -P 1: one request per round trip, like a client.
  # redis-benchmark has no duration: requests for about the same run time as kvstore's runs.
  local per_second=30000
  [ "$1" = always ] && per_second=4000
  local n=$((SECONDS_PER_RUN * per_second))
  local line
  line=$(redis-benchmark -h 127.0.0.1 -p 6390 -t set -n "$n" -c "$CLIENTS" -d 100 -r "$KEYS" \
      --csv | grep '"SET"')
  echo "redis appendfsync=$1 run=$2 requests=$n (rps,avg,min,p50,p95,p99,max ms): $line"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

syncs() { # the server's fsyncs so far
  curl -s http://127.0.0.1:18090/metrics | awk '/^kvstore_storage_syncs_total/{print $2}'
}

kvstore_http_run() { # durability(sync|interval|memory) run [jar label]
  local jar=${3:-$JAR} label=${4:-} dir="$WORK/kv-http-$1-$2${4:+-$4}" storage client=()
  [ -n "$label" ] && client=(--http-client jdk)
  if [ "$1" = memory ]; then storage=(--in-memory); else storage=(--data-dir "$dir" --durability "$1"); fi
  java -Xmx2g -jar "$jar" --node-id side --http-port 18090 --cluster-port 17990 --data-port 17991 \
      "${storage[@]}" >"$dir.log" 2>&1 &
  local pid=$!; PIDS+=("$pid"); wait_port 18090
  echo "kvstore http${label:+ ($label)} durability=$1 run=$2:"
  local before; before=$(syncs)
  java -cp "$JAR" io.kvstore.examples.load.LoadTool --target http://127.0.0.1:18090 \
      --mix put=100 --keys "$KEYS" --value-size 100 --concurrency "$CLIENTS" "${client[@]}" \
      --duration "${SECONDS_PER_RUN}s" --warmup "$WARMUP" --no-preload | sed 's/^/  /'
  echo "  server fsyncs during warm-up and run: $(awk -v a="$before" -v b="$(syncs)" \
      'BEGIN{printf "%.0f", b-a}')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

kvstore_http_runs() { # durability run: the baseline jar's run first, when given
  [ -n "$BASELINE_JAR" ] && kvstore_http_run "$1" "$2" "$BASELINE_JAR" baseline
  kvstore_http_run "$1" "$2"
}

kvstore_embedded_run() { # durability run
  echo "kvstore embedded durability=$1 run=$2:"
  java -Xmx2g -cp "$JAR" io.kvstore.examples.load.LoadTool --target embedded \
      --data-dir "$WORK/kv-emb-$1-$2" --durability "$1" --mix put=100 --keys "$KEYS" \
      --value-size 100 --concurrency "$CLIENTS" --duration "${SECONDS_PER_RUN}s" --warmup "$WARMUP" \
      --no-preload | sed 's/^/  /'
}

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), disk of $WORK:"
df -h "$WORK" | tail -1
for run in $(seq 1 "$RUNS"); do
  redis_run always "$run"
  kvstore_http_runs sync "$run"
  kvstore_embedded_run sync "$run"
  redis_run everysec "$run"
  kvstore_http_runs interval "$run"
  kvstore_embedded_run interval "$run"
  kvstore_http_runs memory "$run"
done
