#!/usr/bin/env bash
# Measures the exporter near its limits against honest baselines, on loopback only:
#
#   - CPU (user+sys) and peak RSS of `--once` polls of N and BIG static users pages served by
#     nginx, next to curl fetching the same pages over one keep-alive connection and a
#     hand-written Python exporter (bench/baseline_exporter.py) doing the same walk;
#   - the same for one server process that polls twice (bench/polls.py), so that what a poll
#     remembers for the next (membership) and the comparison are measured, next to curl
#     fetching the pages twice;
#   - the same at BIG users without total_count (the table sized from the last poll), and
#     three polls of which the second misses 1 user in 10 (users remembered as missed);
#   - peak RSS of a --once poll of 20 pages of 30 users with 1 MB ids (hostile input);
#   - /metrics throughput with wrk (32 connections) next to nginx serving the same bytes;
#   - scrape latency (p99) idle and while BIG-user polls run back to back, with scrapes paced
#     at 100 a second on each of 2 connections, as scrapers come periodically (a closed loop
#     at full speed would measure the CPU queue of wrk, nginx and the exporter instead);
#   - idle RSS and the size of the release binary;
#   - one API key shared by 1, 2 and 3 exporters with default pacing against a mock that
#     enforces the live API's 10 requests in any second per key (bench/shared_key_api.py):
#     requests refused, polls failed, and how long one exporter's poll takes.
#
# Prints each run, then medians, ratios and the targets of the performance issue.
# Not a test: numbers depend on the machine and on what else runs on it.
#
# Usage: scripts/bench.sh [--runs N] [--users N] [--big-users N] [--duration S] [--no-build]
#   --runs N        runs of each measurement, medians reported (default 5)
#   --users N       users of the main poll (default 100000)
#   --big-users N   users of the large poll for memory and latency (default 1000000)
#   --duration S    seconds of each wrk run (default 10)
#   --no-build      use target/release/testsigma-exporter as it is
#   --bin PATH      measure this exporter binary instead (implies --no-build)
#   --compare PATH  also poll with this other build, interleaved with the first in every
#                   run, and report the CPU of the two side by side (before/after a change)
#   --share-duration S  seconds each shared-key run lasts (default 60)
#   --share-only    run only the shared-key measurement (needs python3 and curl alone)
#   --membership-only  run only the BIG-user rows of polls in one process without
#                   total_count and with missed users (no shared-key runs either)
# Needs nginx, wrk, curl, python3 with prometheus_client and requests; installs what is
# missing with apt-get and pip when run as root.
set -euo pipefail

RUNS=5
USERS=100000
BIG_USERS=1000000
DURATION=10
BUILD=1
BIN=
CMP=
SHARE_DURATION=60
SHARE_ONLY=0
MEMBERSHIP_ONLY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --big-users) BIG_USERS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN=$(realpath "$2"); BUILD=0; shift 2 ;;
    --compare) CMP=$(realpath "$2"); shift 2 ;;
    --share-duration) SHARE_DURATION=$2; shift 2 ;;
    --share-only) SHARE_ONLY=1; shift ;;
    --membership-only) MEMBERSHIP_ONLY=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/testsigma-exporter}
