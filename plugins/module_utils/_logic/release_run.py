# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One run of the ``canary_release`` role as one state, advanced by events.

Pure functions; no Kubernetes, no Ansible. The role keeps a single fact, the run's state, and after
everything it does it hands the state and what happened to :func:`advance`, which answers with the
new state: the validated inputs, what ``canary_info`` read, the plan of the run (``release.plan_run``),
the driver's plan and its next action (``driver``), the moves and analyses of the run, the decision
and the texts the role prints. The role decides nothing itself: it acts on ``state["next"]`` (one action
a slot while ``state["acting"]``), ``state["refusal"]`` and the flags of its tasks, passes each module
``state["args"]`` (:func:`module_arguments`, its module_defaults) and prints ``state["say"]``.

=============  ==================================================================================
event          payload, and what the state gains
=============  ==================================================================================
start          the role's inputs (a mapping); the state starts with the validated inputs - before
               any request, so bad input changes nothing
read           ``canary_info``'s result (or the results of the role's loop over ``reads``); the first read
               plans the run (``phase``, ``plan``, ``pending_steps``, ``refusal``, the DestinationRules of
               the manifests read at start, the first ``next`` of a run that does not deploy); every read
               refreshes the subsets and Deployments; the read after the deployment starts the loop
checked        ``canary_analysis``'s result of the check before any change; a ``refusal`` when it did not run
acted          ``{"reply", "split", "analysis"}``: the results of one slot of the loop, which did ``next``
               (ask, move, analyse, promote or rollback); the event of that action below, the decision
               applied when the driver's answer is final, the next gate's prompt, ``fail`` (stop)
rules          the DestinationRules of ``canary_release_destination_rule_manifests``; which rule holds
               the subsets, and whether the canary's subset must be added
plan           the ratio gate's answer (or none); the driver's plan and its first ``next``
moved          ``traffic_split``'s result of a move; the split, the move, the next action
analysed       ``canary_analysis``'s result; the analysis record, the next action
settle         none; the driver's final action, ``decision`` and ``verdict``
answered       the decision gate's answer; the final action a person chose
swapped        ``traffic_split``'s result of a promotion or a rollback (all traffic to one version)
reported       ``{"path", "configmap"}``: where the report was written and kept (empty when not)
failed         ``{"task", "msg"}`` of a failed run; ``put_back``: whether to send all traffic back to the
               base, ``failure``: the message to end with
=============  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic import driver, release, resilience
from ansible_collections.canary.istio.plugins.module_utils._logic.artifacts import approved_mismatch, release_artifacts
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.given import first_given

PREFIX = "canary_release_"
# How refusals name the inputs: by the role's variables.
ROLE_NAMES = release.InputNames(ratio="canary_release_ratio", steps="canary_release_steps",
                                decision="canary_release_decision", base="canary_release_base_version",
                                canary="canary_release_canary_version", analysis="canary_release_analysis")
EVENTS = ("start", "read", "rules", "plan", "moved", "analysed", "settle", "answered", "swapped", "reported",
          "failed", "acted", "checked")
