"""Bad input to the roles: a clear message, no Python traceback, and nothing written (audit log).

And the whole canary flow run with a token bound only to the shipped least-privilege Role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.audit import AuditWindow
from tests.helpers.ansible import BOOKINFO_VARS
from tests.helpers.collection import REPO_ROOT
from tests.reliability.conftest import PLAYBOOKS, FaultLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GOOD = {"canary_release_ratio": 30, "canary_release_decision": "hold"}
ROWS: list[tuple[str, dict[str, Any], str]] = [
    ("canary.yml", {"canary_release_ratio": 150}, "canary_release_ratio must be a whole number from 0 to 100"),
    ("canary.yml", {"canary_release_ratio": "abc"}, "argument 'canary_release_ratio' is of type str"),
    ("canary.yml", {"canary_release_ratio": ""}, "canary_release_ratio"),
    ("canary.yml", {"canary_release_ratio": -5}, "canary_release_ratio"),
    ("canary.yml", {"canary_release_ratio": 50.5}, "canary_release_ratio"),
    ("canary.yml", {"canary_release_decision": "ship-it"}, "ship-it"),
    ("canary.yml", {"canary_release_canary_version": "v1"}, "must be two different"),
    ("canary.yml", {"canary_release_steps": [50, 10]}, "increasing order"),
    ("canary.yml", {"canary_release_steps": [10, 500]}, "from 0 to 100"),
    ("canary.yml", {"canary_release_service": "nosuchservice"}, "nosuchservice"),
    ("canary.yml", {"canary_release_prompt_attempts": 0}, "canary_release_prompt_attempts"),
    ("canary.yml", {"canary_release_wait_timeout": 0}, "canary_release_wait_timeout"),
    ("canary.yml", {"canary_release_after_promote": "explode"}, "explode"),
    ("canary.yml", {"canary_release_namespace": "Not_A_Namespace"}, "Not_A_Namespace"),
    ("set_ratio.yml", {"canary_release_ratio": 101}, "canary_release_ratio"),
    ("set_ratio.yml", {"canary_release_ratio": "ten"}, "ten"),
    ("promote.yml", {"canary_release_canary_version": "v9"}, "v9"),
    ("canary.yml", {"canary_release_manifests": []}, "canary_release_manifests"),
    # Progressive delivery: the analysis is validated with the other inputs, and Prometheus is asked
    # once before the first write, so an analysis that could not run never starts a release.
    ("canary.yml", {"canary_release_decision": "auto"}, "canary_release_decision=auto promotes on the analysis"),
    ("canary.yml", {"canary_release_analysis": "often"}, "canary_release_analysis"),
    ("canary.yml", {"canary_release_analysis": {"intervall": 5}},
     "canary_release_analysis has unknown key(s) intervall"),
    ("canary.yml", {"canary_release_analysis": {"checks": [{"name": "error-budget"}]}},
     "'error-budget' is not a built-in check"),
    ("canary.yml", {"canary_release_analysis": {"checks": [{"name": "request-success-rate", "min": 150}]}}, "got 150"),
    ("canary.yml", {"canary_release_analysis": {"checks": [{"name": "request-success-rate", "fail_percent": 150}]}},
     "fail_percent 150 is above tolerance_percent 100"),
    ("canary.yml", {"canary_release_analysis": {"window": "30"}}, "window must be a Prometheus duration"),
    ("canary.yml", {"canary_release_analysis": {"failure_limit": 0}},
     "canary_release_analysis.failure_limit must be a whole number from 1 to 100, got 0"),
    ("canary.yml", {"canary_release_analysis": {"inconclusive": "promote"}},
     "canary_release_analysis.inconclusive must be hold, ask or rollback"),
    # The release driver's settings (issue 22); every setting's refusals are in
    # tests/unit/plugins/module_utils/_logic/test_release_analysis.py;
    # these show the role refuses them before any write.
    ("canary.yml", {"canary_release_analysis": {"window": "1m", "interval": 30}},
     "canary_release_analysis.interval (30 s) is shorter than window (1m)"),
    ("canary.yml", {"canary_release_analysis": {"window": "10s", "interval": 10, "scrape_interval": "15s"}},
     "canary_release_analysis.window (10s) is shorter than two scrape intervals"),
    ("canary.yml", {"canary_release_analysis": {"consecutive_error_limit": 0}},
     "canary_release_analysis.consecutive_error_limit must be a whole number from 1 to 100, got 0"),
    ("canary.yml", {"canary_release_analysis": {"dry_run": "maybe"}},
     "canary_release_analysis.dry_run must be true or false"),
    ("canary.yml", {"canary_release_analysis": {"dry_run": True}, "canary_release_decision": "auto"},
     "canary_release_decision=auto lets the analysis promote, but canary_release_analysis.dry_run is true"),
    ("canary.yml", {"canary_release_analysis": {"window": "1m"},
                    "canary_release_prometheus_url": "http://127.0.0.1:9"}, "cannot reach Prometheus at http://127.0.0.1:9"),
    ("canary.yml", {"canary_release_analysis": {"window": "1m"}, "canary_release_prometheus_url": "prometheus:9090"},
     "must be an http(s) URL"),
    # The canary subset's resilience profile (issue 25): checked as canary.istio.resilience checks it.
    ("canary.yml", {"canary_release_resilience": {"circuit_breaker": {"outlier_detection": {
        "max_ejection_percent": 150}}}},
     "canary_release_resilience.circuit_breaker.outlier_detection.max_ejection_percent"),
    ("canary.yml", {"canary_release_resilience": {"timeout": "1s"}},
     "canary_release_resilience has timeout: a subset's trafficPolicy holds only circuit_breaker"),
    ("canary.yml", {"canary_release_resilience": {"circuit_breaker": {"outlier_detection": {"interval": "abc"}}}},
     "abc"),
    ("canary.yml", {"canary_release_resilience_after_promote": "drop"}, "drop"),
    ("promote.yml", {"canary_release_resilience": "on"}, "canary_release_resilience"),
    # The traffic API (issue 24).
    ("canary.yml", {"canary_release_traffic_api": "gateway"}, "gateway"),
    ("canary.yml", {"canary_release_traffic_api": "httproute"}, "does not exist: create the service's HTTPRoute first"),
]


@pytest.fixture(scope="module")
def refusing_namespace(fault_lab: FaultLab) -> str:
    """One base for every refused input: each case proves it wrote nothing, so the next finds the base
    as deployed (a case that wrote would fail itself, whatever the later ones see)."""
    return fault_lab.deploy_base()


def one_play_on_many_hosts(playbook: str, directory: Path) -> Path:
    """The shipped play behind ``playbook`` (playbook -> _stage.yml -> _local.yml, each import's vars on
    the play, as import_playbook puts them), run on every host of the inventory instead of localhost.

    A row is a host with the row's variables: one ansible-playbook run refuses every row of a
    playbook, each host failing on its own, where a run per row spent ~2 s starting Ansible."""
    play_vars: dict[str, Any] = {}
    path = PLAYBOOKS / playbook
    while True:
        first = yaml.safe_load(path.read_text())[0]
        imported = first.get("ansible.builtin.import_playbook")
        if imported is None:
            break
        play_vars = {**first.get("vars", {}), **play_vars}
        path = path.parent / imported
    tasks = play_vars.get("canary_play_tasks")
    assert tasks, f"{playbook} no longer names its tasks through canary_play_tasks"
    play_vars["canary_play_tasks"] = str(PLAYBOOKS / tasks)
    assert first["hosts"] == "localhost", first["hosts"]
    play = {**first, "hosts": "all", "vars": {**first.get("vars", {}), **play_vars}}
    target = directory / f"many-hosts-{playbook}"
    target.write_text(yaml.safe_dump([play], sort_keys=False))
    return target


def host_vars(shared: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A row's variables as host variables. As extra vars they outranked the playbook's set_fact of
    canary_namespace into canary_release_namespace; as host variables they do not, so a row that names
    canary_release_namespace itself goes without canary_namespace."""
    given = {**shared, **row}
    if "canary_release_namespace" in row:
        given.pop("canary_namespace")
    return given


