"""The lab's stand-in for istiod's validating webhook.

``validation`` holds Istio's rules as pure functions; ``server`` answers the API server's
AdmissionReview requests over HTTPS on loopback. ``python -m lab up`` starts it
(``python -m lab.webhook --dir LAB_DIR``) and registers it with a ValidatingWebhookConfiguration.
"""

WEBHOOK_NAME = "validation.istio.io"  # the name istiod's default validator registers
CONFIGURATION_NAME = "istiod-default-validator"
INFO_FILE = "webhook.json"
# A second webhook, in a configuration of its own, on the same server stands in for the CEL half of a
# newer apiserver's schema validation: the x-kubernetes-validations rules of every other vendored
# CRD (Gateway API's and the rest of Istio's). For the three kinds above, validation.istio.io checks
# those rules first itself.
CRD_RULES_WEBHOOK_NAME = "x-kubernetes-validations.lab.canary-istio.io"
CRD_RULES_CONFIGURATION_NAME = "canary-istio-lab-crd-validations"

ISTIO_VALIDATED_RESOURCES = ("virtualservices", "destinationrules", "gateways")


def webhook_rules() -> dict[tuple[str, str], list[dict[str, object]]]:
    """The admission rules of each of the lab's webhooks, by (configuration name, webhook name)."""
    def rule(groups: list[str], resources: list[str]) -> dict[str, object]:
        return {"apiGroups": groups, "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": resources}

    return {
        (CONFIGURATION_NAME, WEBHOOK_NAME): [rule(["networking.istio.io"], list(ISTIO_VALIDATED_RESOURCES))],
        (CRD_RULES_CONFIGURATION_NAME, CRD_RULES_WEBHOOK_NAME): [
            rule(["gateway.networking.k8s.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io"],
                 ["*"]),
            rule(["networking.istio.io"], ["serviceentries", "sidecars", "workloadentries", "workloadgroups",
                                           "envoyfilters", "proxyconfigs"]),
        ],
    }
