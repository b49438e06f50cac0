"""Turns the decision benchmark's results into docs/decisions.md and docs/decisions.zh-CN.md.

As bench/report.py does for the performance pages: the figures are computed here once, the words
live in two templates (``templates/decisions.md.j2``, ``templates/decisions.zh-CN.md.j2``), so a
figure cannot differ between the languages (tests/unit/bench/test_bench_decisions.py checks it).
"""

from __future__ import annotations

import math
from typing import Any

from bench.report import EN, ZH, _environment

TEMPLATE_FILES = {EN: "decisions.md.j2", ZH: "decisions.zh-CN.md.j2"}
PEERS = ("flagger", "argo", "kayenta")
# The goals (#22): healthy false rollback, bad false promotion, time to a decision.
HEALTHY_ROLLBACK_GOAL = 0.01
BAD_PROMOTION_GOAL = 0.05
TIME_GOAL = 1.5


def pct(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"  # noqa: RUF001 - the en dash: no value
    return f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "–"  # noqa: RUF001
    return f"{value:,.{digits}f}"


def scenario(row: dict[str, Any]) -> dict[str, str]:
    """A scenario's figures, for the templates to put into words."""
    return {"kind": row["kind"], "errors": f"{row['error_factor']:g}",
            "p99": f"{(row['latency_factor'] - 1) * 100:.0f}", "base": f"{row['base_error'] * 100:g}",
            "rate": f"{row['rate']:g}", "steps": "/".join(str(step) for step in row["steps"])}


def _row(row: dict[str, Any]) -> dict[str, Any]:
    ours = row["rules"]["ours"]
    cells = {"scenario": scenario(row), "kind": row["kind"], "min": num(row["min_success"], 0),
             "hold": pct(ours["hold"]), "seconds": num(ours["seconds_median"]),
             "requests": num(ours["requests_median"]), "fixed": num(row.get("fixed_sample_requests")),
             "least_pass": num(ours.get("least_pass_requests"))}
    for name in ("ours", *PEERS):
        rule = row["rules"].get(name, {})
        cells[f"{name}_rollback"] = pct(rule.get("rollback"))
        cells[f"{name}_promote"] = pct(rule.get("promote"))
        cells[f"{name}_seconds"] = num(rule.get("seconds_median"))
    reference = row.get("fixed_sample_requests")
    ratio = ours["requests_median"] / reference if reference and ours["requests_median"] else None
    cells["ratio"] = num(ratio, 2)
    in_looks = ours["requests_median"] / _fixed_in_looks(row) if reference and ours["requests_median"] else None
    cells["ratio_looks"] = num(in_looks, 2)
    cells["first_look"] = num(row.get("first_look_requests"))
    cells["documented"] = num(row.get("documented_requests"))
    return cells


TIMES = "\u00d7"


def _fixed(row: dict[str, Any]) -> float:
    return row["fixed_sample_requests"]


def _fixed_in_looks(row: dict[str, Any]) -> float:
    """The fixed-sample minimum rounded up to whole looks: no look-based rule decides between two looks."""
    per_look = row.get("first_look_requests") or 0
    if per_look <= 0:
        return row["fixed_sample_requests"]
    return math.ceil(row["fixed_sample_requests"] / per_look) * per_look


def _fixed_or_window(row: dict[str, Any]) -> float:
    """The fixed-sample minimum, or the canary's requests in one window if more: no look comes sooner."""
    return max(row["fixed_sample_requests"], row.get("window_requests") or 0)


def _planned_row(row: dict[str, Any]) -> dict[str, Any]:
    ours, before = row["rules"]["ours"], row.get("every_interval") or {}
    fixed, median = row.get("fixed_sample_requests"), ours["requests_median"]
    return {"scenario": scenario(row), "kind": row["kind"], "promote": pct(ours["promote"]),
            "rollback": pct(ours["rollback"]), "hold": pct(ours["hold"]), "seconds": num(ours["seconds_median"]),
            "requests": num(median), "fixed": num(fixed), "window": num(row.get("window_requests")),
            "ratio": num(median / fixed, 2) if fixed and median else "–",  # noqa: RUF001
            "ratio_window": num(median / _fixed_or_window(row), 2) if fixed and median else "–",  # noqa: RUF001
            "bound": num(_fixed_or_window(row) / fixed, 2) if fixed else "–",  # noqa: RUF001
            "before_requests": num(before.get("requests_median")), "before_hold": pct(before.get("hold")),
            "before_rollback": pct(before.get("rollback")), "before_promote": pct(before.get("promote")),
            "before_ratio": num(before["requests_median"] / fixed, 2) if fixed and before.get("requests_median")
            else "–"}  # noqa: RUF001


def _time_goals(rows: list[dict[str, Any]], references) -> list[dict[str, Any]]:
    """The time goal per reference: ours' worst median canary requests to decide over the reference."""
    out = []
    for goal, reference in references if rows else ():
        worst = max(rows, key=lambda row, ref=reference: row["rules"]["ours"]["requests_median"] / ref(row))
        ratio = worst["rules"]["ours"]["requests_median"] / reference(worst)
        out.append({"id": goal, "value": f"{ratio:.2f}{TIMES}", "where": [scenario(worst)], "met": ratio <= TIME_GOAL})
    return out


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the issue: its figure and whether the measurement meets it (None: not measured)."""
    rows = results["scenarios"]
    healthy = [row for row in rows if row["kind"] == "healthy"]
    bad = [row for row in rows if row["kind"] == "bad"]
    out = []
    if healthy:
        worst = max(healthy, key=lambda row: row["rules"]["ours"]["rollback"])
        value = worst["rules"]["ours"]["rollback"]
        out.append({"id": "healthy", "value": pct(value, 2), "where": [scenario(worst)],
                    "met": value <= HEALTHY_ROLLBACK_GOAL})
    passed = [row for row in rows if row["rules"]["ours"].get("least_pass_requests") is not None]
    if passed:
        closest = min(passed, key=lambda row: row["rules"]["ours"]["least_pass_requests"] / row["documented_requests"])
        least = closest["rules"]["ours"]["least_pass_requests"]
        out.append({"id": "evidence", "value": f"{num(least)} / {num(closest['documented_requests'])}",
                    "where": [scenario(closest)], "met": least >= closest["documented_requests"]})
    if bad:
        worst = max(bad, key=lambda row: row["rules"]["ours"]["promote"])
        value = worst["rules"]["ours"]["promote"]
        out.append({"id": "bad", "value": pct(value, 2), "where": [scenario(worst)],
                    "met": value <= BAD_PROMOTION_GOAL})
    timed = [row for row in bad if row.get("fixed_sample_requests") and row["rules"]["ours"]["requests_median"]]
    out.extend(_time_goals(timed, (("time", _fixed), ("time-looks", _fixed_in_looks))))
    planned = [row for row in (results.get("planned") or {}).get("scenarios", [])
               if row["kind"] == "bad" and row.get("fixed_sample_requests") and row["rules"]["ours"]["requests_median"]]
    out.extend(_time_goals(planned, (("time-planned", _fixed), ("time-window", _fixed_or_window))))
    replications = results["replications"]
    for peer in PEERS:
        lost = []
        for row in rows:
            ours, theirs = row["rules"]["ours"], row["rules"].get(peer)
            if theirs is None:
                continue
            wrong = {"healthy": "rollback", "bad": "promote"}.get(row["kind"])
            if wrong and ours[wrong] > theirs[wrong]:
                # Scored strictly; the releases each rule decided wrongly say by how much.
                lost.append({**scenario(row), "ours_wrong": num(ours[wrong] * replications),
                             "theirs_wrong": num(theirs[wrong] * replications)})
        compared = [row for row in rows if row["kind"] in ("healthy", "bad")]
        out.append({"id": f"peer-{peer}", "value": f"{len(compared) - len(lost)}/{len(compared)}",
                    "where": lost, "met": not lost})
    return out


def context(results: dict[str, Any]) -> dict[str, Any]:
    rows = [_row(row) for row in results["scenarios"]]
    e2e = results.get("e2e")
    e2e_rows = []
    if e2e and e2e.get("scenarios"):
        for row in e2e["scenarios"]:
            e2e_rows.append({"scenario": scenario(row), "replications": row["replications"],
                             "promote": row["e2e"]["promote"], "rollback": row["e2e"]["rollback"],
                             "hold": row["e2e"]["hold"], "same": row["same_decision_as_pure"],
                             "pure_promote": pct(row["pure_rates"]["promote"]),
                             "pure_rollback": pct(row["pure_rates"]["rollback"]),
                             "pure_hold": pct(row["pure_rates"]["hold"]), "agrees": row["agrees"]})
    plan = results["plan"]
    return {"date": results.get("date", "–"), "replications": f"{results['replications']:,}",  # noqa: RUF001
            "seed": results["seed"], "plan": plan, "evidence": results.get("evidence", {}),
            "evidence_commit": results.get("evidence_commit") or "–",  # noqa: RUF001
            "seconds": results.get("simulation_seconds"),
            "healthy": [row for row in rows if row["kind"] == "healthy"],
            "bad": [row for row in rows if row["kind"] == "bad"],
            "between": [row for row in rows if row["kind"] == "between"],
            "goals": goals(results), "e2e": e2e, "e2e_rows": e2e_rows,
            "planned": [_planned_row(row) for row in (results.get("planned") or {}).get("scenarios", [])],
            "planned_plan": (results.get("planned") or {}).get("plan")}


def render(results: dict[str, Any], lang: str) -> str:
    return _environment().get_template(TEMPLATE_FILES[lang]).render(context(results))


def console(results: dict[str, Any]) -> str:
    """The tables printed at the end of ``python -m bench --only decisions``."""
    tables = _environment().get_template(TEMPLATE_FILES[EN]).make_module(context(results))
    return "\n".join(["", "Decision quality (whole releases)", str(tables.goals_table()).rstrip("\n"), "",
                      str(tables.healthy_table()).rstrip("\n"), "", str(tables.bad_table()).rstrip("\n"), ""])


__all__ = ["EN", "ZH", "console", "context", "goals", "render"]
