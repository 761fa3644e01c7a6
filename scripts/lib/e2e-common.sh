# shellcheck shell=bash
# shellcheck disable=SC2034 # BIN, BUILD_TIMEOUT_S, STOP_RC, STOP_MS are for the sourcing script
# Shared by the end-to-end scripts (sourced, not run): step reporting, a work directory,
# background processes stopped on exit, waiting, HTTP and Prometheus helpers, installing
# missing Debian packages. The sourcing script sets E2E_NAME (e.g. "e2e") first and runs
# with `set -Eeuo pipefail`.

: "${E2E_NAME:?set E2E_NAME before sourcing e2e-common.sh}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release/testsigma-exporter
BUILD_TIMEOUT_S=2700 # a cold locked LTO release build on 2 cores takes a few minutes

STEP=""
PASSED=0 # checks passed, for the closing "N passed, N failed" line
step() { STEP=$*; printf '\n==> %s\n' "$*"; }
ok() { PASSED=$((PASSED + 1)); printf '    ok: %s\n' "$*"; }
die() { printf '\n%s: FAIL%s: %s\n' "$E2E_NAME" "${STEP:+ in \"$STEP\"}" "$*" >&2; exit 1; }
trap 'printf "\n%s: FAIL in \"%s\": command failed (line %s): %s\n" "$E2E_NAME" "$STEP" "$LINENO" "$BASH_COMMAND" >&2' ERR

WORK=$(mktemp -d "${TMPDIR:-/tmp}/testsigma-$E2E_NAME.XXXXXX")
declare -A PIDS=() # name -> pid of each background process started here

cleanup() {
    local rc=$? name pid
    trap - EXIT INT TERM
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    done
    for name in "${!PIDS[@]}"; do
        pid=${PIDS[$name]}
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$WORK"/*.log; do
            [ -s "$f" ] || continue
            printf '\n---- last lines of %s ----\n' "$(basename "$f")" >&2
            tail -n 25 "$f" >&2
        done
        printf '\n%s: FAILED (exit %s)\n' "$E2E_NAME" "$rc" >&2
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        printf '%s: work directory kept: %s\n' "$E2E_NAME" "$WORK" >&2
    else
        rm -rf "$WORK"
    fi
    printf '%s: %s passed, %s failed\n' "$E2E_NAME" "$PASSED" "$((rc != 0))"
    exit "$rc"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

# start NAME CMD...: run CMD in the background, output to $WORK/NAME.log
start() {
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS[$name]=$!
}
# stop NAME: SIGTERM, then wait at most 10 s; sets STOP_RC (exit code) and STOP_MS (time taken)
stop() {
    local name=$1 pid=${PIDS[$1]} t0
    t0=$(date +%s%N)
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        unset "PIDS[$name]"
        die "$name did not stop within 10 s of SIGTERM"
    fi
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    STOP_MS=$((($(date +%s%N) - t0) / 1000000))
    unset "PIDS[$name]"
}
# alive NAME: fails if the background process NAME has exited
alive() { kill -0 "${PIDS[$1]}" 2>/dev/null || die "$1 exited early (see $1.log)"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.5 s until it succeeds
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${secs}s waiting for $what"
        sleep 0.5
    done
}

# http_code CURL-ARGS...: the HTTP status code, 000 when nothing answers
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
# http_is CODE CURL-ARGS...: succeeds if the request answers with status CODE
http_is() { local code=$1; shift; [ "$(http_code "$@")" = "$code" ]; }

# prom_query PROMQL: instant query against the test Prometheus on $PROM_PORT, prints the JSON
prom_query() {
    curl -fsS --max-time 10 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1"
}
# prom_value PROMQL: the value of the first sample of an instant query, or nothing
prom_value() {
    prom_query "$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
if r: print(r[0]["value"][1])'
}
# prom_true PROMQL: succeeds if the query returns at least one sample
prom_true() { [ -n "$(prom_value "$1")" ]; }
# prom_is VALUE PROMQL: succeeds if the query's first sample is VALUE
prom_is() { [ "$(prom_value "$2")" = "$1" ]; }

# apt_install_missing COMMAND:PACKAGE...: installs the packages whose command is missing
apt_install_missing() {
    local need=() tool
    for tool in "$@"; do
        command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
    done
    # Debian's own python3 makes virtualenvs only with python3-venv.
    if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        need+=(python3 python3-venv)
    fi
    [ "${#need[@]}" -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root, or install them first"
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "    apt-get install ${need[*]}"
    # Another install may hold dpkg's lock for a while (a machine's own updates): wait for it.
    timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        "${need[@]}" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; die "apt-get install failed"; }
}
