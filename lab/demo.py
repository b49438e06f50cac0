"""`make demo`: the tutorial's canary on the local lab, with the split measured by real requests.

Steps: a fresh lab with its data plane → the base release (Bookinfo v1) → a probe that sees v1
only → the canary at 50% (`DEMO_RATIO`; `DEMO_INTERACTIVE=1` asks at the prompts instead) → a
probe that sees about half black stars → promotion → a probe that sees v2 only → a short report.
The lab stays up for browsing until `make lab-down`.

The demo drives the collection only through `ansible-playbook`, as a user would; it imports
nothing from ``plugins/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import dataplane
from lab.controlplane import DEFAULT_DIR, Lab

REPO_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO_ROOT / "playbooks"
BOOKINFO_VARS = PLAYBOOKS / "vars" / "bookinfo.yml"  # the release the demo shows
COLLECTIONS = REPO_ROOT / "build" / "collections"
VENV_BIN = Path(sys.executable).parent
LABELS = {"v3": 'data-star-color="red"', "v2": 'data-star-color="black"', "v1": 'class="review"'}
# The probe of the canary's split is a check of a random split: at 0.95 a correct router failed it
# about once in twenty runs. At 0.9999 a correct 50% split of 1000 answers fails it once in ~10,000
# runs (docs/testing.md); the interval is then about +-6 points, still far from the 0% or 100% that a
# broken route would show.
CONFIDENCE = 0.9999
SPLIT_REQUESTS = 1000


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def playbook(path: Path, kubeconfig: str, extra: dict[str, Any] | None = None, interactive: bool = False) -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="0",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               K8S_AUTH_KUBECONFIG=kubeconfig, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{BOOKINFO_VARS}", str(path)]
    if extra:
        command += ["-e", json.dumps(extra)]
    subprocess.run(command, env=env, check=True, stdin=None if interactive else subprocess.DEVNULL)


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
                    "msg": "{{ probe.shares }} ({{ '%g' | format(probe.confidence * 100) }}% intervals "
                           "{{ probe.intervals }}), "
                           "errors {{ probe.errors }}"}},
            ]}]))
        playbook(book, kubeconfig)
        return json.loads(result_file.read_text())


def main() -> int:
    started = time.monotonic()
    interactive = os.environ.get("DEMO_INTERACTIVE") == "1"
    ratio = int(os.environ.get("DEMO_RATIO", "50"))
    lab_dir = Path(os.environ.get("LAB_DIR", str(DEFAULT_DIR))).resolve()
    lab = Lab(lab_dir)
    say(f"Starting a fresh lab in {lab_dir} (kube-apiserver + etcd + data plane)")
    lab.down(quiet=True)
    state = lab.up()
    info = dataplane.start(lab_dir)
    gateway = info["gateway_url"]
    kubeconfig = state["kubeconfig"]
    namespace = {"canary_namespace": "default"}

    say("Stage 1: the base release - Bookinfo with every service at v1")
    playbook(PLAYBOOKS / "deploy_base.yml", kubeconfig, namespace)
    print(f"\n    Open the product page: {gateway}/productpage")
    say("Probe: every answer should come from reviews v1 (no stars)")
    base = probe(gateway, kubeconfig, 200, {"v1": 100})

    if interactive:
        say("Stage 2: the canary - answer the prompts (ratio, then promote / rollback / hold)")
        playbook(PLAYBOOKS / "canary.yml", kubeconfig, namespace, interactive=True)
    else:
        say(f"Stage 2: the canary - reviews v2 beside v1, {ratio}% of traffic to v2, then hold")
        playbook(PLAYBOOKS / "canary.yml", kubeconfig,
                 {**namespace, "canary_release_ratio": ratio, "canary_release_decision": "hold"})
    split = None
    if not interactive:
        say(f"Probe: about {ratio}% of the pages should show black stars (v2)")
        split = probe(gateway, kubeconfig, SPLIT_REQUESTS, {"v2": ratio})
        say("Stage 3: promote - all traffic to v2, then v1's route, subset and Deployment are removed")
        playbook(PLAYBOOKS / "promote.yml", kubeconfig, namespace)
        say("Probe: every answer should come from reviews v2 (black stars)")
        final = probe(gateway, kubeconfig, 200, {"v2": 100})
    else:
        say("Probe: what the split is now")
        final = probe(gateway, kubeconfig, 500, {})

    elapsed = time.monotonic() - started
    say("Report")
    rows = [("base release", base)] + ([(f"canary at {ratio}%", split)] if split else []) + [("after", final)]
    for title, result in rows:
        shares = ", ".join(f"{k} {v}%" for k, v in result["shares"].items() if k != "unmatched")
        interval = result["intervals"].get("v2")
        print(f"    {title:<16} {result['ok']:>5} answers, {result['errors']} errors: {shares}"
              f"  (v2 {result['confidence'] * 100:g}% interval {interval[0]}-{interval[1]}%)")
    print(f"    total time: {elapsed:.1f} s (lab start {state.get('startup_seconds')} s)")
    print(f"\n    The lab stays up: {gateway}/productpage  (stop it with: make lab-down)")
    print(f"    kubeconfig: {kubeconfig}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"\ndemo: a step failed ({' '.join(map(str, exc.cmd[-1:]))} exited {exc.returncode}); "
              "its output is above. The lab is still up for a look: make lab-down stops it.", file=sys.stderr)
        sys.exit(1)