# The two gates: the variable each answers, the rule of an answer and what to pass instead.
GATES = {
    "ratio": {"variable": "canary_release_ratio", "rule": "a whole number from 0 to 100", "hint": "<0..100>",
              "question": "Share of traffic for the canary {canary}, in percent"},
    "decision": {"variable": "canary_release_decision", "rule": "promote, rollback or hold",
                 "hint": "<promote|rollback|hold>",
                 "question": "Promote the canary {canary}, roll back to {base}, or hold the split?"},
}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _whole(value: Any, name: str, low: int, high: int | None, problem: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CanaryInputError(problem) from None
    if isinstance(value, bool) or number < low or (high is not None and number > high):
        raise CanaryInputError(problem)
    return number


def _actor(inputs: Mapping[str, Any]) -> tuple[str, str]:
    """Who is recorded in the history, and who holds the lock (the inventory host names the cluster)."""
    user, job = _text(inputs.get("awx_user")), _text(inputs.get("awx_job"))
    actor = _text(inputs.get("actor"))
    if not actor and user:
        actor = f"awx:{user}" + (f" (job {job})" if job else "")
    elif not actor and job:
        actor = f"awx:job {job}"
    holder = _text(inputs.get("lock_holder"))
    if not holder:
        holder = (f"awx:{user}" if user else f"user:{_text(inputs.get('user')) or 'unknown'}") + \
            f"@{_text(inputs.get('host')) or 'localhost'}"
    return actor, holder


def _truth(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "on", "1")


def _named(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs by short name: the role's variables (``canary_release_ratio`` is ``ratio``) and the rest."""
    renamed = {"base_version": "base", "canary_version": "canary"}
    named = {}
    for key, value in inputs.items():
        short = key[len(PREFIX):] if key.startswith(PREFIX) else key
        named[renamed.get(short, short)] = value
    return named


# What a canary stage may set on the canary's subset: the options of canary.istio.resilience that a subset holds.
RESILIENCE_OPTIONS = ("circuit_breaker",)
AFTER_PROMOTE = ("remove", "keep")
# canary_release_traffic_api: the object that holds the service's route, or auto (the one that exists).
TRAFFIC_APIS = {"auto": "", "virtual_service": "VirtualService", "httproute": "HTTPRoute"}
# Inputs kept as they are for the modules' arguments (module_arguments); prometheus is the URL the role found.
SETTINGS = ("destination_rule", "route_name", "lock_ttl", "force_lock", "topology_window", "awx_job",
            "report_path", "report_configmap", "playbook_dir")
# Where Prometheus is: the role's variable, else the cluster's own (canary_prometheus_url, as a waves inventory
# sets it per host), else the environment variable the modules read too. An empty value is not given: an AWX
# survey sends its empty default as an extra var, which would hide the others.
PROMETHEUS_PLACES = ("prometheus_url", "cluster_prometheus_url", "env_prometheus_url")


def resilience_profile(value: Any) -> dict[str, Any]:
    """``canary_release_resilience`` checked as ``canary.istio.resilience`` checks it: ``{}`` is none."""
    if value in (None, "", {}):
        return {}
    if not isinstance(value, Mapping):
        raise CanaryInputError(f"canary_release_resilience must be a mapping such as {{circuit_breaker: "
                               f"{{outlier_detection: {{...}}}}}}, got {value!r}")
    other = sorted(str(key) for key in value if key not in RESILIENCE_OPTIONS)
    if other:
        raise CanaryInputError(
            f"canary_release_resilience has {', '.join(other)}: a subset's trafficPolicy holds only "
            f"{', '.join(RESILIENCE_OPTIONS)} (route policies - timeout, retries, fault - are for all versions: "
            "set them with canary.istio.resilience)")
    try:
        resilience.traffic_policy_fields(value["circuit_breaker"])
    except CanaryInputError as error:
        raise CanaryInputError(f"canary_release_resilience.{error}") from None
    return {"circuit_breaker": value["circuit_breaker"]}


def start(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The run's first state: every input checked once, before anything is read or written.

    ``inputs`` holds the role's variables (``canary_release_*``, or their short names) and ``goal``,
    ``terminal`` (whether a person can answer at a terminal), ``awx_user``, ``awx_job``, ``user``,
    ``host`` (the inventory host) and ``now``.
    """
    inputs = _named(inputs)
    goal = _text(inputs.get("goal")) or "release"
    if goal not in release.GOALS:
        raise CanaryInputError(f"goal {goal!r} is not one of {', '.join(release.GOALS)}")
    attempts = inputs.get("prompt_attempts", 3)
    attempts = _whole(attempts, "prompt_attempts", 1, 10,
                      f"canary_release_prompt_attempts must be an integer from 1 to 10, got {attempts}")
    manifests = list(inputs.get("manifests") or [])
    if goal == "release":
        wait_timeout, step_interval = inputs.get("wait_timeout", 300), inputs.get("step_interval", 0)
        problem = (f"canary_release_manifests must list the canary's manifests (got {manifests}); "
                   f"canary_release_wait_timeout must be at least 1 (got {wait_timeout}) and "
                   f"canary_release_step_interval at least 0 (got {step_interval})")
        if not manifests:
            raise CanaryInputError(problem)
        _whole(wait_timeout, "wait_timeout", 1, None, problem)
        _whole(step_interval, "step_interval", 0, None, problem)
    checked = release.validate_inputs(inputs.get("base"), inputs.get("canary"), inputs.get("ratio"),
                                      inputs.get("steps") or None, inputs.get("decision") or None, ROLE_NAMES,
                                      inputs.get("analysis") or None)
    setting = _text(inputs.get("interactive")) or "auto"
    actor, holder = _actor(inputs)
    profile = resilience_profile(inputs.get("resilience"))
    profile_after = _text(inputs.get("resilience_after_promote")) or "keep"
    if profile_after not in AFTER_PROMOTE:
        raise CanaryInputError(f"canary_release_resilience_after_promote must be keep or remove, got {profile_after!r}")
    api = _text(inputs.get("traffic_api")) or "auto"
    if api not in TRAFFIC_APIS:
        raise CanaryInputError(f"canary_release_traffic_api must be auto, virtual_service or httproute, got {api!r}")
    service = _text(inputs.get("service"))
    return {
        "goal": goal, "service": service, "namespace": _text(inputs.get("namespace")),
        "virtual_service": _text(inputs.get("virtual_service")) or _text(inputs.get("service")),
        "base": checked.base, "canary": checked.canary, "ratio": checked.ratio, "steps": list(checked.steps),
        # Settings left unset are absent, so that the role passes none of them to canary_analysis.
        "decision_input": checked.decision,
        "analysis": (None if checked.analysis is None
                     else {key: value for key, value in checked.analysis.items() if value is not None}),
        "reason": _text(inputs.get("reason")), "actor": actor, "lock_holder": holder,
        "interactive": setting == "always" or (setting == "auto" and bool(inputs.get("terminal"))),
        "no_prompt_reason": ("canary_release_interactive is never" if setting == "never" else
                             "no terminal to ask on (stdin is not an interactive terminal, or the run is under "
                             "AWX or ansible-runner)"),
        "prompt_attempts": attempts, "step_interval": int(inputs.get("step_interval") or 0),
        "rollback_on_failure": _truth(inputs.get("rollback_on_failure", True)),
        "after_promote": _text(inputs.get("after_promote")) or "remove",
        # The canary subset's resilience profile: set before any traffic moves (a release), removed again
        # when the swap says so (swapped: remove_resilience).
        "resilience": profile, "resilience_after_promote": profile_after,
        "set_resilience": bool(profile) and goal == "release", "remove_resilience": False,
        # The traffic API: kind is the object the run reads and moves (chosen at the first read with auto);
        # base_ref / canary_ref / winner_ref are what traffic_split names (subsets, or per-version Services).
        "traffic_api": api, "kind": TRAFFIC_APIS[api],
        "read_kinds": [TRAFFIC_APIS[api]] if TRAFFIC_APIS[api] else ["VirtualService", "HTTPRoute"], "deploy": False,
        "reads": _reads_of(service, TRAFFIC_APIS[api], checked.base, checked.canary,
                           _text(inputs.get("destination_rule"))),
        "require_ready_endpoints": _truth(inputs.get("require_ready_endpoints", True)),
        "version_label": _text(inputs.get("version_label")) or "version",
        "base_ref": checked.base, "canary_ref": checked.canary, "winner_ref": None, "create_version_service": False,
        "remove_loser_subset": False,
        "rule_manifests": bool(inputs.get("destination_rule_manifests")),
        # Read from the project by the filter at start (plugins/filter/release_run.py): the canary's manifest
        # paths, and the DestinationRules of canary_release_destination_rule_manifests (event rules, at the read).
        "manifest_paths": list(inputs.get("manifest_paths") or manifests),
        "rule_documents": inputs.get("rule_documents"),
        "host": _text(inputs.get("host")), "lock": _truth(inputs.get("lock", True)),
        "settings": {**{key: inputs.get(key) for key in SETTINGS},
                     "prometheus": first_given([inputs.get(place) for place in PROMETHEUS_PLACES])},
        "artifacts": inputs.get("artifacts"), "started_at": inputs.get("now"),
        "gates": {gate: {**about, "question": about["question"].format(canary=checked.canary, base=checked.base)}
                  for gate, about in GATES.items()},
        "moved": [], "analyses": [], "next": {}, "drive": None, "plan": None, "promoted": False,
        "traffic_moved": False, "stopped": False, "decision": None, "verdict": {}, "weights": {},
        "weights_text": "", "destination_rule": "", "add_canary_subset": False, "winner": None, "loser": None,
        "remove_loser": False, "said": "", "history_entry": None, "looks_text": "", "resume": "", "refusal": "",
        "approver_saw": "", "analysis_said": "", "failure": "", "put_back": False,
        "say": [], "fail": "", "acting": False, "finished": False, "slots": 0, "preflight": False,
        "topology_before": False, "clean_up": False, "list_manifests": False,
    }


def _reads_of(service: str, kind: str, base: str, canary: str, rule: str) -> list[dict[str, str]]:
    """The arguments of the first reads: of the kind chosen, else (auto) of both. canary_info on an HTTPRoute
    reports the per-version Services whether a rule routes to them or not; a VirtualService's DestinationRule
    is the one named, else the one Istio applies."""
    where = {"service": service}
    return [{"kind": kind, **({"base": _backend(where, base), "canary": _backend(where, canary)}
                              if kind == "HTTPRoute" else _given(destination_rule=rule))}
            for kind in ([kind] if kind else ["VirtualService", "HTTPRoute"])]


def _weights_text(weights: Mapping[str, Any]) -> str:
    return release.weights_text(weights or {})


def _seen(artifacts: Any) -> str:
    """What the approver saw: the canary job's artifacts in one line ('' when there are none)."""
    if not isinstance(artifacts, Mapping):
        return ""
    verdicts = ", ".join(str(item.get("verdict")) for item in artifacts.get("verdicts") or []
                         if isinstance(item, Mapping))
    report = artifacts.get("report") or {}
    return (f"The canary job left {artifacts.get('service')} at {artifacts.get('share')}% on {artifacts.get('canary')} "
            f"({artifacts.get('decision') or 'no decision'})" + (f"; verdicts: {verdicts}" if verdicts else "")
            + (f"; report: {', '.join(str(v) for v in report.values())}" if isinstance(report, Mapping) and report
               else ""))


def _refusal(state: Mapping[str, Any], info: Mapping[str, Any], host: str) -> str:
    """Why this run stops before it takes the lock ('' when it may go on), in the order a reader checks."""
    plan, goal = state["plan"], state["goal"]
    if plan["action"] == "refuse":
        return str(plan["problem"])
    if goal in ("promote", "rollback", "set_ratio"):
        seen = (state.get("artifacts") or {}).get(host) if isinstance(state.get("artifacts"), Mapping) else None
        mismatch = approved_mismatch(seen, state["service"], state["namespace"], state["canary"])
        if mismatch:
            return f"{mismatch} Nothing was changed."
    if state.get("kind") == "HTTPRoute" and state.get("resilience"):
        return ("canary_release_resilience sets a DestinationRule subset's trafficPolicy, and the release of "
                f"{state['namespace']}/{state['service']} is on an HTTPRoute (Gateway API has no circuit breaking): "
                "leave canary_release_resilience out, or use canary.istio.resilience on the per-version Service's "
                "own DestinationRule. Nothing was changed.")
    if plan["action"] == "release" and state.get("kind") != "HTTPRoute" and not info.get("destination_rule") \
            and not state["rule_manifests"]:
        return (f"No DestinationRule for {state['service']} in namespace {state['namespace']}: deploy the base "
                "release first (role canary.istio.base_release) or pass canary_release_destination_rule_manifests")
    missing = [state["gates"][gate] for gate in plan["ask"]]
    if missing and not state["interactive"]:
        names = " and ".join(gate["variable"] for gate in missing)
        passes = " ".join(f"-e {gate['variable']}={gate['hint']}" for gate in missing)
        return (f"Cannot run the canary release of {state['namespace']}/{state['service']} unattended: there is "
                f"{state['no_prompt_reason']}, and {names} {'is' if len(missing) == 1 else 'are'} not set. Pass "
                f"{passes} (extra vars, an AWX survey or the calling playbook's vars). Nothing was changed.")
    return ""


def _subset_deployments(info: Mapping[str, Any], subset: str) -> list[str]:
    return [name for item in info.get("subsets") or [] if item.get("name") == subset
            for name in item.get("deployments") or []]


def _backend(state: Mapping[str, Any], version: str) -> str:
    """A version's per-version Service, as Istio's bookinfo-versions.yaml names it: ``<service>-<version>``."""
    return f"{state['service']}-{str(version).lower()}"


def _as_versions(state: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
    """canary_info's read of an HTTPRoute with the base and canary Services named by their versions: the
    weights' keys, the subsets' and the recorded state's names, the history's weights."""
    names = {_backend(state, state["base"]): state["base"], _backend(state, state["canary"]): state["canary"]}

    def name(value: Any) -> Any:
        return names.get(value, value) if isinstance(value, str) else value

    def keys(value: Any) -> Any:
        return {name(key): item for key, item in value.items()} if isinstance(value, Mapping) else value

    def entry(item: Any, mapped: tuple[str, ...], renamed: tuple[str, ...]) -> Any:
        if not isinstance(item, Mapping):
            return item
        return {key: keys(value) if key in mapped else name(value) if key in renamed else value
                for key, value in item.items()}

    return {**info, "weights": keys(info.get("weights") or {}),
            "subsets": [entry(item, (), ("name",)) for item in info.get("subsets") or []],
            "routes": [entry(item, ("weights",), ()) for item in info.get("routes") or []],
            "state": entry(info.get("state") or {}, (), ("base", "canary")),
            "history": [entry(item, ("from", "to"), ("base", "canary")) for item in info.get("history") or []]}


def _choose_api(state: Mapping[str, Any], reads: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], str]:
    """The kind the run uses, its read, and why the run cannot start ('' when it can), from canary_info's
    reads of each kind (a read not made is skipped; a failed HTTPRoute read is a cluster without one)."""
    where = f"{state['namespace']}/{state['virtual_service']}"
    answers = {kind: read for kind, read in reads.items() if isinstance(read, Mapping) and not read.get("skipped")}
    # The role reads with failed_when false: a read that failed has its msg and no answer.
    failed = {kind: str(read.get("msg") or "no answer") for kind, read in answers.items()
              if read.get("failed") or "exists" not in read}
    exists = [kind for kind, read in answers.items() if read.get("exists") and kind not in failed]
    if state["kind"]:
        kind = state["kind"]
        problem = f"Cannot read the {kind} {where}: {failed[kind]}" if kind in failed else ""
        return kind, answers.get(kind) or {}, problem
    if len(exists) > 1:
        return "VirtualService", answers["VirtualService"], (
            f"Both a VirtualService and an HTTPRoute named {where} exist: canary_release_traffic_api auto cannot "
            "choose. Set canary_release_traffic_api to virtual_service or httproute (see docs/gateway-api.md on "
            "moving a release from one to the other). Nothing was changed.")
    if exists:
        return exists[0], answers[exists[0]], ""
    if "VirtualService" in failed:
        return "VirtualService", {}, f"Cannot read the VirtualService {where}: {failed['VirtualService']}"
    # Neither exists: the VirtualService's phase (missing) refuses as before.
    return "VirtualService", answers.get("VirtualService") or {}, ""


def _refs(state: dict[str, Any]) -> None:
    on_route = state["kind"] == "HTTPRoute"
    state["base_ref"] = _backend(state, state["base"]) if on_route else state["base"]
    state["canary_ref"] = _backend(state, state["canary"]) if on_route else state["canary"]


def read(state: Mapping[str, Any], info: Mapping[str, Any], host: str = "", now: float = 0.0) -> dict[str, Any]:
    """What canary_info read; the first read also plans the run.

    The first read may be ``{"VirtualService": <canary_info>, "HTTPRoute": <canary_info>}``: the reads of
    each kind (``read_kinds``), from which ``canary_release_traffic_api`` chooses the kind. On an HTTPRoute
    the backend Services' names are read as versions (``reviews-v2`` is ``v2``).
    """
    new = dict(state)
    api_problem = ""
    if "exists" not in info and any(kind in info for kind in TRAFFIC_APIS.values() if kind):
        new["kind"], info, api_problem = _choose_api(state, info)
        _refs(new)
        state = new
    if new.get("kind") == "HTTPRoute":
        info = _as_versions(state, info)
    subsets = list(info.get("subsets") or [])
    kept = ("exists", "weights", "routes", "subsets", "state", "history", "destination_rule")
    new.update(info={key: info.get(key) for key in kept},
               subsets=[item.get("name") for item in subsets],
               base_deployments=_subset_deployments(info, state["base"]),
               canary_deployments=_subset_deployments(info, state["canary"]))
    # Before the first deployment no rule is stored: the one the manifests bring is named by the role.
    new["destination_rule"] = info.get("destination_rule") or state.get("destination_rule") or ""
    host = host or state.get("host") or ""
    if state.get("plan") is not None:
        # The read after the canary's deployment: the run starts from what the cluster holds now.
        return _begin(new, now) if new.get("deploy") and new.get("drive") is None else new
    observed = release.Observed(
        exists=bool(info.get("exists")), weights=dict(info.get("weights") or {}), subsets=new["subsets"],
        recorded=info.get("state") or {}, history=list(info.get("history") or []),
        where=f"{state['namespace']}/{state['virtual_service']}", destination_rule=info.get("destination_rule") or "",
        kind=new.get("kind") or "VirtualService")
    inputs = release.Inputs(state["base"], state["canary"], state["ratio"], tuple(state["steps"]),
                            state["decision_input"], ROLE_NAMES, state["analysis"])
    answer = release.answer(state["goal"], observed, inputs)
    weights = dict(info.get("weights") or {})
    new.update(phase=answer["phase"], plan=answer["next_run"], pending_steps=answer["pending_steps"],
               weights=weights, weights_text=_weights_text(weights),
               traffic_moved=int(weights.get(state["canary"]) or 0) > 0, approver_saw="")
    new["refusal"] = api_problem or _refusal(new, info, host)
    # On an HTTPRoute a version is a Service: the canary's is created when missing, before any traffic moves.
    new["create_version_service"] = new["kind"] == "HTTPRoute" and state["goal"] == "release"
    if new["plan"]["action"] in ("promote", "rollback", "finish"):
        _swap(new, new["plan"]["action"])
    if state["goal"] in ("promote", "rollback") and isinstance(state.get("artifacts"), Mapping):
        new["approver_saw"] = _seen(state["artifacts"].get(host))
    last = (observed.history[-1] if observed.history else "none recorded")
    new["status"] = {"service": state["service"], "namespace": state["namespace"], "phase": answer["phase"],
                     "weights": weights, "routes": info.get("routes") or [], "subsets": subsets,
                     "recorded": info.get("state") or {}, "history": list(observed.history)}
    new["status_lines"] = [
        f"{state['namespace']}/{state['virtual_service']}: {new['weights_text'] or 'no default route'}",
        f"phase: {answer['phase']} (base {state['base']}, canary {state['canary']})",
        "subsets: " + "; ".join(f"{item.get('name')} [{', '.join(item.get('deployments') or []) or 'no Deployment'}]"
                                for item in subsets),
        f"last step: {last}",
    ]
    new["resume"] = ""
    if new["plan"]["action"] == "release" and answer["phase"] == "in_progress":
        new["resume"] = (f"Resuming the canary of {state['canary']}: {_where(state)} sends {new['weights_text']}; "
                         f"steps left: {', '.join(str(s) for s in answer['pending_steps']) or 'none'}")
    return _first_read(new, now)


# --------------------------------------------------------------------------------------
# the role's loop: one action of state["next"] per slot (tasks/_step.yml), then the event acted

# What a slot does; any other next action ends the loop (hold, stop, nothing to do).
LOOP_ACTIONS = ("ask", "move", "analyse", "promote", "rollback")


def _reads(payload: Any) -> Any:
    """The role's loop over ``reads`` registers a list of results: the read of each kind, by kind."""
    if isinstance(payload, Mapping) and isinstance(payload.get("results"), list):
        payload = payload["results"]
    if not isinstance(payload, list):
        return payload
    return {str((item.get(item.get("ansible_loop_var") or "item") or {}).get("kind")): item
            for item in payload if isinstance(item, Mapping)}


def _first_read(state: dict[str, Any], now: float) -> dict[str, Any]:
    """What the run does after the first read: deploy the canary first, ask, move, swap, or only say."""
    action, goal = state["plan"]["action"], state["goal"]
    state["deploy"] = goal == "release" and action == "release"
    # Prometheus unreachable, a wrong CA, a query it refuses: found before the first write (event checked).
    state["preflight"] = state["deploy"] and bool(state.get("analysis")) and not state["refusal"]
    state["topology_before"] = state["preflight"] and bool(state["settings"].get("prometheus"))
    if state["deploy"] and state.get("rule_documents") is not None:
        state.update(rules(state, state["rule_documents"]))
    state["say"] = [line for line in (state["approver_saw"], state["resume"]) if line]
    if goal == "status":
        state["say"] = list(state["status_lines"])
    elif action == "nothing":
        state["say"] = [f"The canary {state['canary']} of {state['namespace']}/{state['service']} was rolled back "
                        f"already ({state['weights_text']}); nothing to do"]
    elif action == "step":
        _begin(state, now)
    elif action in ("promote", "rollback", "finish"):
        # One slot: the swap (finish: the clean-up of a promotion an earlier run began).
        state["next"] = driver.answer_of("rollback" if action == "rollback" else "promote", state["plan"]["summary"])
        state["slots"] = 1
    return state


def _begin(state: dict[str, Any], now: float) -> dict[str, Any]:
    """The first action of the loop: the ratio gate when it asks, else the driver's plan.

    ``slots`` is the most slots the loop can need: the gates' attempts, a move and the looks of each share (each
    look tried up to consecutive_error_limit times), and the swap."""
    asks = "ratio" in state["plan"]["ask"]
    policy = state["analysis"] if state["goal"] == "release" else None
    per_share = 1 + (int(policy["looks_per_step"]) * int(policy["consecutive_error_limit"]) if policy else 0)
    shares = 1 if asks else max(1, len(state["pending_steps"]))
    decides = state["goal"] == "release" and state["interactive"] and (
        state["decision_input"] is None or (policy or {}).get("inconclusive") == "ask")
    state["slots"] = state["prompt_attempts"] * (int(asks) + int(decides)) + shares * per_share + 1
    if asks:
        return _ask(state, "ratio", 1)
    state.update(plan(state, None, now))
    state["say"] = [*state.get("say", []), *[text for text in (state["looks_text"],) if text], *_announce(state)]
    return state


def _ask(state: dict[str, Any], gate: str, attempt: int) -> dict[str, Any]:
    about = state["gates"][gate]
    asked = state["next"] if state["next"].get("action") == "ask" else driver.answer_of("ask", "")
    state["next"] = {**asked, "gate": gate, "attempt": attempt, "prompt": (
        f"{_where(state)} now sends: {state['weights_text'] or 'no weighted route'}\n{about['question']} "
        f"[{about['rule']}]\n(attempt {attempt} of {state['prompt_attempts']})")}
    return state


def _announce(state: Mapping[str, Any]) -> list[str]:
    """The look that comes next, and when."""
    upcoming = state["next"]
    if upcoming.get("action") != "analyse":
        return []
    return [f"Look {upcoming['look']} of {upcoming['looks']} at {upcoming['share']}% in {upcoming['wait']}s "
            f"({upcoming['reason']})"]


def _answer_gate(state: Mapping[str, Any], typed: Any, now: float) -> dict[str, Any]:
    """A typed answer: the gate's answer when valid, else the gate asks again, or the run fails after its attempts."""
    gate, attempt = state["next"]["gate"], int(state["next"]["attempt"])
    about, attempts = state["gates"][gate], int(state["prompt_attempts"])
    value = release.parse_answer(gate, typed)
    if value is None:
        new = dict(state)
        new["say"] = [f"'{_text(typed)}' is not {about['rule']} ({attempts - attempt} attempt(s) left)"]
        if attempt >= attempts:
            new["fail"] = (f"No valid answer for {about['variable']} after {attempts} attempt(s); it must be "
                           f"{about['rule']}. Nothing was decided.")
            return new
        return _ask(new, gate, attempt + 1)
    if gate == "ratio":
        new = plan(state, value, now)
        new["say"] = [text for text in (new["looks_text"],) if text] + _announce(new)
        return new
    new = answered(state, value, now)
    new["say"] = [new["said"]] if new["decision"] == "hold" else []
    return new


def _settled(state: dict[str, Any], said: list[str]) -> dict[str, Any]:
    """After a move or a look (or the decision gate): the next look is announced; a final answer is applied."""
    upcoming = state["next"]["action"]
    if upcoming in ("move", "analyse"):
        state["say"] = said + _announce(state)
        return state
    if state["goal"] != "release":
        # set_ratio moves its one share and decides nothing.
        state["say"] = said
        return state
    if state.get("decision") is None:
        state = _final(state)
    state["say"] = said + [text for text in (state["analysis_said"],) if text]
    if upcoming == "ask":
        return _ask(state, "decision", 1)
    if upcoming == "hold":
        state["say"].append(state["said"])
    if upcoming == "stop":
        state["fail"] = state["said"]
    return state


def acted(state: Mapping[str, Any], results: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The slot did ``state["next"]``: ``results`` holds the slot's ``reply`` (a gate's pause), ``split``
    (traffic_split) and ``analysis`` (canary_analysis)."""
    action = state["next"].get("action")
    if action not in LOOP_ACTIONS:
        raise CanaryInputError(f"nothing to act on: the next action is {action!r}")
    if action == "ask":
        return _answer_gate(state, (results.get("reply") or {}).get("user_input"), now)
    if action in ("promote", "rollback"):
        new = swapped(state, results.get("split") or {}, state["winner"])
        new.update(finished=True, say=[new["said"]], list_manifests=bool(
            new["remove_loser"] and new["loser"] == state["canary"] and state["manifest_paths"]))
        new["clean_up"] = new["remove_loser"]
        return new
    if action == "move":
        new = moved(state, results.get("split") or {}, now)
        return _settled(new, [f"{_where(state)} sends {new['weights_text']}"])
    new = analysed(state, results.get("analysis") or {}, now)
    new["history_entry"] = {"analysis": new["analyses"][-1]}
    return _settled(new, [new["said"]])


def checked(state: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis run once as a check before any change: a refusal when it could not run."""
    new = dict(state)
    if state.get("preflight") and "verdict" not in result:
        problem = str(result.get("msg") or "no answer").rstrip(".")
        new["refusal"] = f"Cannot analyse the canary of {state['namespace']}/{state['service']}: {problem}. " \
            "Nothing was changed."
    return new


def _given(**arguments: Any) -> dict[str, Any]:
    """Arguments with a value: an empty one is the module's default."""
    return {key: value for key, value in arguments.items() if value not in (None, "", [], {})}


def _report_place(state: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, str]:
    """Where the release report goes: canary_release_report_path, else beside the playbook; and the ConfigMap
    that keeps a copy (none with canary_release_report_configmap false)."""
    beside = f"{settings.get('playbook_dir') or '.'}/canary-report-{state['namespace']}-{state['service']}.html"
    keep = settings.get("report_configmap")
    return {"dest": _text(settings.get("report_path")) or beside,
            "configmap": f"canary-report-{state['service']}" if keep is None or _truth(keep) else ""}


def module_arguments(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The arguments of each module the role runs now (its module_defaults): what every task of a module shares,
    and what the next action gives it - the share of a move, the winner of a swap, the look of an analysis."""
    settings, kind = state.get("settings") or {}, state.get("kind") or "VirtualService"
    where = {"name": state["virtual_service"], "namespace": state["namespace"]}
    route = {**where, "kind": kind, **_given(route_name=settings.get("route_name"), destination_rule=(
        settings.get("destination_rule") if kind == "VirtualService" else None))}
    on_route = kind == "HTTPRoute"
    # Before the first read chooses the traffic API (auto), each read names its kind itself (reads).
    info = ({**route, **({"base": state["base_ref"], "canary": state["canary_ref"]} if on_route else {})}
            if state.get("kind") else {**where, **_given(route_name=settings.get("route_name"))})
    split = {**route, **_given(actor=state["actor"])}
    if on_route:
        split["require_ready_endpoints"] = state["require_ready_endpoints"]
    upcoming = state.get("next") or {}
    if state.get("put_back") or upcoming.get("action") == "move":
        split.update(base=state["base_ref"], canary=state["canary_ref"],
                     canary_weight=0 if state.get("put_back") else upcoming["share"])
    elif upcoming.get("action") in ("promote", "rollback") and state.get("winner_ref"):
        split.update(weights={state["winner_ref"]: 100}, remove_unnamed=True)
    versions = {"service": state["service"], "namespace": state["namespace"], "base": state["base"],
                "canary": state["canary"], **_given(prometheus_url=settings.get("prometheus"))}
    policy = state.get("analysis") or {}
    analysis = {**versions, "window": policy.get("window"), "reporter": policy.get("reporter"),
                # On an HTTPRoute Istio's metrics name the per-version Service (reviews-v2) as the destination service.
                "per_version_services": on_route,
                **_given(**{key: policy.get(key) for key in ("min_requests", "confidence", "power", "scrape_interval",
                                                             "checks")}),
                **({"caller_failures": policy["caller_failures"]} if policy.get("caller_failures") is not None else {})}
    if upcoming.get("action") == "analyse":
        analysis.update(_given(look=upcoming.get("look"), looks=upcoming.get("looks"), since=upcoming.get("since")))
    resilience = {**where, "subset": state["canary"], **_given(destination_rule=state.get("destination_rule")),
                  **(state.get("resilience") or {})}
    lock = {"name": f"canary-{state['service']}", "namespace": state["namespace"], "holder": state["lock_holder"],
            "ttl": int(settings.get("lock_ttl") or 3600), "force": _truth(settings.get("force_lock", False)),
            **_given(job=_text(settings.get("awx_job")))}
    return {
        "canary_info": info, "traffic_split": split, "release_history": {**where, "kind": kind, **_given(
            actor=state["actor"])},
        "resilience": resilience, "release_lock": lock, "canary_analysis": analysis if policy else versions,
        "mesh_topology": {"service": state["service"], "namespace": state["namespace"],
                          **_given(prometheus_url=settings.get("prometheus"),
                                   window=settings.get("topology_window"))},
        "release_report": {**versions, "per_version_services": on_route, **_given(window=policy.get("window")),
                           **_report_place(state, settings)},
        "manifest": {"namespace": state["namespace"]}, "destination_rule": {"namespace": state["namespace"]},
    }


def _swap(state: dict[str, Any], action: str) -> dict[str, Any]:
    """Who wins a promotion (the canary) or a rollback (the base), and what of the loser goes."""
    promote = action in ("promote", "finish")
    pair = (state["canary"], state["base"]) if promote else (state["base"], state["canary"])
    state["winner"], state["loser"] = pair
    deployments = {state["base"]: state.get("base_deployments") or [],
                   state["canary"]: state.get("canary_deployments") or []}
    state["winner_deployments"], state["loser_deployments"] = deployments[pair[0]], deployments[pair[1]]
    state["winner_ref"] = state["canary_ref"] if promote else state["base_ref"]
    # After a promotion the base goes only with canary_release_after_promote: remove; a rollback removes the canary.
    state["remove_loser"] = not promote or state["after_promote"] == "remove"
    # A DestinationRule subset goes with the loser; on an HTTPRoute its per-version Service stays (as in Istio's
    # bookinfo-versions.yaml), routed by nothing.
    state["remove_loser_subset"] = (state["remove_loser"] and state.get("kind") != "HTTPRoute"
                                    and state["loser"] in (state.get("subsets") or []))
    return state


def rules(state: Mapping[str, Any], definitions: Any) -> dict[str, Any]:
    """The DestinationRules the manifests bring: which holds the subsets, and whether the canary's is missing."""
    new = dict(state)
    found = [dict(item) for item in definitions or [] if isinstance(item, Mapping)]
    new["rule_definitions"] = found
    named = [((item.get("metadata") or {}).get("name"), (item.get("spec") or {})) for item in found]
    if not new.get("destination_rule"):
        ordered = [name for name, spec in named if spec.get("host") == state["service"]]
        ordered += [name for name, _spec in named]
        new["destination_rule"] = ordered[0] if ordered else ""
    listed = [subset.get("name") for name, spec in named if name == new["destination_rule"]
              for subset in spec.get("subsets") or [] if isinstance(subset, Mapping)]
    if state.get("resilience"):
        new["rule_definitions"] = [_with_profile(item, new["destination_rule"], state["canary"], state["resilience"])
                                   for item in found]
    new["add_canary_subset"] = state["canary"] not in (state.get("subsets") or []) and state["canary"] not in listed
    if state.get("kind") == "HTTPRoute":
        new["rule_definitions"], new["add_canary_subset"] = [], False
    return new


def _merged(current: Any, wanted: Any) -> Any:
    """``wanted``'s leaves over ``current``'s, as canary.istio.resilience merges a policy."""
    if isinstance(current, Mapping) and isinstance(wanted, Mapping):
        return {**current, **{key: _merged(current.get(key), value) for key, value in wanted.items()}}
    return wanted


def _with_profile(definition: Mapping[str, Any], rule_name: str, canary: str, profile: Mapping[str, Any]) -> dict:
    """A DestinationRule manifest whose canary subset carries the resilience profile: merging the manifests
    again on a resumed run then keeps the profile, and setting it changes nothing."""
    if (definition.get("metadata") or {}).get("name") != rule_name:
        return dict(definition)
    fields = resilience.traffic_policy_fields(profile["circuit_breaker"])
    spec = dict(definition.get("spec") or {})
    spec["subsets"] = [{**subset, "trafficPolicy": _merged(subset.get("trafficPolicy") or {}, fields)}
                       if isinstance(subset, Mapping) and subset.get("name") == canary else subset
                       for subset in spec.get("subsets") or []]
    return {**definition, "spec": spec}


def _where(state: Mapping[str, Any]) -> str:
    return f"{state['namespace']}/{state['virtual_service']}"


def _with_next(state: dict[str, Any], now: float, answer: str | None = None) -> dict[str, Any]:
    state["next"] = driver.next_action(state["drive"], state["moved"], state["analyses"], float(now), answer)
    return state


def plan(state: Mapping[str, Any], ratio_answer: Any, now: float) -> dict[str, Any]:
    """The driver's plan: the gate's share when it asked, else the pending steps."""
    new = dict(state)
    moves = [int(ratio_answer)] if "ratio" in state["plan"]["ask"] else list(state["pending_steps"])
    info = state.get("info") or {}
    decision = state["decision_input"] if state["goal"] == "release" else None
    new["drive"] = driver.plan_release(moves, int((info.get("weights") or {}).get(state["canary"]) or 0),
                                       state["analysis"] if state["goal"] == "release" else None, decision,
                                       list(info.get("history") or []), state["canary"],
                                       state["interactive"] and state["goal"] == "release", state["step_interval"])
    drive = new["drive"]
    new["looks_text"] = ""
    if drive.get("policy"):
        new["looks_text"] = (
            f"Analysis: up to {drive['looks_per_step']} look(s) at each of "
            f"{'%, '.join(str(s) for s in drive['shares'])}%; {drive['looks']} look(s) planned for the release"
            + (f", {drive['looks_before']} recorded before this run" if drive["looks_before"] else "")
            + ("; dry run: the analysis reports and never acts" if drive["policy"].get("dry_run") else ""))
    return _with_next(new, now)


def _split(state: dict[str, Any], result: Mapping[str, Any]) -> None:
    after = result.get("after")
    if after and state.get("kind") == "HTTPRoute":
        after = _as_versions(state, {"weights": after})["weights"]
    state["weights"] = dict(after or state.get("weights") or {})
    state["weights_text"] = _weights_text(state["weights"])


def moved(state: Mapping[str, Any], result: Mapping[str, Any], now: float) -> dict[str, Any]:
    new = dict(state)
    share = int(state["next"]["share"])
    _split(new, result)
    new["traffic_moved"] = bool(state["traffic_moved"]) or share > 0
    new["moved"] = [*state["moved"], {"share": share, "at": float(now)}]
    return _with_next(new, now)


def analysed(state: Mapping[str, Any], result: Mapping[str, Any], now: float) -> dict[str, Any]:
    new = dict(state)
    asked = state["next"]
    record = release.analysis_record(int(asked["share"]), result or {}, asked.get("look"), asked.get("looks"),
                                     asked.get("since"), float(now))
    new["analyses"] = [*state["analyses"], record]
    dry = " (dry run)" if (state.get("analysis") or {}).get("dry_run") else ""
    detail = record.get("msg") or record.get("summary")
    new["said"] = (f"Look {asked.get('look')} of {asked.get('looks')} at {asked['share']}%: "
                   f"{str(record['verdict']).upper()}{dry} - {detail}"
                   + (f"; {record['numbers']}" if record.get("numbers") else ""))
    return _with_next(new, now)


def _final(state: dict[str, Any]) -> dict[str, Any]:
    final = state["next"]
    state["decision"] = final["action"]
    state["verdict"] = {"decision": final["action"], "reason": final["reason"], "by": final["by"]}
    state["stopped"] = final["action"] == "stop"
    if final["action"] in ("promote", "rollback"):
        _swap(state, final["action"])
    where, text = _where(state), state["weights_text"]
    state["said"] = {
        "stop": (f"Stopped: {final['reason']}. {where} still sends {text}; nothing was promoted. Re-run when "
                 "Prometheus answers, or use the promote / rollback entry points"),
        "hold": (f"Holding: {where} sends {text}. A later run resumes from here, e.g. with "
                 "-e canary_release_decision=promote (or rollback), or the promote / rollback / set_ratio entry "
                 "points."),
    }.get(final["action"], "")
    state["analysis_said"] = (f"Analysis of {state['canary']}: {final['action']} - {final['reason']} "
                              f"({final['decided_by']})" if state.get("analysis") and final["action"] != "ask"
                              else "")
    return state


def settle(state: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _final(_with_next(dict(state), now))


def answered(state: Mapping[str, Any], answer: Any, now: float) -> dict[str, Any]:
    return _final(_with_next(dict(state), now, str(answer)))


def swapped(state: Mapping[str, Any], result: Mapping[str, Any], winner: str) -> dict[str, Any]:
    """All traffic went to ``winner``: the canary is promoted, or the base has it all back."""
    new = dict(state)
    _split(new, result)
    where, text = _where(state), new["weights_text"]
    if winner == state["canary"]:
        new["promoted"] = True
        kept = "" if state["after_promote"] == "remove" else \
            f"; {state['base']} is kept (canary_release_after_promote: keep)"
        new["said"] = f"{state['canary']} is promoted: {where} sends {text}{kept}"
    else:
        new["traffic_moved"] = False
        verdict = state.get("verdict") or {}
        by = f" - rolled back by the analysis: {verdict.get('reason')}" if verdict.get("by") == "analysis" else ""
        new["said"] = f"Rolled back: {where} sends {text}; the canary {state['canary']} is removed{by}"
    # The canary's resilience profile: after a promotion it stays unless canary_release_resilience_after_promote
    # is remove; after a rollback it goes with the canary's subset, and is removed only where that subset stays.
    promoted = winner == state["canary"]
    stays = promoted or not state.get("remove_loser", True)
    new["remove_resilience"] = bool(state.get("resilience")) and stays and (
        not promoted or state.get("resilience_after_promote") == "remove")
    if new["remove_resilience"]:
        new["said"] += f"; the resilience profile of subset {state['canary']} is removed"
    elif state.get("resilience") and promoted:
        new["said"] += (f"; subset {state['canary']} keeps its resilience profile "
                        "(canary_release_resilience_after_promote: keep)")
    # The history entry of this promotion or rollback carries the reason a caller gave.
    new["history_entry"] = ({"action": "promote" if winner == state["canary"] else "rollback",
                             "reason": state["reason"]}
                            if state.get("reason") and result.get("changed") else None)
    return new


def reported(state: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """Where the report was written (``path``, else ``error``) and whether it was ``kept`` in ``configmap``."""
    path, name, namespace = str(report.get("path") or ""), str(report.get("configmap") or ""), state["namespace"]
    kept = bool(report.get("kept") and name)
    said = f"Release report: {path}" if path else f"No release report: {report.get('error') or '?'}"
    if kept:
        said += (f"; kept in ConfigMap {namespace}/{name} (kubectl get configmap -n {namespace} {name} "
                 "-o jsonpath='{.data.report\\.html}' > report.html)")
    return {**state, "report": {"path": path, "configmap": f"{namespace}/{name}" if kept else "", "said": said}}


def put_back_on_failure(state: Mapping[str, Any]) -> bool:
    """Whether a failed release sends all traffic back to the base (set_ratio leaves it where it failed)."""
    return bool(state.get("goal") == "release" and state.get("rollback_on_failure") and state.get("traffic_moved")
                and not state.get("promoted") and not state.get("stopped"))


def failed(state: Mapping[str, Any], failure: Mapping[str, Any]) -> dict[str, Any]:
    new = dict(state)
    msg = str(failure.get("msg") or "").rstrip(".")
    new["put_back"] = put_back_on_failure(state)
    if new["put_back"]:
        after = f"All traffic was put back on {state['base']} (canary_release_rollback_on_failure)."
    elif state.get("stopped"):
        after = "Traffic was left as it was (canary_release_analysis.on_error is stop)."
    elif state.get("traffic_moved") and not state.get("rollback_on_failure"):
        after = "Traffic was left as it was (canary_release_rollback_on_failure is false)."
    else:
        after = "Traffic was not moved back."
    new["failure"] = (f"The canary release of {state['namespace']}/{state['service']} ({state['base']} to "
                      f"{state['canary']}) failed at task \"{failure.get('task') or '?'}\": {msg}. {after}")
    if state.get("goal") != "release":
        # One step or one swap, nothing to put back: the step's own error, as the module said it.
        new["failure"] = str(failure.get("msg") or "")
    return new


def _published(state: dict[str, Any]) -> dict[str, Any]:
    """What later tasks read: ``result`` (the fact ``canary_release_result``, which ``playbooks/waves.yml``
    reads for every cluster) and ``stage_artifacts`` (this host's ``canary_release_artifacts`` for AWX)."""
    verdict, report = state.get("verdict") or {}, state.get("report") or {}
    state["result"] = {"decision": state.get("decision") or "stop", "reason": verdict.get("reason") or "",
                       "analyses": list(state.get("analyses") or []), "report": report.get("path") or ""}
    state["acting"] = state["next"].get("action") in LOOP_ACTIONS and not state.get("finished") \
        and not state.get("fail") and state.get("plan") is not None and not state.get("refusal")
    if state["acting"]:
        # What the slot does (tasks/_step.yml): a pause (a gate's prompt, or the wait before a move or a look),
        # then the split (a move, or all traffic to the winner) or the analysis.
        upcoming = {key: value for key, value in state["next"].items() if key not in ("pause", "split", "seconds")}
        action, wait = upcoming["action"], int(upcoming.get("wait") or 0)
        upcoming.update(pause=action == "ask" or wait > 0, split=action in ("move", "promote", "rollback"),
                        **({"seconds": wait} if action != "ask" and wait > 0 else {}))
        state["next"] = upcoming
    state["args"] = module_arguments(state)
    state["stage_artifacts"] = release_artifacts(
        state["goal"], state["service"], state["namespace"], state["base"], state["canary"], state.get("weights"),
        state.get("decision") or state["goal"], verdict.get("reason") or "", list(state.get("analyses") or []),
        {"path": report.get("path") or "", "configmap": report.get("configmap") or ""})
    return state


def advance(state: Any, event: str, payload: Any = None, now: float = 0.0, extra: Any = None) -> dict[str, Any]:
    """The state after ``event`` (see the table at the top)."""
    return _published(_advance(state, event, payload, now, extra))


def _advance(state: Any, event: str, payload: Any, now: float, extra: Any) -> dict[str, Any]:
    if event not in EVENTS:
        raise CanaryInputError(f"event {event!r} is not one of {', '.join(EVENTS)}")
    if event == "start":
        return start({**(state or {}), "now": now})
    if not isinstance(state, Mapping) or "goal" not in state:
        raise CanaryInputError(f"event {event!r} needs the state that the event start began")
    payload = payload if payload is not None else {}
    # What to print and what to record are this event's: the next event starts without them.
    state = {**state, "say": [] if event != "checked" else state.get("say") or [], "fail": "", "history_entry": None}
    if event == "acted":
        return acted(state, payload, now)
    if event == "checked":
        return checked(state, payload)
    if event == "read":
        return read(state, _reads(payload), str(extra or ""), now)
    if event == "rules":
        return rules(state, payload or [])
    if event == "plan":
        return plan(state, payload or None, now)
    if event == "moved":
        return moved(state, payload, now)
    if event == "analysed":
        return analysed(state, payload, now)
    if event == "settle":
        return settle(state, now)
    if event == "answered":
        return answered(state, payload, now)
    if event == "swapped":
        return swapped(state, payload, str(extra or state.get("winner") or ""))
    if event == "reported":
        return reported(state, payload)
    return failed(state, payload)
