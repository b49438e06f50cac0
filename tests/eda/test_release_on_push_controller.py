"""Release on push through AWX: a real ansible-rulebook runs canary.istio.release_on_push_controller on
loopback against a stand-in AWX controller.

The controller answers what ansible-rulebook's client (ansible_rulebook/job_template_runner.py and
shared_job_monitor.py, 1.3) asks, in the shapes of AWX's API (awx/api/templates/api/*.md and the views'
responses):

- ``GET /api/v2/config/`` at start (api_v2_config_view.md: ``version``, ``time_zone``, ``license_info``, ...);
  ansible-rulebook refuses to start without it and logs the version;
- ``GET /api/v2/unified_job_templates/?name=NAME``: a paged list (_list_common.md: ``count``, ``next``,
  ``previous``, ``results``) of job templates (``type: job_template``, ``related.launch``,
  ``summary_fields.organization.name``, the ``ask_*_on_launch`` flags); the client picks the template of
  the rulebook's organization;
- ``POST /api/v2/job_templates/ID/launch/`` with ``extra_vars`` and ``limit`` (job_template_launch.md);
  AWX answers ``201 Created`` with ``job``, ``ignored_fields`` (the prompts the template does not ask for)
  and the job's own fields (``id``, ``type: job``, ``url: /api/v2/jobs/ID/``, ``status: pending``), and
  a ``Location`` header (JobTemplateLaunch.post);
- ``GET /api/v2/jobs/?id__in=ID&page_size=N``: the job polled until a final status (``successful``,
  ``failed``, ``error``, ``canceled``).

Every request must carry ``Authorization: Bearer <token>``, else AWX's ``401`` ``{"detail": "Authentication
credentials were not provided."}``. The push bodies are those of tests/eda/test_release_on_push.py. What is
asserted is what a user notices: the jobs AWX gets (how many, which template, which extra vars, with which
token), the lines the rulebook prints, and the HTTP status the sender gets. The release itself, run by
the job template's playbook canary.istio.eda_release, is tested in test_release_on_push.py.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
import jinja2.nativetypes
import pytest
import yaml

from lab import eda
from lab.eda import wait_listening
from tests.eda.conftest import Rulebook, free_port, post
from tests.eda.test_release_on_push import DOCKER_EVENTS, docker_notification, harbor_push
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.slow]

TEMPLATE = "canary release on push"
ORGANIZATION = "Default"
WAIT = 30.0  # seconds for a line or a request; every step here takes well under one
FINAL = ("successful", "failed", "error", "canceled")  # AWX's finished statuses (UnifiedJob.status)


class Awx:
    """AWX's API as ansible-rulebook uses it (see the module's docstring), on loopback.

    Two job templates share the name: 7 in organization Default (the rulebook's), 9 in Staging. A
    launched job stays ``running`` until the test calls ``finish``. Every request is remembered as
    (method, path, query, headers, body)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str], Any]] = []
        self.jobs: dict[int, dict[str, Any]] = {}
        self.served: dict[int, list[tuple[int, str]]] = {}  # (request number, status) of each poll of a job
        self.lock = threading.Lock()
        self.templates = [self._template(7, ORGANIZATION, 1), self._template(9, "Staging", 2)]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, answer, headers = outer.answer(self.command, self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _template(template_id: int, organization: str, organization_id: int) -> dict[str, Any]:
        """A job template as AWX's unified_job_templates list serializes it (JobTemplateSerializer)."""
        return {
            "id": template_id, "type": "job_template", "url": f"/api/v2/job_templates/{template_id}/",
            "related": {"launch": f"/api/v2/job_templates/{template_id}/launch/",
                        "jobs": f"/api/v2/job_templates/{template_id}/jobs/"},
            "summary_fields": {"organization": {"id": organization_id, "name": organization, "description": ""}},
            "name": TEMPLATE, "job_type": "run", "playbook": "playbooks/eda_release.yml", "status": "never updated",
            "ask_variables_on_launch": True, "ask_limit_on_launch": False, "ask_labels_on_launch": False,
            "ask_inventory_on_launch": False, "survey_enabled": False, "allow_simultaneous": False,
        }

    def answer(self, method: str, path: str, headers: dict[str, str],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append((method, parts.path, query, headers, body))
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"detail": "Authentication credentials were not provided."}, {}
            if (method, parts.path) == ("GET", "/api/v2/config/"):
                return 200, {"version": "24.6.1", "time_zone": "UTC", "eula": "", "license_info": {},
                             "project_base_dir": "/var/lib/awx/projects", "project_local_paths": []}, {}
            if (method, parts.path) == ("GET", "/api/v2/unified_job_templates/"):
                found = [t for t in self.templates if t["name"] == query.get("name", [None])[0]]
                return 200, {"count": len(found), "next": None, "previous": None, "results": found}, {}
            launchable = {t["related"]["launch"]: t for t in self.templates}
            if method == "POST" and parts.path in launchable:
                return self._launch(launchable[parts.path], body or {})
            if (method, parts.path) == ("GET", "/api/v2/jobs/"):
                wanted = {int(i) for i in query.get("id__in", [""])[0].split(",") if i}
                results = [dict(job) for job_id, job in sorted(self.jobs.items()) if job_id in wanted]
                for job in results:
                    self.served.setdefault(job["id"], []).append((len(self.requests) - 1, job["status"]))
                return 200, {"count": len(results), "next": None, "previous": None, "results": results}, {}
            return 404, {"detail": "Not found."}, {}

    def _launch(self, template: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """JobTemplateLaunch.post: prompts the template does not ask for are ignored and named."""
        ignored = {}
        if "limit" in body and not template["ask_limit_on_launch"]:
            ignored["limit"] = body["limit"]
        extra_vars = body.get("extra_vars") or {}
        if extra_vars and not template["ask_variables_on_launch"]:
            ignored["extra_vars"], extra_vars = extra_vars, {}
        job_id = len(self.jobs) + 1
        job = {"id": job_id, "type": "job", "url": f"/api/v2/jobs/{job_id}/", "name": template["name"],
               "job_template": template["id"], "launch_type": "manual", "status": "running",
               "extra_vars": json.dumps(extra_vars), "created": "2026-12-06T20:00:00.000000Z"}
        self.jobs[job_id] = job
        return 201, {"job": job_id, "ignored_fields": ignored, **job, "status": "pending"}, {"Location": job["url"]}

    def launches(self) -> list[tuple[str, dict[str, str], Any]]:
        with self.lock:
            return [(path, headers, body) for method, path, _q, headers, body in self.requests if method == "POST"]

    def wait_for_launches(self, count: int, timeout: float = WAIT) -> list[tuple[str, dict[str, str], Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(launches := self.launches()) >= count:
                return launches
            time.sleep(0.1)
        raise AssertionError(f"{count} launch(es) expected, AWX got {len(self.launches())}")

    def finish(self, job_id: int, status: str) -> None:
        with self.lock:
            self.jobs[job_id]["status"] = status

    def statuses(self, job_id: int) -> list[str]:
        with self.lock:
            return [status for _number, status in self.served.get(job_id, [])]

    def ended_before_launch(self, job_id: int, launch: int) -> bool:
        """Whether job ``job_id`` was polled with a final status before the ``launch``-th launch (1-based)."""
        with self.lock:
            ended = [number for number, status in self.served.get(job_id, []) if status in FINAL]
            posts = [number for number, request in enumerate(self.requests) if request[0] == "POST"]
        return bool(ended) and len(posts) >= launch and ended[0] < posts[launch - 1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ControllerRulebook(Rulebook):
    """ansible-rulebook with release_on_push_controller, as the rulebook's header runs it by hand:
    ``--controller-url`` and ``--controller-token`` (``-v`` for the job template runner's log lines)."""

    def __init__(self, variables: dict[str, Any], controller: Awx, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        vars_file = home / "release_on_push_controller.vars.yml"
        vars_file.write_text(yaml.safe_dump(variables, sort_keys=False), encoding="utf-8")
        inventory = home / "inventory.yml"
        inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n", encoding="utf-8")
        self.log = home / "release_on_push_controller.log"
        command = [*eda.rulebook_command("release_on_push_controller", vars_file, inventory),
                   "--controller-url", controller.url, "--controller-token", controller.token, "-v"]
        # The job monitor polls every EDA_JOB_TEMPLATE_REFRESH_DELAY seconds (10 by default).
        env = {**eda.environment(str(home / "no-cluster")), "EDA_JOB_TEMPLATE_REFRESH_DELAY": "0.2"}
        with open(self.log, "ab") as out:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=str(home), env=env)
        self.process = {"pid": process.pid, "log": str(self.log), "vars": str(vars_file)}


class Setup:
    def __init__(self, rulebook: ControllerRulebook, awx: Awx, url: str, token: str,
                 repositories: dict[str, Any]) -> None:
        self.rulebook, self.awx, self.url, self.token, self.repositories = rulebook, awx, url, token, repositories

    def push(self, body: Any, **kwargs: Any) -> int:
        return post(self.url, body, self.token, **kwargs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    awx = Awx(secrets.token_hex(12))
    port, token = free_port(), secrets.token_hex(12)
    repositories = {
        "bookinfo/reviews": {"service": "reviews", "namespace": "bookinfo", "ratio": 10, "decision": "hold",
                             "manifests": ["/srv/bookinfo/platform/kube/bookinfo-reviews-{tag}.yaml"]},
        "registry.lab/bookinfo/ratings": {"service": "ratings", "namespace": "bookinfo"},
    }
    variables = {"canary_eda_host": "127.0.0.1", "canary_eda_push_port": port, "canary_eda_token": token,
                 "canary_eda_job_template": TEMPLATE, "canary_eda_organization": ORGANIZATION,
                 "canary_eda_repositories": repositories}
    rulebook = ControllerRulebook(variables, awx, tmp_path_factory.mktemp("release-on-push-controller"))
    try:
        wait_listening(f"http://127.0.0.1:{port}/")
        yield Setup(rulebook, awx, f"http://127.0.0.1:{port}/push", token, repositories)
    finally:
        rulebook.stop()
        awx.close()


def recorded_actor(extra_vars: dict[str, Any]) -> str:
    """The history's actor the job's playbook records from these extra vars: the expressions of
    playbooks/eda_release.yml (canary_eda__push) and tasks/eda_release.yml ("Name the release") rendered
    with Jinja2 as Ansible renders them (the job itself is AWX's; its playbook runs in test_release_on_push)."""
    play = yaml.safe_load((REPO_ROOT / "playbooks" / "eda_release.yml").read_text())[0]
    tasks = yaml.safe_load((REPO_ROOT / "playbooks" / "tasks" / "eda_release.yml").read_text())
    naming = next(task for task in tasks if task["name"] == "Name the release")["ansible.builtin.set_fact"]
    push = jinja2.nativetypes.NativeEnvironment().from_string(play["vars"]["canary_eda__push"]).render(extra_vars)
    return jinja2.Environment().from_string(naming["canary_eda__actor"]).render(**extra_vars, canary_eda__push=push)


def test_the_rulebook_checks_the_controller_with_its_token_at_start(setup: Setup):
    assert setup.rulebook.wait_for(r"AAP Version 24\.6\.1", timeout=WAIT)
    method, path, _query, headers, _body = setup.awx.requests[0]
    assert (method, path, headers["Authorization"]) == ("GET", "/api/v2/config/", f"Bearer {setup.awx.token}")


def test_a_push_launches_the_named_job_template_once_with_the_push(setup: Setup):
    envelope = docker_notification("d-1", "bookinfo/reviews", "v2")
    assert setup.push(envelope, content_type=DOCKER_EVENTS) == 200
    (path, headers, body), = setup.awx.wait_for_launches(1)
    # Looked up by name; the template of the rulebook's organization (Default), not its namesake in Staging.
    lookups = [q for _m, p, q, _h, _b in setup.awx.requests if p == "/api/v2/unified_job_templates/"]
    assert lookups == [{"name": [TEMPLATE]}]
    assert path == "/api/v2/job_templates/7/launch/"
    assert headers["Authorization"] == f"Bearer {setup.awx.token}"
    extra_vars = body["extra_vars"]
    push = {"repository": "bookinfo/reviews", "tag": "v2", "digest": envelope["events"][1]["target"]["digest"],
            "format": "docker-distribution", "id": "d-1", "pushed_by": "ci-bot"}
    assert extra_vars["canary_eda_push"] == push
    assert extra_vars["canary_eda_rulebook"] == "release_on_push_controller"
    assert extra_vars["canary_eda_repositories"] == setup.repositories
    service = extra_vars["canary_eda_repositories"][push["repository"]]
    assert (service["service"], push["tag"]) == ("reviews", "v2")  # the service and the canary version
    assert extra_vars["ansible_eda"]["rule"] == "Launch the AWX job template for the pushed tag"
    assert extra_vars["ansible_eda"]["event"]["canary_push"] == push
    assert recorded_actor(extra_vars) == (
        "eda:release_on_push_controller (docker-distribution push d-1 of bookinfo/reviews:v2 by ci-bot)")
    # The webhook's token stays with the webhook (eda.builtin.webhook drops the Authorization header).
    assert setup.token not in json.dumps(body)
    # hosts: all becomes the launch's limit, which a template without "Prompt on launch" for it ignores.
    assert body["limit"] == "all"
    setup.rulebook.wait_for(r"canary\.istio push d-1 \(bookinfo/reviews:v2\): launching the AWX job template "
                            + re.escape(TEMPLATE) + r" \(Default\)", timeout=WAIT)
    # The layer of the same envelope is not an image push.
    setup.rulebook.wait_for(r"canary\.istio push ignored: events\[0\]: not a tagged manifest", timeout=WAIT)

    setup.awx.finish(1, "successful")
    setup.rulebook.wait_for(rf"Job template '{TEMPLATE}' completed successfully \(job_id: 1\)", timeout=WAIT)
    assert len(setup.awx.launches()) == 1


def test_a_second_push_launches_its_job_only_after_the_running_job_ended(setup: Setup):
    """The rulebook keeps no state: a duplicate push launches a job of its own, whose playbook finds the
    release in flight and starts nothing (test_release_on_push). What the rulebook guarantees is the order:
    run_job_template waits for the job and the actions run one after another, so the next push's job
    starts after the previous one has ended. A failed job is reported, not relaunched."""
    assert setup.push(harbor_push("bookinfo/reviews", "v2", 1765051200)) == 200
    setup.awx.wait_for_launches(2)
    assert setup.push({"repository": "bookinfo/reviews", "tag": "v3", "id": "g-v3"}) == 200
    time.sleep(1.5)  # several polls of the running job 2; the push of v3 waits behind it
    assert not setup.rulebook.lines(r"canary\.istio push g-v3 ")
    assert len(setup.awx.launches()) == 2
    assert set(setup.awx.statuses(2)) == {"running"}

    setup.awx.finish(2, "failed")
    launches = setup.awx.wait_for_launches(3)
    assert setup.awx.statuses(2)[-1] == "failed" and setup.awx.ended_before_launch(2, 3)
    setup.rulebook.wait_for(rf"Job template '{TEMPLATE}' failed \(job_id: 2\)", timeout=WAIT)
    second, third = launches[1][2]["extra_vars"], launches[2][2]["extra_vars"]
    assert (second["canary_eda_push"]["format"], second["canary_eda_push"]["tag"]) == ("harbor", "v2")
    assert (third["canary_eda_push"]["id"], third["canary_eda_push"]["tag"]) == ("g-v3", "v3")
    setup.awx.finish(3, "successful")
    setup.rulebook.wait_for(rf"Job template '{TEMPLATE}' completed successfully \(job_id: 3\)", timeout=WAIT)
    assert len(setup.awx.launches()) == 3  # the failed job 2 was not launched again


@pytest.mark.parametrize("repository", [
    "bookinfo/payments",               # not mapped
    "bookinfo/reviews-ui",             # a mapped name is not a prefix
    "registryxlab/bookinfo/ratings",   # the '.' of a mapped name is not a regex wildcard
])
def test_an_unknown_repository_launches_nothing(setup: Setup, repository: str):
    before = len(setup.awx.launches())
    event_id = f"unknown-{repository.replace('/', '-')}"
    assert setup.push({"repository": repository, "tag": "v2", "id": event_id}) == 200
    line = setup.rulebook.wait_for(rf"canary\.istio push {event_id} ", timeout=WAIT)[-1]
    assert line.endswith(f"ignored - repository {repository} is not mapped to a service - no job launched"), line
    assert len(setup.awx.launches()) == before


def test_a_mapped_repository_with_a_dot_launches(setup: Setup):
    before = len(setup.awx.launches())
    assert setup.push({"repository": "registry.lab/bookinfo/ratings", "tag": "v2", "id": "dotted"}) == 200
    path, _headers, body = setup.awx.wait_for_launches(before + 1)[-1]
    assert path == "/api/v2/job_templates/7/launch/"
    assert body["extra_vars"]["canary_eda_push"]["repository"] == "registry.lab/bookinfo/ratings"
    setup.awx.finish(before + 1, "successful")
    setup.rulebook.wait_for(rf"completed successfully \(job_id: {before + 1}\)", timeout=WAIT)


@pytest.mark.parametrize(("body", "said"), [
    ({"foo": 1}, "is neither a Docker Registry notification"),
    ({"repository": "bookinfo/reviews", "tag": "-v2"}, "tag '-v2' is not a valid image tag"),
    ({"events": [{"action": "push"}]}, "events[0] of the Docker Registry notification has no 'target' object"),
])
def test_a_bad_body_launches_nothing(setup: Setup, body: Any, said: str):
    before = len(setup.awx.launches())
    assert setup.push(body) == 200
    line = setup.rulebook.wait_for(r"canary\.istio push refused: .*" + re.escape(said), timeout=WAIT)[-1]
    assert line.endswith("- nothing started"), line
    assert len(setup.awx.launches()) == before


def test_a_body_that_is_not_json_or_not_authenticated_launches_nothing(setup: Setup):
    before = len(setup.awx.launches())
    assert setup.push(None, raw=b"repository=bookinfo/reviews&tag=v2") == 400
    assert post(setup.url, {"repository": "bookinfo/reviews", "tag": "v9", "id": "no-token"}, None) == 401
    assert post(setup.url, {"repository": "bookinfo/reviews", "tag": "v9", "id": "no-token"}, "not-it") == 401
    time.sleep(0.5)
    assert not setup.rulebook.lines("no-token")
    assert len(setup.awx.launches()) == before
    # Every request the controller got carried the controller's token, none the webhook's.
    assert {headers.get("Authorization") for _m, _p, _q, headers, _b in setup.awx.requests} == {
        f"Bearer {setup.awx.token}"}
