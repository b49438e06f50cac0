"""AWX operations through ansible-runner with AWX-shaped inputs (issue 27).

The extra vars are those AWX builds from a survey (tests/helpers/awx.py ``survey_extra_vars``, after
AWX's ``_update_unified_job_kwargs``: every default that is not None, so an optional text question sends
``""``). Each test uses a namespace of its own on the e2e lab.
"""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster
from tests.helpers.ansible import ansible_env
from tests.helpers.awx import custom_credential_env, load_credential_type, survey_extra_vars
from tests.helpers.collection import REPO_ROOT, ensure_collection_path

pytestmark = [pytest.mark.e2e]

SURVEYS = REPO_ROOT / "awx" / "surveys"
RATINGS = REPO_ROOT / "tests" / "e2e" / "manifests" / "ratings"


class Api:
    """A small HTTP API on loopback: ``answer(path, headers)`` gives (status, JSON body); every request
    is remembered with its headers."""

    def __init__(self, answer: Any, tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, dict(self.headers)))
                status, answer_body = answer(self.path, dict(self.headers))
                body = json.dumps(answer_body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def queries(self) -> list[str]:
        return [path for path, _headers in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus() -> Iterator[Api]:
    """A Prometheus that knows no series: every query gets an empty vector."""
    server = Api(lambda path, headers: (200, {"status": "success", "data": {"resultType": "vector", "result": []}}))
    try:
        yield server
    finally:
        server.close()


def run_job(tmp_path: Path, playbook: str, extravars: dict[str, Any], inventory: dict[str, Any] | None = None,
            envvars: dict[str, str] | None = None, job_id: int | None = None, project: Path | None = None) -> Any:
    """One job as AWX runs it: ansible-runner, a private data dir of its own, the inventory, the extra vars
    (AWX adds awx_job_id and awx_user_name)."""
    import ansible_runner

    ensure_collection_path()
    env = {k: v for k, v in ansible_env().items() if k.startswith(("ANSIBLE_", "PATH", "PYTHONPATH"))}
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    private = tmp_path / f"job-{uuid.uuid4().hex[:6]}"
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts").write_text(
        yaml.safe_dump(inventory) if inventory else "localhost ansible_connection=local\n")
    awx = {"awx_job_id": job_id, "awx_user_name": "admin"} if job_id else {}
    where = {"project_dir": str(project), "playbook": playbook} if project else {
        "playbook": str(REPO_ROOT / "playbooks" / playbook)}
    result = ansible_runner.run(private_data_dir=str(private), **where,
                                extravars={**awx, **extravars}, envvars={**env, **(envvars or {})}, quiet=True,
                                timeout=300)
    result.stdout_text = result.stdout.read()
    return result


def deploy_ratings(tmp_path: Path, lab_state: dict[str, Any], namespace: str) -> None:
    result = run_job(tmp_path, "deploy_base.yml", {
        "canary_kubeconfig": lab_state["kubeconfig"], "canary_namespace": namespace,
        "base_release_manifests": [str(RATINGS / "ratings-v1.yaml")],
        "base_release_networking_manifests": [str(RATINGS / "networking.yaml")]})
    assert result.rc == 0, result.stdout_text[-4000:]


def canary_survey_vars(namespace: str, **answers: Any) -> dict[str, Any]:
    """The canary job template's survey with the required answers; every optional question left as it is."""
    survey = json.loads((SURVEYS / "canary.json").read_text())
    return survey_extra_vars(survey, {
        "canary_release_service": "ratings", "canary_namespace": namespace, "canary_release_canary_version": "v2",
        "canary_manifests": str(RATINGS / "ratings-v2.yaml"), "canary_release_ratio": 25, **answers})


def test_waves_with_the_canary_surveys_defaults_keep_each_clusters_prometheus(
        lab_state, kube, tmp_path: Path, prometheus: Api):
    namespace = f"awx-waves-{uuid.uuid4().hex[:6]}"
    deploy_ratings(tmp_path, lab_state, namespace)
    extravars = canary_survey_vars(namespace)
    # What AWX sends for the two optional questions left alone (the report).
    assert extravars["canary_release_prometheus_url"] == "" and extravars["canary_analysis"] == ""
    inventory = {"all": {"children": {"canary_clusters": {"hosts": {"cluster-a": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "canary_kubeconfig": lab_state["kubeconfig"], "canary_prometheus_url": prometheus.url, "wave": 1}}}}}}
    result = run_job(tmp_path, "waves.yml", extravars, inventory)
    out = result.stdout_text
    assert result.rc == 0, out[-5000:]
    assert Cluster(kube, namespace).route_weights("ratings") == {"v1": 75, "v2": 25}
    # The cluster's own Prometheus was asked (the neighbourhood), and nothing says there is none.
    assert any(query.startswith("/api/v1/query") for query in prometheus.queries), prometheus.queries
    assert "no Prometheus URL" not in out, out[-3000:]


