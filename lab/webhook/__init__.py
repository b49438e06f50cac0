"""The lab's stand-in for istiod's validating webhook.

``validation`` holds Istio's rules as pure functions; ``server`` answers the API server's
AdmissionReview requests over HTTPS on loopback. ``python -m lab up`` starts it
(``python -m lab.webhook --dir LAB_DIR``) and registers it with a ValidatingWebhookConfiguration.
"""

WEBHOOK_NAME = "validation.istio.io"  # the name istiod's default validator registers
CONFIGURATION_NAME = "istiod-default-validator"
INFO_FILE = "webhook.json"
