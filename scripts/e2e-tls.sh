#!/usr/bin/env bash
# End-to-end check of --web.config.file with real tools: openssl makes a throw-away CA and a
# server certificate, htpasswd a bcrypt hash; the release binary runs in --demo mode over TLS
# with basic auth; curl checks what a client sees (HTTP/1.1 and HTTP/2); and a real Prometheus scrapes the exporter
# with scheme: https, tls_config and basic_auth, and must see the target up (and a job with the
# wrong password down, with a 401). Then hostile clients (scripts/lib/hostile.py): 520
# connections guessing passwords, over HTTP/1.1 and then over HTTP/2, while a verified
# scraper must answer within 2 s, and a
# client that never reads its answers, which must lose its connection within 60 s.
#
# Usage: scripts/e2e-tls.sh        (as root on Debian, or with the tools already installed)
#
# It installs what is missing with apt-get: prometheus (prometheus, promtool), openssl, curl,
# apache2-utils (htpasswd). It listens on loopback only, on free ports, stops everything it
# started on exit, and bounds every step in time.
#
# Environment:
#   CARGO_TARGET_DIR   where the release binary is built (default: <repo>/target)
#   E2E_KEEP=1         keep the work directory (certificates, logs, Prometheus data)

set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

JOB=testsigma-exporter-tls
USER_NAME=prometheus

E2E_NAME=e2e-tls
# shellcheck source=scripts/lib/e2e-common.sh
source "$ROOT/scripts/lib/e2e-common.sh"

step "0. Tools"
apt_install_missing prometheus:prometheus promtool:prometheus openssl:openssl curl:curl htpasswd:apache2-utils
ok "$(prometheus --version 2>&1 | head -n 1); $(openssl version)"

step "1. Release binary, without OpenSSL"
timeout "$BUILD_TIMEOUT_S" cargo build --release --locked -q || die "cargo build --release failed"
if ldd "$BIN" | grep -Ei 'libssl|libcrypto'; then
    die "the release binary links OpenSSL; TLS must come from rustls alone"
fi
ok "$BIN links no libssl or libcrypto"

step "2. Throw-away CA, server certificate and bcrypt hash"
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=testsigma-exporter e2e CA" -keyout ca.key -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    >openssl.log 2>&1 || die "openssl could not make the CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr >>openssl.log 2>&1 || die "openssl could not make the CSR"
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
    "basicConstraints=CA:FALSE" >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
    -extfile server.ext -out server.crt >>openssl.log 2>&1 || die "openssl could not sign the server certificate"
PASSWORD=$(openssl rand -hex 16)
printf '%s' "$PASSWORD" >password
printf '%s' "not-the-password" >wrong-password
HASH=$(htpasswd -nbBC 10 "" "$PASSWORD" | tr -d ':\n')
cat >web.yml <<EOF
# The exporter-toolkit web configuration, as node_exporter reads it.
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS12
basic_auth_users:
  $USER_NAME: '$HASH'
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
EOF
ok "CA, server certificate for localhost and 127.0.0.1, web.yml with user $USER_NAME"

step "3. The exporter over TLS with basic auth"
EXP_PORT=$(free_port)
EXP=127.0.0.1:$EXP_PORT
"$BIN" --demo --poll-interval 2s --web.listen-address "$EXP" --web.config.file "$WORK/web.yml" \
    >exporter.log 2>&1 &
PIDS[exporter]=$!
wait_for 20 "the exporter's /healthz over TLS" http_is 200 --cacert ca.crt "https://$EXP/healthz"
alive exporter
code=$(http_code "http://$EXP/metrics")
[ "$code" = 400 ] || die "plain HTTP to the TLS port: expected 400, got $code"
ok "plain HTTP is turned away (400)"
code=$(http_code --cacert ca.crt "https://$EXP/metrics")
[ "$code" = 401 ] || die "no credentials: expected 401, got $code"
curl -s --max-time 5 -o /dev/null -D headers.txt --cacert ca.crt "https://$EXP/metrics" || true
grep -qi '^www-authenticate: basic' headers.txt || die "401 without WWW-Authenticate: Basic"
code=$(http_code --cacert ca.crt -u "$USER_NAME:not-the-password" "https://$EXP/metrics")
[ "$code" = 401 ] || die "wrong password: expected 401, got $code"
ok "no or wrong credentials get 401 with WWW-Authenticate: Basic"
curl -fsS --max-time 5 --cacert ca.crt -u "$USER_NAME:$PASSWORD" -D headers.txt \
    "https://$EXP/metrics" -o metrics.txt || die "scrape with the right password failed"
grep -q '^testsigma_exporter_build_info' metrics.txt || die "no exporter metrics in the scrape"
grep -qi '^x-content-type-options: nosniff' headers.txt || die "configured header missing"
code=$(http_code --cacert ca.crt "https://$EXP/readyz")
[ "$code" = 200 ] || [ "$code" = 503 ] || die "/readyz without credentials: expected 200 or 503, got $code"
ok "right password scrapes; configured header sent; /healthz and /readyz open without credentials"
version=$(curl -sS --max-time 5 --http2 --cacert ca.crt -u "$USER_NAME:$PASSWORD" \
    -o /dev/null -w '%{http_version}' "https://$EXP/metrics") || die "HTTP/2 scrape failed"
