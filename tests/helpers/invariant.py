"""Invariant 1 of DESIGN.md, checked independently of the collection's own code.

Every route of a stored VirtualService goes only to subsets its DestinationRule defines, and a
weighted route's weights are integers 0..100 summing to 100.
"""

from __future__ import annotations

from typing import Any


def invariant_problems(vs: dict[str, Any], subsets: set[str]) -> list[str]:
    version = vs.get("metadata", {}).get("resourceVersion")
    problems = []
    for route in vs["spec"].get("http", []):
        destinations = route.get("route", [])
        for destination in destinations:
            subset = destination["destination"].get("subset")
            if subset not in subsets:
                problems.append(f"rv {version}: routes to subset {subset}, which does not exist")
        if len(destinations) > 1 or any("weight" in d for d in destinations):
            weights = [d.get("weight", 0) for d in destinations]
            if sum(weights) != 100 or any(not isinstance(w, int) or not 0 <= w <= 100 for w in weights):
                problems.append(f"rv {version}: weights {weights}")
    return problems
