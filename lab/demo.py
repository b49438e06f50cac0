"""`make demo`: the tutorial's canary on the local lab, judged by Istio's metrics in Prometheus.

Steps: a fresh lab with its data plane and Prometheus → the base release (Bookinfo v1) → a probe
that sees v1 only → steady load through the gateway (`DEMO_RATE` pages/s, default 100) → the neighbourhood of
reviews (the tutorial's first look) → the canary, progressive: 10% → 25% → 50%, each step looked
at until its evidence shows a pass or a fail, `decision: auto` (the neighbourhood is taken again at
50%) → promotion, or an automatic rollback → the neighbourhood after → a probe → a short report,
with the release report's path.

`DEMO_CANARY=faulty` deploys reviews v2 answering 20% of its requests with 503: the first analysis
fails and the role rolls back on its own. `DEMO_CANARY=slow` adds 500 ms: the latency check fails.
`DEMO_CANARY=crashing` deploys a v2 whose server accepts no connections although its pod is Ready:
callers get 503 (Envoy's UF,URX) that only their own proxies report (`reporter="source"`), and the
analysis, which counts what callers saw, rolls it back.
`DEMO_RESILIENCE=1` adds, after the release, Istio's Fault Injection task (reviews aborts for user jason
only, set and removed with canary.istio.resilience) and its Circuit Breaking task (one connection and
one pending request to reviews under concurrent page loads: overflows answered 503 with flag UO).
`DEMO_API=gateway` runs the release on Istio's upstream Gateway API Bookinfo files (bookinfo/gateway-api/):
after the base release the ingress is a Gateway API Gateway with the productpage HTTPRoute, every service is
routed by a Service-parented HTTPRoute to its per-version Service, and the role releases reviews v2 on the
reviews HTTPRoute (canary_release_traffic_api: httproute), creating the Service reviews-v2 itself.
`DEMO_INTERACTIVE=1` runs the old, person-driven flow (prompts for the ratio and the decision).
The lab stays up for browsing until `make lab-down`.

The demo drives the collection only through `ansible-playbook`, as a user would; it imports
nothing from ``plugins/``.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from lab import dataplane, prometheus
from lab.controlplane import DEFAULT_DIR, Lab
from lab.kube import KubeClient

REPO_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO_ROOT / "playbooks"
BOOKINFO_VARS = PLAYBOOKS / "vars" / "bookinfo.yml"  # the release the demo shows
COLLECTIONS = REPO_ROOT / "build" / "collections"
VENV_BIN = Path(sys.executable).parent
LABELS = {"v3": 'data-star-color="red"', "v2": 'data-star-color="black"', "v1": 'class="review"'}
# The probes before and after the canary expect one version only (100%); at 99.99% their interval
# check cannot fail a correct router in practice (docs/testing.md). The canary itself is judged by
# the analysis, and the pages users got are counted by the load generator.
CONFIDENCE = 99.99  # percent, as traffic_probe takes it and states it in its result
OUT = REPO_ROOT / "build" / "demo"
CANARIES = {"healthy": "bookinfo-reviews-v2.yaml", "faulty": "bookinfo-reviews-v2-faulty.yaml",
            "slow": "bookinfo-reviews-v2-slow.yaml", "crashing": "bookinfo-reviews-v2-crashing.yaml"}
STEPS = [10, 25, 50]
GATEWAY_API = REPO_ROOT / "bookinfo" / "gateway-api"
APIS = ("istio", "gateway")
# A pass needs evidence: the canary's error rate and its share of requests slower than 500 ms shown
# below 1% at the look's confidence. With no failure at all that takes about 650-700 canary requests
# per step (the release's alpha spread over its planned looks), so each step is looked at every 15 s
# with the evidence since the step began, and passes at the first look that shows it: at 100 pages/s
# about 75 s at 10%, 30 s at 25%, 15 s at 50%. The looks per step (the step's deadline) follow from
# DEMO_RATE, with six looks to spare: on a loaded machine a few requests of a healthy canary are slow and
# the evidence takes longer (CI saw a healthy canary held at 10% after 7 looks, 288 requests short). Spare
# looks cost nothing once a step passes; each one spreads the release's alpha a little thinner.
# A bad canary fails at its first look (about 150 canary requests at 10% show 20% errors, refused
# connections or +500 ms).
PASS_REQUESTS = 700
DEFAULT_RATE = 100
WINDOW, WINDOW_SECONDS = "10s", 10
ANALYSIS = {"window": WINDOW, "interval": 15, "failure_limit": 1,
            "inconclusive": "hold", "on_error": "rollback",
            # Flagger's documented thresholds; the lab's Python services on two shared cores make p99
            # noisy, so the comparison with the base allows 250 ms more. +500 ms is far outside both.
            # A canary shown below 1% errors (1% slow requests) passes the comparison with a base that
            # shows none: the same 1% as the limits, instead of the module's stricter default, which
            # would need thousands of requests per step.
            "checks": [{"name": "request-success-rate", "min": 99, "negligible_percent": 1},
                       {"name": "request-duration", "max": 500, "tolerance_ms": 250, "negligible_percent": 1}]}


def analysis_settings(rate: float) -> dict[str, Any]:
    """ANALYSIS with enough looks per step for the first step to see PASS_REQUESTS canary requests."""
    per_look = rate * STEPS[0] / 100 * ANALYSIS["interval"]
    return {**ANALYSIS, "looks_per_step": min(100, math.ceil(PASS_REQUESTS / per_look) + 6)}


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def playbook(path: Path, kubeconfig: str, extra: dict[str, Any] | None = None, interactive: bool = False,
             quiet: bool = False) -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="0",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               K8S_AUTH_KUBECONFIG=kubeconfig, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{BOOKINFO_VARS}", str(path)]
    if extra:
        command += ["-e", json.dumps(extra)]
    subprocess.run(command, env=env, check=True, stdin=None if interactive else subprocess.DEVNULL,
                   capture_output=quiet)


def probe(gateway: str, kubeconfig: str, requests: int, expect: dict[str, int]) -> dict[str, Any]:
    """Runs canary.istio.traffic_probe in a one-task playbook and returns its result."""
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as tmp:
        result_file = Path(tmp) / "probe.json"
        book = Path(tmp) / "probe.yml"
        book.write_text(json.dumps([{
            "name": "Measure the split through the gateway", "hosts": "localhost", "gather_facts": False,
            "tasks": [
                {"name": f"Send {requests} requests to /productpage and sort them by stars",
                 "canary.istio.traffic_probe": {"url": f"{gateway}/productpage", "requests": requests,
                                                "concurrency": 16, "labels": LABELS, "expect": expect,
                                                "confidence": CONFIDENCE, "max_errors": 0},
                 "register": "probe"},
                {"name": "Keep the result for the report",
                 "ansible.builtin.copy": {"content": "{{ probe | to_json }}", "dest": str(result_file),
                                          "mode": "0600"}},
                {"name": "Show the shares", "ansible.builtin.debug": {
                    "msg": "{{ probe.shares }} ({{ '%g' | format(probe.confidence) }}% intervals "
                           "{{ probe.intervals }}), "
                           "errors {{ probe.errors }}"}},
            ]}]))
        playbook(book, kubeconfig)
        return json.loads(result_file.read_text())


class Load:
    """Steady page loads through the gateway; each answer sorted by the reviews version that served it.

    A page with stars came from v2 (black) or v3 (red), one without from v1; a page whose reviews
    failed names the failing version (``data-failed-version``, set by Bookinfo's productpage from the
    error answer). So failures are counted by version from what users got, not from our metrics.
    """

    def __init__(self, url: str, rate: float, workers: int = 6):
        self.url, self.rate, self.workers = url, rate, workers
        self.counts: dict[str, dict[str, int]] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.started = self.stopped = 0.0

    def _sort(self, status: int, body: str) -> tuple[str, bool]:
        failed = re.search(r'reviews-error"(?: data-failed-version="([^"]*)")?', body)
        if status != 200:
            return "unknown", False
        if failed:
            return failed.group(1) or "unknown", False
        for version, marker in LABELS.items():
            if marker in body:
                return version, True
        return "unknown", False

    def _run(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        interval, next_at = self.workers / self.rate, time.monotonic()
        while not self.stop_event.is_set():
            try:
                conn.request("GET", parsed.path)
                response = conn.getresponse()
                version, ok = self._sort(response.status, response.read().decode(errors="replace"))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
                version, ok = "unknown", False
            with self.lock:
                slot = self.counts.setdefault(version, {"ok": 0, "failed": 0})
                slot["ok" if ok else "failed"] += 1
            next_at += interval
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))
        conn.close()

    def start(self) -> Load:
        self.started = time.monotonic()
        for _ in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=15)
        self.stopped = time.monotonic()

    def rate_achieved(self) -> float:
        total = sum(c["ok"] + c["failed"] for c in self.counts.values())
        return total / max(1e-6, (self.stopped or time.monotonic()) - self.started)


def topology(kubeconfig: str, prometheus_url: str, moment: str, title: str, quiet: bool = False) -> Path:
    """The neighbourhood of reviews now (mesh_topology, printed unless quiet), saved as SVG and text in build/demo/."""
    OUT.mkdir(parents=True, exist_ok=True)
    picture = OUT / f"topology-{moment}.svg"
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as tmp:
        book = Path(tmp) / "topology.yml"
        text = OUT / f"topology-{moment}.txt"
        book.write_text(json.dumps([{
            "name": f"The neighbourhood of reviews: {title}", "hosts": "localhost", "gather_facts": False,
            "tasks": [
                {"name": f"Who calls whom around reviews, last {WINDOW} ({title})",
                 "canary.istio.mesh_topology": {"namespace": "default", "service": "reviews", "window": WINDOW,
                                                "prometheus_url": prometheus_url, "dest": str(picture)},
                 "register": "topology"},
                {"name": "Keep the table",
                 "ansible.builtin.copy": {"content": "{{ topology.text }}", "dest": str(text), "mode": "0644"}},
            ]}]))
        playbook(book, kubeconfig, quiet=quiet)
    if not quiet:
        print(f"    saved: {picture}")
    return picture


def watch_for_half(kube: KubeClient, kubeconfig: str, prometheus_url: str, done: threading.Event,
                   taken: list[Path]) -> None:
    """Takes the neighbourhood once the canary has had 50% for most of a window (the tutorial's second look)."""
    path = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"
    since = None
    while not done.is_set():
        try:
            route = (kube.get(path).get("spec") or {}).get("http", [{}])[-1].get("route") or []
            weights = {(d.get("destination") or {}).get("subset"): d.get("weight") for d in route}
        except Exception:  # the demo's own watcher: a failed read is tried again
            weights = {}
        if weights.get("v2") == 50:
            since = since or time.monotonic()
            # The first look at 50% comes after ANALYSIS["interval"] s (and may promote): look a little before it.
            if time.monotonic() - since >= ANALYSIS["interval"] - 2:
                # Quiet: the role's run prints at the same time; the table is printed after it.
                taken.append(topology(kubeconfig, prometheus_url, "2-half", "the canary at 50%", quiet=True))
                return
        done.wait(0.5)


def to_gateway_api(kube: KubeClient, namespace: str = "default") -> None:
    """DEMO_API=gateway: Istio's Gateway API Bookinfo instead of the VirtualServices deploy_base wrote - the
    per-version Services of v1, the Service-parented HTTPRoutes (route-all-v1.yaml), then the ingress
    (bookinfo-gateway.yaml) in place of the Istio Gateway and its VirtualService. Before any load."""
    import yaml

    def documents(name: str) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all((GATEWAY_API / name).read_text(encoding="utf-8")) if doc]

    istio = f"/apis/networking.istio.io/v1/namespaces/{namespace}"
    routes = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}"
    for service in documents("bookinfo-versions.yaml"):
        if service["metadata"]["name"].endswith("-v1"):
            kube.create(f"/api/v1/namespaces/{namespace}/services", service)
    for route in documents("route-all-v1.yaml"):
        kube.create(f"{routes}/httproutes", route)
    for item in kube.get(f"{istio}/virtualservices")["items"]:
        kube.delete(f"{istio}/virtualservices/{item['metadata']['name']}")
    for item in kube.get(f"{istio}/gateways")["items"]:
        kube.delete(f"{istio}/gateways/{item['metadata']['name']}")
    for doc in documents("bookinfo-gateway.yaml"):
        kube.create(f"{routes}/{doc['kind'].lower()}s", doc)


