"""Istio's Bookinfo sample as four small stdlib HTTP services, for the local lab.

Run one with ``python -m bookinfo serve reviews --port 9080 --version v2`` (or
``python -m bookinfo.reviews ...``).  Services that call others send their requests to
``BOOKINFO_MESH_URL`` (a proxy standing in for the sidecar) with the ``Host`` header naming the
service, the way an application in a mesh addresses ``reviews:9080``; without that variable they
call ``http://<service>:9080`` directly, as the original sample does inside a cluster.
"""

SERVICES = ("productpage", "details", "reviews", "ratings")
