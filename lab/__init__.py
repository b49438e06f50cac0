"""The embedded lab: a real kube-apiserver + etcd on loopback with Istio CRDs, and a data plane.

The lab stands in for a cluster with Istio. It never imports the collection (``plugins/``).
"""