def reviews_route(kube: KubeClient, api: str, namespace: str = "default") -> tuple[dict[str, int], list]:
    """The reviews route's weights by version, and its history: the VirtualService's, or the HTTPRoute's."""
    if api == "gateway":
        route = kube.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/reviews")
        refs = route["spec"]["rules"][0]["backendRefs"]
        total = sum(ref.get("weight", 1) for ref in refs) or 1
        weights = {ref["name"].rsplit("-", 1)[-1]: round(100 * ref.get("weight", 1) / total) for ref in refs}
    else:
        route = kube.get(f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/reviews")
        destinations = ((route.get("spec") or {}).get("http") or [{}])[-1].get("route") or []
        weights = {(d.get("destination") or {}).get("subset"): d.get("weight", 100 if len(destinations) == 1 else 0)
                   for d in destinations}
    history = json.loads(route["metadata"].get("annotations", {}).get("canary.istio/history", "[]"))
    return weights, history


def canary_analysed(gateway: str, kubeconfig: str, state: dict[str, Any], prometheus_url: str,
                    kind: str, rate: float, api: str = "istio") -> dict[str, Any]:
    """Stage 2 with analysis: returns the load's counts, the report's path and the pictures."""
    namespace = {"canary_namespace": "default"}
    pictures: list[Path] = []
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("topology-*"):  # pictures of an earlier run would be taken for this one's
        old.unlink(missing_ok=True)  # another demo beside this one may have removed it first
    # A worker waits for each page: one per 10 pages/s keeps the rate when a page takes up to 100 ms.
    load = Load(f"{gateway}/productpage", rate, workers=max(6, int(rate // 10))).start()
    try:
        time.sleep(WINDOW_SECONDS + 1)  # a whole window of traffic for the first look
        say("The neighbourhood after the base release (the tutorial's first look: no ratings node, "
            "reviews-v1 never calls it)")
        pictures.append(topology(kubeconfig, prometheus_url, "1-base", "after the base release"))
        report = OUT / f"release-report-{kind}.html"
        say(f"Stage 2: the canary - reviews v2 ({kind}) beside v1, {' -> '.join(f'{s}%' for s in STEPS)}, "
            f"a look every {ANALYSIS['interval']} s at the evidence since the step began, until it shows a pass "
            "or a fail, decision auto")
        done, half = threading.Event(), []
        watcher = threading.Thread(target=watch_for_half, daemon=True,
                                   args=(KubeClient.from_state(state), kubeconfig, prometheus_url, done, half))
        watcher.start()
        try:
            playbook(PLAYBOOKS / "canary.yml", kubeconfig, {
                **namespace, "canary_release_steps": STEPS, "canary_release_decision": "auto",
                "canary_release_analysis": analysis_settings(rate), "canary_release_prometheus_url": prometheus_url,
                "canary_release_topology_window": WINDOW, "canary_release_report_path": str(report),
                "canary_release_manifests": [str(REPO_ROOT / "bookinfo/platform/kube" / CANARIES[kind])],
                **({"canary_release_traffic_api": "httproute"} if api == "gateway" else {})})
        finally:
            done.set()
            watcher.join(timeout=60)
        pictures += half
        for picture in half:
            say("The neighbourhood with the canary at 50% (the tutorial's second look), taken during the run")
            print(picture.with_suffix(".txt").read_text(encoding="utf-8").rstrip())
            print(f"    saved: {picture}")
        time.sleep(WINDOW_SECONDS + 1)  # a whole window after the decision
        say("The neighbourhood after the release (the tutorial's third look)")
        pictures.append(topology(kubeconfig, prometheus_url, "3-after", "after the release"))
    finally:
        load.stop()
    return {"load": load, "report": report, "pictures": pictures}


# DEMO_RESILIENCE=1: Istio's Fault Injection (abort, for one user) and Circuit Breaking tasks, set and removed
# with canary.istio.resilience on the release's reviews service.
TESTER = "jason"
TESTERS_ONLY = [{"headers": {"end-user": {"exact": TESTER}}}]
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
CIRCUIT_BREAKER = {"connection_pool": {"tcp": {"max_connections": 1}, "http": {"http1_max_pending_requests": 1}}}


def resilience_tasks(kubeconfig: str, namespace: str, *options: dict[str, Any]) -> None:
    """One playbook with a canary.istio.resilience task per ``options``, run as a user runs it."""
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as tmp:
        book = Path(tmp) / "resilience.yml"
        book.write_text(json.dumps([{
            "name": "Resilience policies of reviews", "hosts": "localhost", "gather_facts": False,
            "tasks": [{"name": f"canary.istio.resilience {', '.join(sorted(o))}",
                       "canary.istio.resilience": {"name": "reviews", "namespace": namespace, **o}}
                      for o in options]}]))
        playbook(book, kubeconfig)


def page(gateway: str, user: str | None = None) -> tuple[int, str]:
    """GET /productpage through the gateway, signed in as ``user`` (Bookinfo's ``user`` cookie)."""
    parsed = urllib.parse.urlsplit(gateway)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request("GET", "/productpage", headers={"Cookie": f"user={user}"} if user else {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def reviews_failed(gateway: str, count: int, user: str | None = None, concurrency: int = 1) -> int:
    """How many of ``count`` pages (``concurrency`` at a time) showed Bookinfo's reviews error."""
    failed = [0]
    lock = threading.Lock()
    share = [count // concurrency + (1 if index < count % concurrency else 0) for index in range(concurrency)]

    def client(pages: int) -> None:
        for _page in range(pages):
            status, body = page(gateway, user)
            if status != 200 or REVIEWS_UNAVAILABLE in body:
                with lock:
                    failed[0] += 1
    threads = [threading.Thread(target=client, args=(pages,)) for pages in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return failed[0]


def until(check: Any, seconds: float = 30) -> bool:
    """Polls ``check`` until it is true (the data plane follows the API server by a watch)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def overflows(metrics_url: str) -> float:
    """Requests to reviews that a client proxy answered 503 with flag UO (Istio's istio_requests_total)."""
    parsed = urllib.parse.urlsplit(metrics_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request("GET", parsed.path)
    text = conn.getresponse().read().decode()
    conn.close()
    wanted = {"reporter": "source", "destination_service_name": "reviews", "response_code": "503",
              "response_flags": "UO"}
    total = 0.0
    for line in text.splitlines():
        if line.startswith("istio_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if all(labels.get(key) == value for key, value in wanted.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def resilience_part(gateway: str, kubeconfig: str, metrics_url: str, namespace: str = "default",
                    pages: int = 10, load_pages: int = 120, concurrency: int = 12) -> dict[str, Any]:
    """A fault injected for testers only, then the circuit breaker, each set and removed again."""
    out: dict[str, Any] = {}
    say(f"Resilience: reviews aborts every request of user {TESTER} only (Istio's Fault Injection task, abort)")
    fault = {"abort": {"http_status": 500, "percentage": 100}, "match": TESTERS_ONLY}
    resilience_tasks(kubeconfig, namespace, {"fault": fault})
    until(lambda: reviews_failed(gateway, 1, TESTER) == 1)
    out["fault"] = {"tester_failed": reviews_failed(gateway, pages, TESTER),
                    "others_failed": reviews_failed(gateway, pages), "pages": pages}
    resilience_tasks(kubeconfig, namespace, {"fault": {"match": TESTERS_ONLY}, "state": "absent"})
    until(lambda: reviews_failed(gateway, 1, TESTER) == 0)
    out["fault"]["tester_failed_after_removal"] = reviews_failed(gateway, pages, TESTER)
    print(f"    {TESTER}: {out['fault']['tester_failed']} of {pages} pages without reviews; everyone else: "
          f"{out['fault']['others_failed']} of {pages}; {TESTER} after removal: "
          f"{out['fault']['tester_failed_after_removal']} of {pages}")

    say("Resilience: the circuit breaker - one connection and one pending request to reviews at most "
        "(Istio's Circuit Breaking task)")
    before = overflows(metrics_url)
    resilience_tasks(kubeconfig, namespace, {"circuit_breaker": CIRCUIT_BREAKER})

    def loaded_until_overflow() -> bool:
        reviews_failed(gateway, concurrency, None, concurrency)
        return overflows(metrics_url) > before

    # The data plane applies the rule once its watch sees it: load until the first overflow shows.
    until(loaded_until_overflow, 30)
    start = overflows(metrics_url)
    failed = reviews_failed(gateway, load_pages, None, concurrency)
    out["circuit_breaker"] = {"pages": load_pages, "pages_failed": failed,
                              "overflows_503_uo": overflows(metrics_url) - start}
    resilience_tasks(kubeconfig, namespace, {"circuit_breaker": {}, "state": "absent"})
    print(f"    {load_pages} pages, {concurrency} at a time: {out['circuit_breaker']['overflows_503_uo']:.0f} calls "
          f"to reviews answered 503 with flag UO (overflow) by productpage's proxy; {failed} pages without reviews "
          "(productpage calls reviews a second time after a failure)")
    return out


def main() -> int:
    started = time.monotonic()
    interactive = os.environ.get("DEMO_INTERACTIVE") == "1"
    kind = os.environ.get("DEMO_CANARY", "healthy")
    if kind not in CANARIES:
        print(f"demo: DEMO_CANARY must be one of {', '.join(CANARIES)}, got {kind!r}", file=sys.stderr)
        return 2
    raw_rate = os.environ.get("DEMO_RATE", str(DEFAULT_RATE))
    try:
        rate = float(raw_rate)
    except ValueError:
        rate = math.nan
    if not 1 <= rate <= 1000:
        print(f"demo: DEMO_RATE must be a number of pages per second from 1 to 1000, got {raw_rate!r}", file=sys.stderr)
        return 2
    api = os.environ.get("DEMO_API", "istio") or "istio"
    if api not in APIS:
        print(f"demo: DEMO_API must be one of {', '.join(APIS)}, got {api!r}", file=sys.stderr)
        return 2
    if api == "gateway" and interactive:
        print("demo: DEMO_API=gateway runs the analysed release; leave DEMO_INTERACTIVE out", file=sys.stderr)
        return 2
    lab_dir = Path(os.environ.get("LAB_DIR", str(DEFAULT_DIR))).resolve()
    lab = Lab(lab_dir)
    say(f"Starting a fresh lab in {lab_dir} (kube-apiserver + etcd + data plane + Prometheus)")
    lab.down(quiet=True)
    state = lab.up()
    info = dataplane.start(lab_dir)
    gateway = info["gateway_url"]
    kubeconfig = state["kubeconfig"]
    prometheus_url = prometheus.wait_ready(lab_dir)["url"]
    print(f"    Prometheus: {prometheus_url}")
    namespace = {"canary_namespace": "default"}

    say("Stage 1: the base release - Bookinfo with every service at v1")
    playbook(PLAYBOOKS / "deploy_base.yml", kubeconfig, namespace)
    if api == "gateway":
        say("Gateway API: Istio's bookinfo/gateway-api files - the ingress Gateway and productpage HTTPRoute, "
            "Service-parented HTTPRoutes to the per-version Services - in place of the VirtualServices")
        to_gateway_api(KubeClient.from_state(state), namespace["canary_namespace"])
    print(f"\n    Open the product page: {gateway}/productpage")
    say("Probe: every answer should come from reviews v1 (no stars)")
    base = probe(gateway, kubeconfig, 200, {"v1": 100})

    if interactive:
        say("Stage 2: the canary - answer the prompts (ratio, then promote / rollback / hold)")
        playbook(PLAYBOOKS / "canary.yml", kubeconfig, namespace, interactive=True)
        say("Probe: what the split is now")
        final = probe(gateway, kubeconfig, 500, {})
        outcome = None
    else:
        outcome = canary_analysed(gateway, kubeconfig, state, prometheus_url, kind, rate, api)
        # What the release ended with is what the route says now: one version at 100%, or a held split.
        weights, history = reviews_route(KubeClient.from_state(state), api)
        outcome["analyses"] = [entry["analysis"] for entry in history if "analysis" in entry]
        sole = next((version for version, weight in weights.items() if weight == 100), None)
        expected_end = {"healthy": "v2 - promoted"}.get(kind, "v1 - rolled back")
        outcome["end"] = {"v2": "v2 - promoted", "v1": "v1 - rolled back"}.get(sole) or (
            "held at " + ", ".join(f"{version} {weight}%" for version, weight in weights.items()))
        if sole:
            say(f"Probe: every answer should come from reviews {sole} ({outcome['end']})")
            final = probe(gateway, kubeconfig, 200, {sole: 100})
        else:
            say(f"Probe: the release was {outcome['end']}; what the split is now")
            final = probe(gateway, kubeconfig, 200, {})
        if outcome["end"] != expected_end:
            outcome["unexpected"] = f"a {kind} canary should end {expected_end}, this one ended {outcome['end']}"

    resilience = None
    if os.environ.get("DEMO_RESILIENCE") == "1":
        resilience = resilience_part(gateway, kubeconfig, info["metrics_url"], namespace["canary_namespace"])

    elapsed = time.monotonic() - started
    say("Report")
    for title, result in [("base release", base), ("after", final)]:
        shares = ", ".join(f"{k} {v}%" for k, v in result["shares"].items() if k != "unmatched")
        print(f"    {title:<16} {result['ok']:>5} answers, {result['errors']} errors: {shares}")
    if outcome:
        load = outcome["load"]
        print(f"    load             {load.rate_achieved():.1f} pages/s through the gateway during the canary")
        for version in sorted(load.counts):
            counts = load.counts[version]
            print(f"    users on {version:<8} {counts['ok']:>5} pages ok, {counts['failed']} failed")
        if load.counts.get("unknown", {}).get("failed"):
            print("    (unknown: the reviews call failed with no answer from any version - a refused connection -"
                  " so the page cannot name one)")
        for index, analysis in enumerate(outcome["analyses"], 1):
            print(f"    analysis {index} at {analysis['step']}%: {analysis['verdict']} - "
                  f"{analysis.get('msg') or analysis.get('summary')}")
        for picture in outcome["pictures"]:
            print(f"    topology: {picture}")
        print(f"    release report: {outcome['report']}")
        print(f"    outcome:         reviews {outcome['end']}")
        if outcome.get("unexpected"):
            print(f"    NOT AS EXPECTED: {outcome['unexpected']}")
    if resilience:
        fault, breaker = resilience["fault"], resilience["circuit_breaker"]
        print(f"    fault for {TESTER}  {fault['tester_failed']}/{fault['pages']} of his pages without reviews, "
              f"{fault['others_failed']}/{fault['pages']} of others'")
        print(f"    circuit breaker  {breaker['overflows_503_uo']:.0f} overflows (503 UO) over {breaker['pages']} "
              "pages")
    print(f"    total time: {elapsed:.1f} s (lab start {state.get('startup_seconds')} s)")
    print(f"\n    The lab stays up: {gateway}/productpage  (stop it with: make lab-down)")
    print(f"    kubeconfig: {kubeconfig}")
    return 1 if outcome and outcome.get("unexpected") else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"\ndemo: a step failed ({' '.join(map(str, exc.cmd[-1:]))} exited {exc.returncode}); "
              "its output is above. The lab is still up for a look: make lab-down stops it.", file=sys.stderr)
        sys.exit(1)