@pytest.fixture(scope="module")
def refusals(fault_lab: FaultLab, refusing_namespace: str, tmp_path_factory) -> dict[int, dict[str, Any]]:
    """Every row refused: per row, the output, its host's results and the writes of the whole batch."""
    directory = tmp_path_factory.mktemp("refusals")
    # canary_bookinfo_dir is playbook_dir/../bookinfo in the vars file: the same directory, from here.
    shared = {**yaml.safe_load(BOOKINFO_VARS.read_text()), "canary_bookinfo_dir": str(REPO_ROOT / "bookinfo"),
              "canary_kubeconfig": fault_lab.state["kubeconfig"], "canary_namespace": refusing_namespace, **GOOD}
    window = AuditWindow(fault_lab.state)
    outcome: dict[int, dict[str, Any]] = {}
    for playbook in sorted({row[0] for row in ROWS}):
        rows = [i for i, row in enumerate(ROWS) if row[0] == playbook]
        inventory = directory / f"inventory-{playbook}.yml"
        hosts = {f"row-{i}": host_vars(shared, ROWS[i][1]) for i in rows}
        inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        rc, out, results = fault_lab.run_on(one_play_on_many_hosts(playbook, directory), inventory)
        for i in rows:
            outcome[i] = {"rc": rc, "out": out, "results": [r for r in results if r["host"] == f"row-{i}"]}
    writes = window.writes(user="lab:admin")
    for value in outcome.values():
        value["writes"] = writes
    return outcome