BENCH=$ROOT/bench
log() { printf '== %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------
need_apt=()
if [[ $SHARE_ONLY == 0 ]]; then
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
    command -v wrk >/dev/null || need_apt+=(wrk)
fi
command -v curl >/dev/null || need_apt+=(curl)
if [[ ${#need_apt[@]} -gt 0 ]]; then
    log "installing ${need_apt[*]}"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# The Python baseline's packages go into a virtualenv: Debian's own python3 refuses pip
# installs into the system (and needs python3-venv for this).
BASELINE_VENV=${BASELINE_VENV:-$HOME/.cache/testsigma-exporter-bench-venv}
if [[ $SHARE_ONLY == 0 && $MEMBERSHIP_ONLY == 0 ]] && ! "$BASELINE_VENV/bin/python" -c 'import prometheus_client, requests' 2>/dev/null; then
    log "installing prometheus_client and requests for the Python baseline into $BASELINE_VENV"
    python3 -m venv "$BASELINE_VENV"
    timeout 600 "$BASELINE_VENV/bin/pip" install -q prometheus_client requests
fi
BASELINE_PY=$BASELINE_VENV/bin/python
if [[ $BUILD == 1 ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --locked -q)
fi

# --- scratch space, servers, cleanup ----------------------------------------------------
WORK=$(mktemp -d /tmp/testsigma-bench.XXXXXX)
chmod 755 "$WORK" # nginx's workers do not run as root
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -f $WORK/nginx.pid ]]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
    sleep 0.2
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

export TESTSIGMA_API_KEY=bench-key
RESULTS=$WORK/results # lines: "name value"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- 0. one key shared by several exporters ----------------------------------------------
# Exporters with the default pacing (--max-request-rate 5, --max-retries 3) poll one key of
# a mock API that answers at most 10 requests in any second per key, as the live API does
# (HTTP 500 "rate limit exceeded" past it, x-tms-api-* headers on every answer). The account
# is 50 pages of 100 users (10 s for one exporter alone at 5 a second); --poll-interval 1s
# keeps polls back to back, so the key is drawn on for the whole run (at the default 60 s
# the exporters would sit idle most of a minute).
SHARE_PORT=$(free_port)
python3 "$BENCH/shared_key_api.py" "$SHARE_PORT" 50 100 10 &
PIDS+=($!)
SHARE=http://127.0.0.1:$SHARE_PORT
until curl -s -o /dev/null "$SHARE/stats"; do sleep 0.1; done
metric() { awk -v m="$2" '$1 == m { print $2 + 0 }' <<<"$1"; }
share_run() { # n: n exporters for SHARE_DURATION seconds -> share.n.* results
    local n=$1 k port text took=0 failed=0 polls=0 pids=() ports=()
    curl -s -X POST -o /dev/null "$SHARE/reset"
    for ((k = 1; k <= n; k++)); do
        port=$(free_port)
        "$BIN" --base-url "$SHARE/api/v1" --poll-interval 1s --web.listen-address "127.0.0.1:$port" \
            --log.level warn 2>"$WORK/share-$n-$k.log" &
        pids+=($!)
        PIDS+=($!)
        ports+=("$port")
    done
    sleep "$SHARE_DURATION"
    for port in "${ports[@]}"; do
        text=$(curl -s --max-time 10 "http://127.0.0.1:$port/metrics")
        failed=$((failed + $(metric "$text" 'testsigma_polls_total{result="failure"}')))
        polls=$((polls + $(metric "$text" 'testsigma_polls_total{result="success"}')))
        took=$(python3 -c "print($took + $(metric "$text" testsigma_poll_duration_seconds))")
    done
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    read -r requests refused < <(curl -s "$SHARE/stats" | python3 -c \
        'import json, sys; s = json.load(sys.stdin); print(s["requests"], s["refused"])')
    took=$(python3 -c "print(round($took / $n, 2))")
    printf 'share.%d.%s %s\n' "$n" requests "$requests" "$n" refused "$refused" "$n" failed "$failed" \
        "$n" polls "$polls" "$n" poll_s "$took" >>"$RESULTS"
    printf '  %d exporter(s), %s s: %s requests, %s refused, %s polls done, %s failed, last poll %s s\n' \
        "$n" "$SHARE_DURATION" "$requests" "$refused" "$polls" "$failed" "$took" >&2
}
if [[ $MEMBERSHIP_ONLY == 0 ]]; then
log "one key shared by 1, 2 and 3 exporters, $SHARE_DURATION s each, against a 10/s limit"
for n in 1 2 3; do share_run "$n"; done
python3 - "$RESULTS" "$SHARE_DURATION" <<'EOF'
import sys
m = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    m[name] = float(value)
print(f"\nOne key shared, {sys.argv[2]} s a run, 10 requests/s enforced per key\n")
print("| exporters | requests | refused | share refused | polls done | polls failed | poll time |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for n in (1, 2, 3):
    r, x = m[f"share.{n}.requests"], m[f"share.{n}.refused"]
    print(f"| {n} | {r:.0f} | {x:.0f} | {100 * x / max(r, 1):.2f}% | {m[f'share.{n}.polls']:.0f} "
          f"| {m[f'share.{n}.failed']:.0f} | {m[f'share.{n}.poll_s']:.1f} s |")
EOF
fi
[[ $SHARE_ONLY == 1 ]] && exit 0

log "generating $USERS and $BIG_USERS users as static pages under $WORK"
python3 "$BENCH/gen_pages.py" "$WORK/small" "$USERS" >/dev/null
python3 "$BENCH/gen_pages.py" "$WORK/big" "$BIG_USERS" >/dev/null
# The same users without total_count, and without total_count and 1 user in 10; shift/ serves
# big/ or big_missing/ as the symlink says, changed between polls.
python3 "$BENCH/gen_pages.py" --no-total-count "$WORK/big_nototal" "$BIG_USERS" >/dev/null
python3 "$BENCH/gen_pages.py" --no-total-count --drop-every 10 "$WORK/big_missing" "$BIG_USERS" >/dev/null
ln -sfn big "$WORK/shift"
# Hostile input: 20 pages of 30 users whose ids are 1 MB each (30 MB a page, under the
# exporter's 32 MiB body limit), linked by path like the others.
python3 - "$WORK/long_ids/api/v1/users" <<'PYEOF'
import os, sys
out = sys.argv[1]
os.makedirs(out)
pad = "x" * (1_000_000 - 4)
for p in range(1, 21):
    users = ",".join(f'{{"id":"{p:02d}{i:02d}{pad}","status":"active"}}' for i in range(30))
    nxt = f"/api/v1/users/p{p + 1}.json" if p < 20 else ""
    with open(f"{out}/p{p}.json", "w") as f:
        f.write(f'{{"data":[{users}],"page_info":{{"next":"{nxt}","total_count":600}}}}')
PYEOF
mkdir -p "$WORK/static"
SMALL_PORT=$(free_port)
BIG_PORT=$(free_port)
STATIC_PORT=$(free_port)
LONG_PORT=$(free_port)
NOTOTAL_PORT=$(free_port)
SHIFT_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  default_type application/json;
  server {
    listen 127.0.0.1:$SMALL_PORT;
    root $WORK/small;
    location = /api/v1/users { try_files /api/v1/users/p1.json =404; }
  }
  server {
    listen 127.0.0.1:$BIG_PORT;
    root $WORK/big;
    location = /api/v1/users { try_files /api/v1/users/p1.json =404; }
  }
  server {
    listen 127.0.0.1:$NOTOTAL_PORT;
    root $WORK/big_nototal;
    location = /api/v1/users { try_files /api/v1/users/p1.json =404; }
  }
  server {
    listen 127.0.0.1:$SHIFT_PORT;
    root $WORK/shift;
    location = /api/v1/users { try_files /api/v1/users/p1.json =404; }
  }
  server {
    listen 127.0.0.1:$LONG_PORT;
    root $WORK/long_ids;
    location = /api/v1/users { try_files /api/v1/users/p1.json =404; }
  }
  server {
    listen 127.0.0.1:$STATIC_PORT;
    root $WORK/static;
    default_type "text/plain; version=0.0.4; charset=utf-8";
    open_file_cache max=16;
    gzip_static on;
  }
}
EOF
"$NGINX" -c "$WORK/nginx.conf"
SMALL=http://127.0.0.1:$SMALL_PORT
BIG=http://127.0.0.1:$BIG_PORT
LONG=http://127.0.0.1:$LONG_PORT
NOTOTAL=http://127.0.0.1:$NOTOTAL_PORT
SHIFT=http://127.0.0.1:$SHIFT_PORT

curl_config() { # base users -> a curl config fetching every page in order
    local pages=$((($2 + 99) / 100))
    printf 'url = "%s/api/v1/users?page_size=100"\noutput = "/dev/null"\n' "$1"
    for ((p = 2; p <= pages; p++)); do
        printf 'url = "%s/api/v1/users/p%d.json"\noutput = "/dev/null"\n' "$1" "$p"
    done
}
curl_config "$SMALL" "$USERS" >"$WORK/curl-small.cfg"
curl_config "$BIG" "$BIG_USERS" >"$WORK/curl-big.cfg"
cat "$WORK/curl-small.cfg" "$WORK/curl-small.cfg" >"$WORK/curl-small-twice.cfg"
cat "$WORK/curl-big.cfg" "$WORK/curl-big.cfg" >"$WORK/curl-big-twice.cfg"


RUNNER=$BENCH/rusage.py
measure() { # name cmd... : runs cmd under $RUNNER, records name.cpu (user+sys, s) and name.rss (KiB)
    local name=$1 out
    shift
    # shellcheck disable=SC2086 # RUNNER may be a script and its first arguments
    out=$(python3 $RUNNER "$@" 2>&1 >"$WORK/stdout") || {
        echo "bench.sh: $name failed: $out" >&2
        exit 1
    }
    out=$(tail -1 <<<"$out")
    read -r user sys rss wall <<<"$out"
    echo "$name.cpu $(python3 -c "print(round($user + $sys, 4))")" >>"$RESULTS"
    echo "$name.rss $rss" >>"$RESULTS"
    printf '  %-16s cpu %6.3f s  (user %s sys %s)  peak rss %6.1f MiB  wall %s s\n' \
        "$name" "$(python3 -c "print($user + $sys)")" "$user" "$sys" "$(python3 -c "print($rss / 1024)")" "$wall" >&2
}

check_users() { # expected: the exposition just printed counts every user
    local got
    got=$(awk '$1 == "testsigma_users" { print $2 + 0 }' "$WORK/stdout")
    [[ $got == "$1" ]] || { echo "bench.sh: expected $1 users, got '$got'" >&2; exit 1; }
}


# --- 1c. the remembered state at BIG users: without total_count, and with missed users ------
several_polls() { # name exporter base polls: a server that polls n times 10 s apart
    local port
    port=$(free_port)
    RUNNER="$BENCH/polls.py $4 $port" measure "$1" "$2" --base-url "$3/api/v1" \
        --max-request-rate 0 --poll-interval 10s --web.listen-address "127.0.0.1:$port" \
        --log.level info
}
# Poll 1 sees every user, poll 2 misses 1 in 10 (remembered as missed), poll 3 sees them all
# again: its peak holds the remembered table, the missed users and the new table.
export POLLS_WORK=$WORK
# shellcheck disable=SC2016 # expanded by polls.py's shell, with POLL set
SWAP='if [ "$POLL" = 1 ]; then ln -sfn big_missing "$POLLS_WORK/shift"; else ln -sfn big "$POLLS_WORK/shift"; fi'
membership_rows() {
    log "polls in one process of $BIG_USERS users without total_count, and missing 1 in 10; $RUNS runs"
    for ((i = 1; i <= RUNS; i++)); do
        several_polls exporter_big_nototal "$BIN" "$NOTOTAL" 2
        check_users "$BIG_USERS"
        ln -sfn big "$WORK/shift"
        POLLS_BETWEEN=$SWAP several_polls exporter_big_missed "$BIN" "$SHIFT" 3
        check_users "$BIG_USERS"
        if [[ -n $CMP ]]; then
            several_polls compared_big_nototal "$CMP" "$NOTOTAL" 2
            check_users "$BIG_USERS"
            ln -sfn big "$WORK/shift"
            POLLS_BETWEEN=$SWAP several_polls compared_big_missed "$CMP" "$SHIFT" 3
            check_users "$BIG_USERS"
        fi
    done
}
membership_summary() {
    python3 - "$RESULTS" "$BIG_USERS" <<'EOF'
import statistics, sys
from collections import defaultdict
values = defaultdict(list)
for line in open(sys.argv[1]):
    name, value = line.split()
    values[name].append(float(value))
m = {k: statistics.median(v) for k, v in values.items()}
big = sys.argv[2]
print("\n| measure | exporter | compared | target | met |")
print("| --- | --- | --- | --- | --- |")
for key, what in (("big_nototal", f"peak RSS of two polls in one process, {big} users, no total_count"),
                  ("big_missed", f"peak RSS of three polls, {big} users, the second missing 1 in 10")):
    rss = m[f"exporter_{key}.rss"] / 1024
    other = m.get(f"compared_{key}.rss")
    other = f"{other / 1024:.1f} MiB" if other else ""
    print(f"| {what} | {rss:.1f} MiB | {other} | <= 48 MiB | {'yes' if rss <= 48 else 'NO'} |")
EOF
}
if [[ $MEMBERSHIP_ONLY == 1 ]]; then
    membership_rows
    membership_summary
    exit 0
fi

# --- 1. poll CPU and memory --------------------------------------------------------------
log "poll of $USERS users: curl, exporter, Python baseline; $RUNS runs each, interleaved"
measure warmup curl -sf --config "$WORK/curl-small.cfg"
for ((i = 1; i <= RUNS; i++)); do
    measure curl curl -sf --config "$WORK/curl-small.cfg"
    measure exporter "$BIN" --once --base-url "$SMALL/api/v1" --max-request-rate 0 --log.level warn
    check_users "$USERS"
    if [[ -n $CMP ]]; then
        measure compared "$CMP" --once --base-url "$SMALL/api/v1" --max-request-rate 0 --log.level warn
        check_users "$USERS"
    fi
    measure python "$BASELINE_PY" "$BENCH/baseline_exporter.py" "$SMALL/api/v1" --once
    check_users "$USERS"
done
log "poll of $BIG_USERS users: curl, exporter; $RUNS runs each"
for ((i = 1; i <= RUNS; i++)); do
    measure curl_big curl -sf --config "$WORK/curl-big.cfg"
    measure exporter_big "$BIN" --once --base-url "$BIG/api/v1" --max-request-rate 0 --log.level warn
    check_users "$BIG_USERS"
    if [[ -n $CMP ]]; then
        measure compared_big "$CMP" --once --base-url "$BIG/api/v1" --max-request-rate 0 --log.level warn
        check_users "$BIG_USERS"
    fi
done

# --- 1b. two polls in one process, hostile ids ---------------------------------------------
two_polls() { # name exporter base interval: a server that polls twice, measured by polls.py
    local port
    port=$(free_port)
    RUNNER="$BENCH/polls.py 2 $port" measure "$1" "$2" --base-url "$3/api/v1" \
        --max-request-rate 0 --poll-interval "$4" --web.listen-address "127.0.0.1:$port" \
        --log.level info
}
log "two polls in one process, $USERS and $BIG_USERS users: curl twice, exporter; $RUNS runs each"
for ((i = 1; i <= RUNS; i++)); do
    measure curl_twice curl -sf --config "$WORK/curl-small-twice.cfg"
    two_polls exporter_twice "$BIN" "$SMALL" 1s
    check_users "$USERS"
    if [[ -n $CMP ]]; then
        two_polls compared_twice "$CMP" "$SMALL" 1s
        check_users "$USERS"
    fi
    measure curl_big_twice curl -sf --config "$WORK/curl-big-twice.cfg"
    two_polls exporter_big_twice "$BIN" "$BIG" 10s
    check_users "$BIG_USERS"
    if [[ -n $CMP ]]; then
        two_polls compared_big_twice "$CMP" "$BIG" 10s
        check_users "$BIG_USERS"
    fi
done
membership_rows
log "hostile ids: 20 pages of 30 users with 1 MB ids; $RUNS runs"
for ((i = 1; i <= RUNS; i++)); do
    measure long_ids "$BIN" --once --base-url "$LONG/api/v1" --max-request-rate 0 --log.level warn
    check_users 600
    if [[ -n $CMP ]]; then
        measure compared_long_ids "$CMP" --once --base-url "$LONG/api/v1" --max-request-rate 0 --log.level warn
        check_users 600
    fi
done

# --- 2. serving: throughput, latency, idle RSS --------------------------------------------
start_exporter() { # name base interval -> port in $PORT, pid appended to PIDS
    PORT=$(free_port)
    "$BIN" --base-url "$2/api/v1" --max-request-rate 0 --poll-interval "$3" \
        --web.listen-address "127.0.0.1:$PORT" --log.level warn 2>"$WORK/$1.log" &
    PIDS+=($!)
    local deadline=$((SECONDS + 300))
    until [[ $(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz") == 200 ]]; do
        ((SECONDS < deadline)) || { echo "bench.sh: $1 never became ready" >&2; exit 1; }
        sleep 0.1
    done
}

wrk_rps() { wrk -t2 -c32 -d"${DURATION}s" "$@" | awk '/^Requests\/sec/ { print $2 }'; }
echo 'function delay() return 10 end' >"$WORK/paced.lua"
wrk_p99() { # url -> p99 in ms of scrapes paced 10 ms apart on each of 2 connections
    wrk -t1 -c2 -d"${DURATION}s" -s "$WORK/paced.lua" --latency "$1" | awk '
        / 99%/ { v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
                 if (u == "us") v /= 1000; else if (u == "s") v *= 1000; print v }'
}

log "serving: exporter with $USERS users polled, idle (poll interval 1h)"
start_exporter idle "$SMALL" 1h
IDLE_PID=${PIDS[-1]}
IDLE_URL=http://127.0.0.1:$PORT/metrics
curl -s --max-time 10 "$IDLE_URL" >"$WORK/static/metrics"
gzip -k "$WORK/static/metrics"
for _ in 1 2 3; do curl -s --max-time 10 -o /dev/null "$IDLE_URL"; done
echo "idle.rss $(awk '/^VmRSS/ { print $2 }' "/proc/$IDLE_PID/status")" >>"$RESULTS"
printf '  exposition %d bytes, idle exporter rss %s KiB\n' "$(wc -c <"$WORK/static/metrics")" \
    "$(awk '/^VmRSS/ { print $2 }' "/proc/$IDLE_PID/status")" >&2
for ((i = 1; i <= RUNS; i++)); do
    r=$(wrk_rps "$IDLE_URL")
    echo "rps.exporter $r" >>"$RESULTS"
    n=$(wrk_rps "http://127.0.0.1:$STATIC_PORT/metrics")
    echo "rps.nginx $n" >>"$RESULTS"
    printf '  /metrics req/s: exporter %s, nginx static %s\n' "$r" "$n" >&2
done
GZ=(-H 'Accept-Encoding: gzip')
for ((i = 1; i <= RUNS; i++)); do
    r=$(wrk_rps "${GZ[@]}" "$IDLE_URL")
    echo "rps.exporter_gzip $r" >>"$RESULTS"
    n=$(wrk_rps "${GZ[@]}" "http://127.0.0.1:$STATIC_PORT/metrics")
    echo "rps.nginx_gzip $n" >>"$RESULTS"
    printf '  /metrics gzip req/s: exporter %s, nginx gzip_static %s\n' "$r" "$n" >&2
done

log "scrape latency: idle, then while $BIG_USERS-user polls run back to back"
for ((i = 1; i <= RUNS; i++)); do
    v=$(wrk_p99 "$IDLE_URL")
    echo "p99.idle $v" >>"$RESULTS"
    printf '  idle p99 %s ms\n' "$v" >&2
done
kill "$IDLE_PID"
start_exporter busy "$BIG" 1s
BUSY_URL=http://127.0.0.1:$PORT/metrics
for ((i = 1; i <= RUNS; i++)); do
    v=$(wrk_p99 "$BUSY_URL")
    echo "p99.busy $v" >>"$RESULTS"
    polls=$(curl -s --max-time 10 "$BUSY_URL" | awk '$1 ~ /^testsigma_polls_total/ { n += $2 } END { print n }')
    printf '  during polls p99 %s ms (%s polls so far)\n' "$v" "$polls" >&2
done
echo "busy.rss $(awk '/^VmHWM/ { print $2 }' "/proc/${PIDS[-1]}/status")" >>"$RESULTS"
echo "binary.size $(stat -c %s "$BIN")" >>"$RESULTS"

# --- 3. summary ---------------------------------------------------------------------------
python3 - "$RESULTS" "$USERS" "$BIG_USERS" "$RUNS" <<'EOF'
import statistics, sys
from collections import defaultdict
values = defaultdict(list)
for line in open(sys.argv[1]):
    name, value = line.split()
    values[name].append(float(value))
users, big, runs = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
m = {k: statistics.median(v) for k, v in values.items()}
MiB = 1024
rows = [
    (f"CPU of a --once poll, {users} users", f"{m['exporter.cpu']:.3f} s",
     f"curl {m['curl.cpu']:.3f} s", m['exporter.cpu'] / m['curl.cpu'], "<= 1.5x curl",
     m['exporter.cpu'] / m['curl.cpu'] <= 1.5),
    (f"CPU of a --once poll, {big} users", f"{m['exporter_big.cpu']:.3f} s",
     f"curl {m['curl_big.cpu']:.3f} s", m['exporter_big.cpu'] / m['curl_big.cpu'], "(1.5x curl)",
     None),
    (f"CPU vs Python baseline, {users} users", f"{m['exporter.cpu']:.3f} s",
     f"python {m['python.cpu']:.3f} s", m['python.cpu'] / m['exporter.cpu'], ">= 10x less",
     m['python.cpu'] / m['exporter.cpu'] >= 10),
    (f"peak RSS of the poll, {users} users", f"{m['exporter.rss'] / MiB:.1f} MiB",
     f"python {m['python.rss'] / MiB:.1f} MiB", None, "<= 16 MiB", m['exporter.rss'] <= 16 * MiB),
    (f"peak RSS of the poll, {big} users", f"{m['exporter_big.rss'] / MiB:.1f} MiB", "", None,
     "<= 48 MiB", m['exporter_big.rss'] <= 48 * MiB),
    (f"CPU of two polls in one process, {users} users", f"{m['exporter_twice.cpu']:.3f} s",
     f"curl twice {m['curl_twice.cpu']:.3f} s", m['exporter_twice.cpu'] / m['curl_twice.cpu'],
     "<= 1.5x curl", m['exporter_twice.cpu'] / m['curl_twice.cpu'] <= 1.5),
    (f"CPU of two polls in one process, {big} users", f"{m['exporter_big_twice.cpu']:.3f} s",
     f"curl twice {m['curl_big_twice.cpu']:.3f} s",
     m['exporter_big_twice.cpu'] / m['curl_big_twice.cpu'], "(1.5x curl)", None),
    (f"peak RSS of two polls in one process, {users} users",
     f"{m['exporter_twice.rss'] / MiB:.1f} MiB", "", None, "<= 16 MiB",
     m['exporter_twice.rss'] <= 16 * MiB),
    (f"peak RSS of two polls in one process, {big} users",
     f"{m['exporter_big_twice.rss'] / MiB:.1f} MiB", "", None, "<= 48 MiB",
     m['exporter_big_twice.rss'] <= 48 * MiB),
    ("peak RSS of a poll, 600 users with 1 MB ids", f"{m['long_ids.rss'] / MiB:.1f} MiB", "",
     None, "<= 96 MiB", m['long_ids.rss'] <= 96 * MiB),
    ("/metrics req/s, wrk -c32", f"{m['rps.exporter']:.0f}", f"nginx {m['rps.nginx']:.0f}",
     m['rps.exporter'] / m['rps.nginx'], ">= 0.7x nginx", m['rps.exporter'] / m['rps.nginx'] >= 0.7),
    ("/metrics req/s gzipped, wrk -c32", f"{m['rps.exporter_gzip']:.0f}",
     f"nginx {m['rps.nginx_gzip']:.0f}", m['rps.exporter_gzip'] / m['rps.nginx_gzip'], "(0.7x nginx)",
     None),
    ("scrape p99 during large polls", f"{m['p99.busy']:.3f} ms", f"idle {m['p99.idle']:.3f} ms",
     m['p99.busy'] / m['p99.idle'], "<= 2x idle", m['p99.busy'] / m['p99.idle'] <= 2),
    ("idle RSS", f"{m['idle.rss'] / MiB:.1f} MiB", "", None, "<= 10 MiB", m['idle.rss'] <= 10 * MiB),
    ("release binary size", f"{m['binary.size'] / 2**20:.2f} MiB", "", None, "<= 10 MiB",
     m['binary.size'] <= 10 * 2**20),
]
if "compared.cpu" in m:
    for key, n in (("", users), ("_big", big)):
        ours, other = m[f"exporter{key}.cpu"], m[f"compared{key}.cpu"]
        rows.append((f"CPU of a --once poll, {n} users, against --compare", f"{ours:.3f} s",
                     f"compared {other:.3f} s", ours / other, "", None))
    for key, n in (("", users), ("_big", big)):
        ours, other = m[f"exporter{key}_twice.cpu"], m[f"compared{key}_twice.cpu"]
        rows.append((f"CPU of two polls in one process, {n} users, against --compare",
                     f"{ours:.3f} s", f"compared {other:.3f} s", ours / other, "", None))
        ours, other = m[f"exporter{key}_twice.rss"], m[f"compared{key}_twice.rss"]
        rows.append((f"peak RSS of two polls in one process, {n} users, against --compare",
                     f"{ours / MiB:.1f} MiB", f"compared {other / MiB:.1f} MiB", ours / other, "",
                     None))
    ours, other = m["long_ids.rss"], m["compared_long_ids.rss"]
    rows.append(("peak RSS of a poll, 600 users with 1 MB ids, against --compare",
                 f"{ours / MiB:.1f} MiB", f"compared {other / MiB:.1f} MiB", ours / other, "",
                 None))
print(f"\nMedians of {runs} runs\n")
print("| measure | exporter | reference | ratio | target | met |")
print("| --- | --- | --- | --- | --- | --- |")
for name, ours, ref, ratio, target, ok in rows:
    r = f"{ratio:.2f}x" if ratio is not None else ""
    met = "" if ok is None else ("yes" if ok else "NO")
    print(f"| {name} | {ours} | {ref} | {r} | {target} | {met} |")
print(f"\n(peak RSS while serving during large polls: {m['busy.rss'] / MiB:.1f} MiB)")
EOF
membership_summary