[ "$version" = 2 ] || die "curl --http2 over TLS: expected HTTP/2, got HTTP/$version"
code=$(http_code --http2 --cacert ca.crt -u "$USER_NAME:$PASSWORD" "https://$EXP/metrics")
[ "$code" = 200 ] || die "HTTP/2 scrape with the right password: expected 200, got $code"
ok "HTTP/2 negotiated over TLS (ALPN h2) and served, as by the toolkit"

step "4. A real Prometheus scrapes it with scheme https, tls_config and basic_auth"
PROM_PORT=$(free_port)
cat >prometheus.yml <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: $JOB
    scheme: https
    tls_config:
      ca_file: $WORK/ca.crt
    basic_auth:
      username: $USER_NAME
      password_file: $WORK/password
    static_configs:
      - targets: ['$EXP']
  - job_name: $JOB-wrong-password
    scheme: https
    tls_config:
      ca_file: $WORK/ca.crt
    basic_auth:
      username: $USER_NAME
      password_file: $WORK/wrong-password
    static_configs:
      - targets: ['$EXP']
EOF
promtool check config prometheus.yml >promtool.log 2>&1 || { cat promtool.log; die "promtool check config failed"; }
prometheus --config.file=prometheus.yml --storage.tsdb.path="$WORK/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >prometheus.log 2>&1 &
PIDS[prometheus]=$!
wait_for 60 "Prometheus to be ready" http_is 200 "http://127.0.0.1:$PROM_PORT/-/ready"
alive prometheus
wait_for 60 "up{job=\"$JOB\"} == 1" prom_is 1 "up{job=\"$JOB\"}"
wait_for 30 "testsigma_up{job=\"$JOB\"} == 1 (the demo poll, scraped over TLS)" \
    prom_is 1 "testsigma_up{job=\"$JOB\"}"
ok "up{job=\"$JOB\"} = 1 and testsigma_up = 1"
wait_for 30 "up{job=\"$JOB-wrong-password\"} == 0" prom_is 0 "up{job=\"$JOB-wrong-password\"}"
error=$(curl -fsS --max-time 10 "http://127.0.0.1:$PROM_PORT/api/v1/targets" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    if t["labels"]["job"].endswith("-wrong-password"):
        print(t["lastError"])')
case "$error" in
*401*) ok "the job with the wrong password is down: $error" ;;
*) die "the job with the wrong password should fail with 401, lastError: $error" ;;
esac
alive exporter

step "5. Hostile clients: a flood of wrong passwords, a client that never reads"
# The production limits of the release binary, with a cost-10 bcrypt hash: 520 keep-alive
# TLS connections guessing passwords (over HTTP/1.1, then over HTTP/2) must not keep a
# scrape with verified credentials waiting 2 s, and a client that sends requests but never reads loses its connection
# within 60 s.
# flood_scrapes MODE CURL_FLAG: the flood (flood or flood-h2) in the background, 10 scrapes
# with verified credentials meanwhile, each on a new connection; fails past 2 s.
flood_scrapes() {
    python3 "$ROOT/scripts/lib/hostile.py" "$1" 127.0.0.1 "$EXP_PORT" ca.crt "$USER_NAME" 16 \
        >"$1.log" 2>&1 &
    PIDS[flood]=$!
    sleep 4
    latencies=()
    for _ in $(seq 10); do
        # A new connection for each scrape, with the credentials verified in step 3.
        out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 "$2" \
            --cacert ca.crt -u "$USER_NAME:$PASSWORD" "https://$EXP/metrics" || true)
        [ "${out%% *}" = 200 ] || die "a scrape during the $1 got ${out:-nothing}"
        latencies+=("${out#* }")
        sleep 0.5
    done
    wait "${PIDS[flood]}" || die "the $1 failed (see $1.log)"
    unset "PIDS[flood]"
    slowest=$(printf '%s\n' "${latencies[@]}" | sort -n | tail -n 1)
    python3 -c "import sys; sys.exit(float(sys.argv[1]) >= 2)" "$slowest" ||
        die "a scrape with verified credentials took ${slowest}s during the $1 (limit 2 s): ${latencies[*]}"
    ok "10 scrapes ($2) during $(cat "$1.log"): slowest ${slowest}s (${latencies[*]})"
}
flood_scrapes flood --http1.1
alive exporter
# The same over HTTP/2, where refused clients get a GOAWAY instead of Connection: close.
flood_scrapes flood-h2 --http2
alive exporter
timeout 120 python3 "$ROOT/scripts/lib/hostile.py" non-reader 127.0.0.1 "$EXP_PORT" ca.crt \
    "$USER_NAME" password 60 \
    >non-reader.log 2>&1 || { cat non-reader.log; die "a client that never reads kept its connection"; }
ok "$(tail -n 1 non-reader.log)"
code=$(http_code --cacert ca.crt -u "$USER_NAME:$PASSWORD" "https://$EXP/metrics")
[ "$code" = 200 ] || die "scrape after the hostile clients: expected 200, got $code"
alive exporter
ok "the exporter still scrapes (200)"

printf '\ne2e-tls: all checks passed\n'