@pytest.mark.parametrize("playbook,args,fragment", ROWS, ids=[f"{i}-{r[0]}" for i, r in enumerate(ROWS)])
def test_bad_role_input_is_refused_without_a_write(refusals: dict[int, dict[str, Any]], playbook, args, fragment):
    row = refusals[ROWS.index((playbook, args, fragment))]
    assert row["rc"] != 0, row["out"][-2000:]
    failed = [r for r in row["results"] if r["status"] == "failed"]
    assert failed, f"{args} was not refused:\n" + row["out"][-2000:]
    message = " ".join(str(r["result"].get("msg", "")) for r in failed)
    assert fragment in message, message[:2000]
    assert "Traceback" not in row["out"]
    assert row["writes"] == [], [(e["verb"], e["requestURI"]) for e in row["writes"]]


def test_canary_flow_with_only_the_release_role(fault_lab: FaultLab, base_namespace: str):
    ns = base_namespace
    role = yaml.safe_load((REPO_ROOT / "rbac" / "canary-release-role.yaml").read_text())
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    fault_lab.kube.create(f"{rbac}/roles", role)
    fault_lab.kube.create(f"{rbac}/rolebindings", {
        "metadata": {"name": "canary"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": role["metadata"]["name"]},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lab:nobody"}]})
    extra = {"canary_namespace": ns, "canary_context": "lab-nobody", "canary_release_ratio": 40,
             "canary_release_decision": "promote"}
    rc, out, _results = fault_lab.run("canary.yml", extra)
    assert rc == 0, out[-4000:]
    vs = fault_lab.get(f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/reviews")
    assert vs["spec"]["http"][-1]["route"][0]["destination"]["subset"] == "v2"
    # Without the binding, the same user is told exactly what to grant.
    fault_lab.kube.delete(f"{rbac}/rolebindings/canary")
    rc, out, results = fault_lab.run("status.yml", {"canary_namespace": ns, "canary_context": "lab-nobody"})
    assert rc != 0
    message = " ".join(str(r["result"].get("msg", "")) for r in results if r["status"] == "failed")
    assert "Grant verb 'get' on resource 'virtualservices'" in message, message


def test_set_ratio_without_a_ratio_is_refused_before_the_lock(fault_lab: FaultLab, base_namespace: str):
    # No terminal and no canary_release_ratio: nothing can answer the ratio gate, so the run must stop
    # before it takes the release lock - taking it is a write (a Lease), and a needless one for a
    # run that cannot do anything.
    window = AuditWindow(fault_lab.state)
    rc, out, results = fault_lab.run("set_ratio.yml", {"canary_namespace": base_namespace})
    assert rc != 0, out[-2000:]
    failed = [r for r in results if r["status"] == "failed"]
    message = " ".join(" ".join(str(r["result"].get("msg", "")).split()) for r in failed)
    assert "canary_release_ratio is not set" in message, message
    assert not [r for r in results if r["action"].endswith("release_lock")], [r["task"] for r in results]
    writes = window.writes(user="lab:admin")
    assert writes == [], [(e["verb"], e["requestURI"]) for e in writes]
    assert "-e canary_release_ratio=<0..100>" in message and "Nothing was changed" in message, message