def test_a_lock_held_by_a_finished_awx_job_is_taken_over_and_named(lab_state, kube, tmp_path: Path):
    """A job killed in AWX left its lock (valid for another hour). A rerun with AWX's controller credential
    asks AWX for the holder job's status: while it runs the rerun is refused, naming the holder and the job;
    once AWX says canceled, the rerun takes the lock over, says whose it was, and releases."""
    namespace = f"awx-lock-{uuid.uuid4().hex[:6]}"
    deploy_ratings(tmp_path, lab_state, namespace)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube.create(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "canary-ratings", "annotations": {"canary.istio/awx-job": "41"}},
        "spec": {"holderIdentity": "awx:bob@localhost", "acquireTime": now, "renewTime": now,
                 "leaseDurationSeconds": 3600}})
    status = {"41": "running"}

    def awx(path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if headers.get("Authorization") != "Bearer awx-token":
            return 401, {"detail": "Authentication credentials were not provided."}
        job = path.rstrip("/").rsplit("/", 1)[-1]
        return (200, {"id": int(job), "status": status[job]}) if job in status else (404, {"detail": "Not found."})

    api = Api(awx)
    try:
        # What AWX's "Red Hat Ansible Automation Platform" credential injects.
        controller = {"CONTROLLER_HOST": api.url, "CONTROLLER_USERNAME": "", "CONTROLLER_PASSWORD": "",
                      "CONTROLLER_VERIFY_SSL": "False", "CONTROLLER_OAUTH_TOKEN": "awx-token"}
        extravars = {**canary_survey_vars(namespace), "canary_kubeconfig": lab_state["kubeconfig"]}
        refused = run_job(tmp_path, "canary.yml", extravars, envvars=controller, job_id=42)
        assert refused.rc != 0
        assert ("another canary run holds the lock " + namespace + "/canary-ratings: holder 'awx:bob@localhost'"
                in refused.stdout_text), refused.stdout_text[-3000:]
        assert "The holder is AWX job 41, running." in refused.stdout_text
        assert Cluster(kube, namespace).route_weights("ratings") == {"v1": 100}

        status["41"] = "canceled"
        rerun = run_job(tmp_path, "canary.yml", extravars, envvars=controller, job_id=43)
        assert rerun.rc == 0, rerun.stdout_text[-4000:]
        assert (f"took over the lock {namespace}/canary-ratings: the holder 'awx:bob@localhost' is AWX job 41, "
                "which has finished (canceled)") in rerun.stdout_text, rerun.stdout_text[-4000:]
        assert api.queries == ["/api/v2/jobs/41/", "/api/v2/jobs/41/"]
    finally:
        api.close()
    assert Cluster(kube, namespace).route_weights("ratings") == {"v1": 75, "v2": 25}
    leases = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")["items"]
    assert leases == []  # released at the end of the rerun

    # The canary job's artifacts, as AWX reads them from the runner's events (playbook_on_stats artifact_data).
    artifacts = artifact_data(rerun)["canary_release_artifacts"]["localhost"]
    keys = ("stage", "service", "namespace", "base", "canary", "weights", "share", "decision")
    assert {k: artifacts[k] for k in keys} == {
        "stage": "release", "service": "ratings", "namespace": namespace, "base": "v1", "canary": "v2",
        "weights": {"v1": 75, "v2": 25}, "share": 25, "decision": "hold"}

    # The promote job after the approval gets them as extra vars (AWX passes a node's artifacts on) and acts
    # only on the release they describe.
    promote_vars = {**extravars, "canary_release_artifacts": {"localhost": {**artifacts, "canary": "v3"}}}
    other = run_job(tmp_path, "promote.yml", promote_vars, job_id=44)
    assert other.rc != 0
    assert "describe another release: canary 'v3' (this job: 'v2')" in other.stdout_text, other.stdout_text[-3000:]
    assert Cluster(kube, namespace).route_weights("ratings") == {"v1": 75, "v2": 25}
    promoted = run_job(tmp_path, "promote.yml", {**extravars, "canary_release_artifacts": {"localhost": artifacts}},
                       job_id=45)
    assert promoted.rc == 0, promoted.stdout_text[-4000:]
    assert "The canary job left ratings at 25% on v2 (hold)" in promoted.stdout_text, promoted.stdout_text[-3000:]
    assert Cluster(kube, namespace).route_weights("ratings") == {"v2": 100}
    assert artifact_data(promoted)["canary_release_artifacts"]["localhost"]["weights"] == {"v2": 100}


def artifact_data(result: Any) -> dict[str, Any]:
    [stats] = [event for event in result.events if event.get("event") == "playbook_on_stats"]
    return stats["event_data"].get("artifact_data") or {}


def test_the_canary_nodes_failure_path_removes_what_it_created(lab_state, kube, tmp_path: Path):
    """The canary job fails before traffic moves (its Deployment never becomes ready); the workflow's failure
    path runs the rollback job with the same answers: the canary's Deployment and subset are gone and the
    base serves 100%."""
    namespace = f"awx-fail-{uuid.uuid4().hex[:6]}"
    deploy_ratings(tmp_path, lab_state, namespace)
    never_ready = tmp_path / "ratings-v2-never-ready.yaml"
    never_ready.write_text((RATINGS / "ratings-v2.yaml").read_text().replace(
        "docker.io/istio/examples-bookinfo-ratings-v2:1.16.2", "registry.invalid/never-ready:1"))
    workflow = json.loads((SURVEYS / "workflow.json").read_text())
    answers = {"canary_release_service": "ratings", "canary_namespace": namespace,
               "canary_release_canary_version": "v2", "canary_manifests": str(never_ready),
               "canary_release_ratio": 25}
    extravars = {**survey_extra_vars(workflow, answers, {"canary_release_decision": "hold"}),
                 "canary_kubeconfig": lab_state["kubeconfig"], "canary_release_wait_timeout": 3}
    failed = run_job(tmp_path, "canary.yml", extravars, job_id=60)
    assert failed.rc != 0, failed.stdout_text[-3000:]
    out = failed.stdout_text
    assert 'failed at task "Deploy the canary workload and wait for it"' in out, out[-3000:]
    assert Cluster(kube, namespace).deployments() == ["ratings-v1", "ratings-v2"]  # left behind by the failure
    # The failure node (awx/create_workflow.yml): the rollback job template, with the workflow's extra vars.
    book = yaml.safe_load((REPO_ROOT / "awx" / "create_workflow.yml").read_text())[0]
    nodes = {node["identifier"]: node for task in book["tasks"] if "awx.awx.workflow_job_template" in task
             for node in task["awx.awx.workflow_job_template"]["workflow_nodes"]}
    [failure] = nodes["canary"]["related"]["failure_nodes"]
    assert nodes[failure["identifier"]]["unified_job_template"]["name"] == "canary rollback"
    stages = {stage["name"]: stage["playbook"] for stage in book["vars"]["awx_canary_stages"]}
    assert stages["canary rollback"] == "playbooks/rollback.yml"
    rollback = run_job(tmp_path, "rollback.yml", extravars, job_id=61)
    assert rollback.rc == 0, rollback.stdout_text[-4000:]
    cluster = Cluster(kube, namespace)
    assert cluster.route_weights("ratings") == {"v1": 100}
    assert cluster.subsets("ratings") == ["v1"]
    assert cluster.deployments() == ["ratings-v1"]


def private_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of our own and a certificate it signed for 127.0.0.1 (openssl): (ca, cert, key)."""
    directory.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=canary test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def test_the_prometheus_credential_reaches_a_prometheus_behind_a_private_ca(lab_state, kube, tmp_path: Path):
    """AWX's rendering of the Prometheus credential type (a CA file, a token, the URL as environment
    variables) lets the role read an https Prometheus signed by a private CA, with no Prometheus setting in
    the survey or the playbook."""
    ca, cert, key = private_ca(tmp_path / "ca")
    api = Api(lambda path, headers: (
        (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        if headers.get("Authorization") == "Bearer prom-token" else (401, {"status": "error", "error": "no token"})),
        tls=(cert, key))
    try:
        env = custom_credential_env(load_credential_type("prometheus"), {
            "url": api.url, "token": "prom-token", "ca_cert": ca.read_text()}, tmp_path / "credential")
        assert Path(env["CANARY_ISTIO_PROMETHEUS_CA_CERT"]).read_text() == ca.read_text()
        assert env["CANARY_ISTIO_PROMETHEUS_VALIDATE_CERTS"] == "true" and env["CANARY_ISTIO_PROMETHEUS_URL"] == api.url
        namespace = f"awx-prom-{uuid.uuid4().hex[:6]}"
        deploy_ratings(tmp_path, lab_state, namespace)
        # With an analysis after the step (its looks are inconclusive: this Prometheus has no series), so the
        # release writes its report.
        analysis = {"window": "2s", "interval": 2, "looks_per_step": 1, "scrape_interval": 1, "inconclusive": "hold"}
        extravars = {**canary_survey_vars(namespace, canary_analysis=json.dumps(analysis)),
                     "canary_kubeconfig": lab_state["kubeconfig"],
                     "canary_release_report_path": str(tmp_path / "report.html")}
        result = run_job(tmp_path, "canary.yml", extravars, envvars=env, job_id=70)
        assert result.rc == 0, result.stdout_text[-4000:]
        assert "No neighbourhood" not in result.stdout_text, result.stdout_text[-3000:]
        # The report outlives the job: a ConfigMap beside the VirtualService, named in the output and artifacts.
        kept = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/canary-report-ratings")
        assert kept["data"]["report.html"] == (tmp_path / "report.html").read_text()
        assert f"kept in ConfigMap {namespace}/canary-report-ratings" in result.stdout_text
        report = artifact_data(result)["canary_release_artifacts"]["localhost"]["report"]
        assert report == {"path": str(tmp_path / "report.html"), "configmap": f"{namespace}/canary-report-ratings"}
        assert api.queries and all(headers.get("Authorization") == "Bearer prom-token"
                                   for _path, headers in api.requests)
    finally:
        api.close()


def test_a_user_project_importing_the_collections_playbooks_reads_its_own_manifests(
        lab_state, kube, tmp_path: Path):
    """An AWX project of the user's own, whose playbooks import canary.istio.deploy_base and
    canary.istio.canary from the installed collection: relative manifest paths of both stages are read from
    that project (the job's working directory), not from the collection."""
    project = tmp_path / "user-project"
    (project / "deploy" / "ratings").mkdir(parents=True)
    for name in ("ratings-v1.yaml", "ratings-v2.yaml", "networking.yaml"):
        (project / "deploy" / "ratings" / name).write_text((RATINGS / name).read_text())
    for name, imported in (("onboard.yml", "canary.istio.deploy_base"), ("release.yml", "canary.istio.canary")):
        (project / name).write_text(f"---\n- name: {name}\n  ansible.builtin.import_playbook: {imported}\n")
    namespace = f"awx-proj-{uuid.uuid4().hex[:6]}"
    onboard = run_job(tmp_path, "onboard.yml", {
        "canary_kubeconfig": lab_state["kubeconfig"], "canary_namespace": namespace,
        "base_release_manifests": ["deploy/ratings/ratings-v1.yaml"],
        "base_release_networking_manifests": ["deploy/ratings/networking.yaml"]}, project=project)
    assert onboard.rc == 0, onboard.stdout_text[-4000:]
    release = run_job(tmp_path, "release.yml", {
        **canary_survey_vars(namespace, canary_manifests="deploy/ratings/ratings-v2.yaml"),
        "canary_kubeconfig": lab_state["kubeconfig"]}, project=project, job_id=80)
    assert release.rc == 0, release.stdout_text[-4000:]
    cluster = Cluster(kube, namespace)
    assert cluster.deployments() == ["ratings-v1", "ratings-v2"]
    assert cluster.route_weights("ratings") == {"v1": 75, "v2": 25}
