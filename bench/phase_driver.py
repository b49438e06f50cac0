"""Times a module's connection steps in a fresh process: ``phase_driver.py ours|kubernetes KUBECONFIG NS``.

``ours``: the collection's own connection code (``module_utils._client``), as its modules use it:
settings from the kubeconfig, the TLS context, then the requests of one ``traffic_split`` (GET of
the VirtualService, GET of the DestinationRule) on one kept-alive connection; last, for comparison,
a context with the system's CA store (``ssl.create_default_context()``, what ``_client`` used before
it trusted only the cluster's CA).
``kubernetes``: what kubernetes.core does before its first request: import the ``kubernetes``
package and its dynamic client, load the kubeconfig.

``rules``: how a split finds the DestinationRules for a host in a namespace with many of them: the
full LIST (read from etcd) against the watch cache's table of names and hosts
(``Istio.cached_column``), each timed ``RULE_ROUNDS`` times in turn on one connection.

Prints one JSON line of seconds per step (``rules``: median seconds and the number of rules). Reads
only; writes nothing.
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()


def _stopwatch(marks: dict[str, float]):
    """``mark(name)`` records the seconds since the previous mark (or since the call) under ``name``."""
    last = [time.perf_counter()]

    def mark(name: str) -> None:
        now = time.perf_counter()
        marks[name] = now - last[0]
        last[0] = now

    return mark


def ours(kubeconfig: str, namespace: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    mark = _stopwatch(marks)

    from ansible.module_utils import basic  # noqa: F401 - the import is what is measured
    mark("import_ansible_basic")
    from ansible_collections.canary.istio.plugins.module_utils import _client, _istio, _traffic  # noqa: F401
    mark("import_collection")
    # _client imports PyYAML when it reads the kubeconfig; a module process pays that import, the
    # controller's worker has it already (Ansible uses it): timed apart from the parsing.
    import yaml  # noqa: F401
    mark("import_yaml")
    settings = _client.resolve_settings({"kubeconfig": kubeconfig, "context": None})
    mark("kubeconfig")
    client = _client.KubeClient(settings)
    mark("tls_context")
    istio = _istio.Istio(client)
    istio.get("VirtualService", namespace, "one-ts")
    mark("first_request")
    istio.get("DestinationRule", namespace, "one-ts")
    mark("second_request")
    istio.get("VirtualService", namespace, "one-ts")
    mark("third_request")
    client.close()
    # For comparison, what the TLS context cost before it trusted only the cluster's CA: the
    # system's whole CA store (``ssl.create_default_context``). Timed last, so it changes nothing above.
    import ssl
    mark = _stopwatch(marks)
    ssl.create_default_context()
    mark("system_ca_context")
    return marks


def kubernetes(kubeconfig: str, namespace: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    mark = _stopwatch(marks)

    from ansible.module_utils import basic  # noqa: F401
    mark("import_ansible_basic")
    import kubernetes  # noqa: F401
    from kubernetes import client, config
    from kubernetes.dynamic import DynamicClient  # noqa: F401
    mark("import_kubernetes")
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    mark("kubeconfig")
    api = client.ApiClient(configuration)
    request = api.param_serialize("GET", f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/one-ts",
                                  header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
    api.call_api(*request).read()
    mark("first_request")
    request = api.param_serialize("GET", f"/apis/networking.istio.io/v1/namespaces/{namespace}/destinationrules/one-ts",
                                  header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
    api.call_api(*request).read()
    mark("second_request")
    return marks


RULE_ROUNDS = 15


def rules(kubeconfig: str, namespace: str) -> dict[str, float]:
    from ansible_collections.canary.istio.plugins.module_utils import _client, _istio

    istio = _istio.Istio(_client.KubeClient(_client.resolve_settings({"kubeconfig": kubeconfig, "context": None})))
    count = len(istio.list("DestinationRule", namespace))  # also opens the connection
    times: dict[str, list[float]] = {"list": [], "table": []}
    for _ in range(RULE_ROUNDS):
        for name, read in (("list", lambda: istio.list("DestinationRule", namespace)),
                           ("table", lambda: istio.cached_column("DestinationRule", namespace, "Host"))):
            started = time.perf_counter()
            read()
            times[name].append(time.perf_counter() - started)
    istio.client.close()
    return {"rules": count, **{name: sorted(values)[len(values) // 2] for name, values in times.items()}}


def main() -> int:
    mode, kubeconfig, namespace = sys.argv[1:4]
    if mode == "rules":
        print(json.dumps(rules(kubeconfig, namespace)))
        return 0
    marks = ours(kubeconfig, namespace) if mode == "ours" else kubernetes(kubeconfig, namespace)
    marks["total"] = time.perf_counter() - STARTED
    print(json.dumps(marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
