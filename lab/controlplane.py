"""The lab's control plane: a real etcd and kube-apiserver on loopback.

One lab lives in one directory (``lab.json`` there is its state). Two labs in two directories
run side by side on their own free ports. Every process a lab starts is recorded with its pid
and command line, so ``down`` stops exactly those and nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lab import procfs
from lab.kube import KubeClient, KubeError, create_all
from lab.webhook import INFO_FILE as WEBHOOK_INFO_FILE
from lab.webhook import WEBHOOK_NAME, webhook_rules

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / ".lab" / "default"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "canary-istio-lab"
# Istio's own CRDs, vendored unmodified from a named release (lab/crds/README.md says which).
CRD_FILE = Path(__file__).resolve().parent / "crds" / "crd-all.gen.yaml"
# Gateway API's standard-channel CRDs, vendored unmodified (lab/crds/gateway-api/README.md says
# which release); adapted for the 1.20 apiserver as they are loaded (adapt_crd_for_1_20).
GATEWAY_API_CRD_DIR = Path(__file__).resolve().parent / "crds" / "gateway-api"
BINARIES = ("etcd", "kube-apiserver")
# The processes "up" is not complete without; stopped in reverse order by "down".
CONTROL_PLANE = ("etcd", "apiserver", "webhook")

# Static token users. "viewer" may read (get/list/watch) but not write; "nobody" has no
# permission beyond what every authenticated user gets; "dataplane" is the lab's own data plane
# (a separate name so the audit log can tell its requests from a test's).
TOKEN_USERS = {
    "admin": ("lab:admin", "system:masters"),
    "dataplane": ("lab:dataplane", "system:masters"),
    "viewer": ("lab:viewer", ""),
    "nobody": ("lab:nobody", ""),
}


# The lab's own RBAC: "viewer" may read the kinds a release touches.
LAB_RBAC = (
    ("/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "lab-viewer"},
      "rules": [{"apiGroups": ["", "apps", "networking.istio.io"], "resources": ["*"],
                 "verbs": ["get", "list", "watch"]}]}),
    ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "lab-viewer"},
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lab-viewer"},
      "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lab:viewer"}]}),
)
SERVICE_RANGE = "10.96.0.0/24"
# Raised when what a provisioned etcd holds changes in a way etcd_template's key does not see.
TEMPLATE_FORMAT = 1
TEMPLATE_UNUSED_DAYS = 7

PROCESS_NAMES = {"etcd": "etcd", "apiserver": "kube-apiserver", "webhook": "the validation webhook (lab.webhook)"}


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says why."""


def say(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr, flush=True)


# --- binaries ---------------------------------------------------------------------------------

def _binary_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def find_binaries(provision: bool = True) -> dict[str, str]:
    """Finds etcd and kube-apiserver: KUBEBUILDER_ASSETS, then PATH, then the cache, else builds them."""
    found: dict[str, str] = {}
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    cache_bin = CACHE_DIR / "bin"
    for name in BINARIES:
        candidates = []
        if assets:
            candidates.append(Path(assets) / name)
        on_path = shutil.which(name)
        if on_path and name != "etcd":
            candidates.append(Path(on_path))
        candidates.append(cache_bin / name)
        if on_path and name == "etcd":
            # Debian's etcd is fine; the cache holds a copy of it once provisioned.
            candidates.append(Path(on_path))
        for candidate in candidates:
            if candidate.is_file() and os.access(candidate, os.X_OK) and candidate.stat().st_size > 0:
                found[name] = str(candidate)
                break
    missing = [name for name in BINARIES if name not in found]
    if missing and provision:
        say(f"{', '.join(missing)} not found in KUBEBUILDER_ASSETS, PATH or {cache_bin}; "
            "building from Debian's packages (first time only, about 10 minutes)")
        script = Path(__file__).resolve().parent / "provision.sh"
        result = subprocess.run(["bash", str(script), str(cache_bin)], check=False)
        if result.returncode != 0:
            raise LabError(f"provisioning {', '.join(missing)} failed (exit {result.returncode}); "
                           f"see the output of {script} above")
        return find_binaries(provision=False)
    if missing:
        raise LabError(f"missing lab binaries: {', '.join(missing)} (looked in KUBEBUILDER_ASSETS, "
                       f"PATH and {cache_bin})")
    return found


def load_crds(groups: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Istio's CRDs from the vendored file (only those of ``groups``, e.g. ``("networking.istio.io",)``)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 0.3 s instead of 3 s for 870 kB
    docs = [d for d in yaml.load_all(CRD_FILE.read_text(), Loader=loader) if d]
    return [d for d in docs if groups is None or d["spec"]["group"] in groups]


def load_gateway_api_crds(adapt: bool = True) -> list[dict[str, Any]]:
    """Gateway API's standard CRDs as vendored; with ``adapt``, as the lab's 1.20 apiserver takes them.

    The vendored directory also holds the release's ValidatingAdmissionPolicy (an API 1.20 lacks):
    only the CustomResourceDefinitions are returned.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = []
    for path in sorted(GATEWAY_API_CRD_DIR.glob("gateway.networking.k8s.io_*.yaml")):
        docs.extend(d for d in yaml.load_all(path.read_text(), Loader=loader)
                    if d and d.get("kind") == "CustomResourceDefinition")
    return [adapt_crd_for_1_20(d) for d in docs] if adapt else docs


def adapt_crd_for_1_20(crd: dict[str, Any]) -> dict[str, Any]:
    """The one load-time adaptation the 1.20 apiserver needs for Gateway API's CRDs (in place).

    - ``default: ""`` is dropped: 1.20 refuses it ("must be of type string: null").
    - ``group`` string properties get ``nullable: true``: 1.20 reads ``group: ""`` in an object as
      null and would refuse the core-group (Service) parentRefs and backendRefs mesh routing needs.
      Nullable only widens what is accepted; the value is stored as sent, so ``""`` stays ``""``.

    Nothing else changes: types, patterns, enums, limits and the CEL rules (which 1.20 ignores and
    the lab's webhook enforces) are kept as published.
    """
    def walk(schema: Any) -> None:
        if isinstance(schema, list):
            for item in schema:
                walk(item)
            return
        if not isinstance(schema, dict):
            return
        if schema.get("default") == "":
            del schema["default"]
        properties = schema.get("properties")
        if isinstance(properties, dict):
            group = properties.get("group")
            if isinstance(group, dict) and group.get("type") == "string":
                group["nullable"] = True
        for key, value in schema.items():
            if key != "x-kubernetes-validations":
                walk(value)

    for version in crd["spec"]["versions"]:
        walk((version.get("schema") or {}).get("openAPIV3Schema"))
    return crd


# --- certificates and credentials -------------------------------------------------------------

def _write_pki(pki: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(path: Path, key: Any) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)

    def name(common: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"canary-istio-lab-ca-{secrets.token_hex(4)}")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write_key(pki / "ca.key", ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(common: str, org: str | None, server: bool) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(common, org)).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    for stem, common, org, server in (("apiserver", "kube-apiserver", None, True),
                                      ("webhook", "lab-istio-validation-webhook", None, True),
                                      ("admin-client", "lab:cert-admin", "system:masters", False)):
        key, cert = leaf(common, org, server)
        write_key(pki / f"{stem}.key", key)
        (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # The apiserver's own loopback client and health probes are noise for request counting.
        {"level": "None", "users": ["system:apiserver"]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*"]},
        {"level": "Metadata"},
    ],
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- state ------------------------------------------------------------------------------------

def state_path(lab_dir: Path) -> Path:
    return Path(lab_dir) / "lab.json"


def load_state(lab_dir: Path | str = DEFAULT_DIR) -> dict[str, Any]:
    path = state_path(Path(lab_dir))
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {lab_dir} (run: python -m lab up --dir {lab_dir})") from None


def _save_state(state: dict[str, Any]) -> None:
    path = state_path(Path(state["dir"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)


def _pids_with_marker(marker: str, executables: set[str]) -> list[int]:
    """Pids of the lab's own processes (etcd, kube-apiserver, webhook) whose arguments name this lab's directory."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        ours = args and (args[0] in executables or (args[1:3] == ["-m", "lab.webhook"]))
        if ours and any(marker + "/" in arg or arg == marker for arg in args[1:]):
            pids.append(int(entry.name))
    return pids


def process_alive(record: dict[str, Any]) -> bool:
    """True when the recorded pid still runs the recorded command (pids are reused)."""
    return procfs.runs(record.get("pid"), record.get("marker", ""))


def still_starting(record: dict[str, Any], proc: Path = procfs.PROC) -> bool:
    """True when the recorded process runs, or is still inside exec: Popen returns once the kernel
    wakes it from vfork, which happens before the new program's arguments are in place, so for a
    moment /proc/<pid>/cmdline reads empty and the marker cannot be found in it yet."""
    seen = procfs.seen(record["pid"], proc) if record.get("pid") else None
    if seen is None or seen[0] in procfs.GONE:
        return False
    return not seen[1] or record.get("marker", "") in seen[1]


def stop_process(record: dict[str, Any], timeout: float = 10.0) -> None:
    if not process_alive(record):
        return
    pid = record["pid"]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig) if record.get("group") else os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            if not process_alive(record):
                return
            time.sleep(0.05)


# --- provisioned etcd data, kept once per machine ----------------------------------------------
#
# Installing the 25 CRDs costs the apiserver about 20 s of CPU in this version (1.20): it merges and
# re-serialises its whole OpenAPI document once per CRD, and the aggregator does again. An apiserver
# that starts on an etcd already holding them builds that document once (its CRD OpenAPI controller
# reads every CRD before it merges). So the first lab with a given apiserver, etcd and set of CRDs
# provisions an empty etcd as before and keeps a copy of its data, stopped cleanly; every later lab
# starts on a copy of that. The key covers what the data depends on; what differs per lab (ports,
# certificates, tokens, the webhook's URL) is not in etcd.

def etcd_template(binaries: dict[str, str], versions: dict[str, str], crds: list[dict[str, Any]]) -> Path:
    """Where the provisioned etcd data for these binaries and CRDs is kept (it may not exist yet)."""
    digest = hashlib.sha256()
    for name in sorted(binaries):
        info = os.stat(binaries[name])
        digest.update(f"{name}={binaries[name]}:{info.st_size}:{info.st_mtime_ns}:{versions.get(name)}\n".encode())
    digest.update(json.dumps([TEMPLATE_FORMAT, SERVICE_RANGE, LAB_RBAC, crds], sort_keys=True).encode())
    return CACHE_DIR / "etcd-templates" / digest.hexdigest()[:20]


def keep_template(data_dir: Path, template: Path) -> None:
    """Copies a stopped etcd's data to ``template``, atomically: a lab starting meanwhile sees all
    of it or none. When two labs provision at once, the first copy stays. Templates no lab used for
    TEMPLATE_UNUSED_DAYS (other CRDs or binaries) are removed."""
    template.parent.mkdir(parents=True, exist_ok=True)
    partial = template.parent / f".partial-{template.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(data_dir, partial)
    try:
        partial.rename(template)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    cutoff = time.time() - TEMPLATE_UNUSED_DAYS * 86400
    for other in template.parent.iterdir():
        with contextlib.suppress(OSError):
            if other != template and other.stat().st_mtime < cutoff:
                shutil.rmtree(other)


def copy_template(template: Path, data_dir: Path) -> bool:
    """Copies the kept data into a new lab's etcd directory; False when there is none (yet)."""
    try:
        shutil.copytree(template, data_dir)
    except FileNotFoundError:
        shutil.rmtree(data_dir, ignore_errors=True)
        return False
    with contextlib.suppress(OSError):
        os.utime(template)  # in use: not pruned
    return True


# --- up / down --------------------------------------------------------------------------------

class Lab:
    """Starts and stops one lab in one directory."""

    def __init__(self, lab_dir: Path | str = DEFAULT_DIR, name: str | None = None):
        self.dir = Path(lab_dir).resolve()
        self.name = name or self.dir.name

    # Each process's command line carries the lab directory, so a reused pid is never mistaken
    # for ours.
    def _spawn(self, state: dict[str, Any], key: str, argv: list[str], log: Path,
               extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **extra_env} if extra_env else None
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.dir, env=env)
        record = {"pid": proc.pid, "marker": str(self.dir), "log": str(log), "argv": argv[0], "group": True,
                  "command": argv, "extra_env": extra_env, "name": PROCESS_NAMES.get(key, key)}
        state["processes"][key] = record
        _save_state(state)
        return record

    def _wait_port(self, record: dict[str, Any], port: int, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not still_starting(record):
                raise LabError(f"{what} ({record['argv']}) exited during start-up; last lines of "
                               f"{record['log']}:\n{_tail(Path(record['log']))}")
            if _port_open(port):
                return
            time.sleep(0.1)
        raise LabError(f"{what} ({record['argv']}) did not listen on 127.0.0.1:{port} within {timeout:.0f}s; "
                       f"last lines of {record['log']}:\n{_tail(Path(record['log']))}")

    def up(self, provision: bool = True, timeout: float = 120.0) -> dict[str, Any]:
        if state_path(self.dir).exists():
            existing = json.loads(state_path(self.dir).read_text())
            if all(process_alive(p) for k, p in existing.get("processes", {}).items() if k in CONTROL_PLANE):
                say(f"lab {self.name} already up in {self.dir}")
                return existing
            self.down(quiet=True)
        binaries = find_binaries(provision=provision)
        started = time.monotonic()
        if self.dir.exists():
            for sub in ("etcd", "pki", "logs"):
                shutil.rmtree(self.dir / sub, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = self.dir / "pki"
        _write_pki(pki)
        tokens = {user: secrets.token_hex(24) for user in TOKEN_USERS}
        token_file = pki / "tokens.csv"
        token_file.write_text("".join(
            f'{tokens[key]},{username},{username},"{groups}"\n' for key, (username, groups) in TOKEN_USERS.items()))
        token_file.chmod(0o600)
        policy = self.dir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        for attempt in (1, 2, 3):
            ports = {"etcd_client": _free_port(), "etcd_peer": _free_port(), "apiserver": _free_port()}
            state: dict[str, Any] = {
                "name": self.name, "dir": str(self.dir), "server": f"https://127.0.0.1:{ports['apiserver']}",
                "ca_file": str(pki / "ca.crt"), "kubeconfig": str(self.dir / "kubeconfig"), "tokens": tokens,
                "client_cert": str(pki / "admin-client.crt"), "client_key": str(pki / "admin-client.key"),
                "audit_log": str(self.dir / "audit.log"), "ports": ports, "processes": {},
                "binaries": binaries,
                "versions": {name: _binary_version(path) for name, path in binaries.items()},
            }
            _save_state(state)
            try:
                self._start(state, binaries, ports, pki, token_file, policy, timeout)
                break
            except LabError as exc:
                self.down(quiet=True)
                # A free port picked by another process between our check and the bind: pick again.
                if "address already in use" not in str(exc) or attempt == 3:
                    raise
                say(f"a port was taken meanwhile ({exc.args[0].splitlines()[0]}); retrying with other ports")
                shutil.rmtree(self.dir / "etcd", ignore_errors=True)
            except BaseException:
                self.down(quiet=True)
                raise
        state["started_at"] = datetime.datetime.now(datetime.UTC).isoformat()
        state["startup_seconds"] = round(time.monotonic() - started, 2)
        _save_state(state)
        say(f"lab {self.name} up in {state['startup_seconds']}s: {state['server']} "
            f"(KUBECONFIG={state['kubeconfig']})")
        return state

    def _start(self, state: dict[str, Any], binaries: dict[str, str], ports: dict[str, int], pki: Path,
               token_file: Path, policy: Path, timeout: float) -> None:
        # The webhook's interpreter starts while etcd and the apiserver do; it is registered only
        # once it listens and the apiserver is ready (it fails closed: registered too early, every
        # Istio write would fail).
        (self.dir / WEBHOOK_INFO_FILE).unlink(missing_ok=True)
        python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
        webhook = self._spawn(state, "webhook", [sys.executable, "-m", "lab.webhook", "--dir", str(self.dir)],
                              self.dir / "logs" / "webhook.log", extra_env={"PYTHONPATH": python_path})
        docs = load_crds() + load_gateway_api_crds()
        template = etcd_template(binaries, state["versions"], docs)
        copied = copy_template(template, self.dir / "etcd")
        state["etcd_template"] = {"path": str(template), "copied": copied}
        if not copied:
            # The first lab with these binaries and CRDs: an empty etcd, provisioned, then kept.
            say(f"provisioning etcd with {len(docs)} CRDs once; later labs start from a copy ({template})")
            client, apiserver, deadline = self._start_store(state, binaries, ports, pki, token_file, policy,
                                                            timeout)
            self._create_crds(state, docs, deadline, apiserver)
            self._wait_crds_served(client, docs, deadline, apiserver)
            for path, body in LAB_RBAC:
                client.create(path, body)
            self._wait(lambda: client.get("/api/v1/namespaces/default"), deadline, apiserver,
                       "the default namespace")
            for key in ("apiserver", "etcd"):
                stop_process(state["processes"][key], timeout=30)
            keep_template(self.dir / "etcd", template)
        try:
            client, apiserver, deadline = self._start_store(state, binaries, ports, pki, token_file, policy,
                                                            timeout)
            self._wait_crds_served(client, docs, deadline, apiserver)
        except LabError:
            if copied and not process_alive(state["processes"]["etcd"]):
                # Kept data etcd cannot start on would fail every lab after this one: the next provisions anew.
                # (A slow start on a loaded machine, or a port taken meanwhile, leaves etcd running: kept.)
                say(f"removing the kept etcd data {template}: etcd did not start on a copy of it")
                shutil.rmtree(template, ignore_errors=True)
            raise
        self._wait(lambda: client.get("/api/v1/namespaces/default"), deadline, apiserver,
                   "the default namespace")
        self._register_webhook(client, state, webhook, apiserver, deadline)

    def _start_store(self, state: dict[str, Any], binaries: dict[str, str], ports: dict[str, int], pki: Path,
                     token_file: Path, policy: Path, timeout: float) -> tuple[KubeClient, dict[str, Any], float]:
        """Starts etcd on the lab's data directory and the apiserver on it; returns once /readyz is ok."""
        logs = self.dir / "logs"
        etcd_url = f"http://127.0.0.1:{ports['etcd_client']}"
        peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
        # On a copied data directory etcd keeps the member it holds (the --initial-* flags apply
        # to a new one only); one member on loopback never calls its peer address.
        etcd = self._spawn(state, "etcd", [
            binaries["etcd"], "--name", "lab", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"lab={peer_url}", "--initial-cluster-state", "new",
            "--log-level", "warn", "--logger", "zap",
        ], logs / "etcd.log")
        self._wait_port(etcd, ports["etcd_client"], "etcd", 30)
        apiserver = self._spawn(state, "apiserver", [
            binaries["kube-apiserver"],
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}", "--insecure-port=0",
            f"--cert-dir={pki}", f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}", f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={token_file}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}", "--endpoint-reconciler-type=none",
            f"--audit-log-path={state['audit_log']}", f"--audit-policy-file={policy}",
            "--audit-log-mode=blocking", "--audit-log-maxsize=0",
            "--enable-priority-and-fairness=false",
            "--v=0",
        ], logs / "kube-apiserver.log")
        self._wait_port(apiserver, ports["apiserver"], "kube-apiserver", 60)
        self._write_kubeconfig(state)
        client = KubeClient.from_state(state, timeout=10)
        deadline = time.monotonic() + timeout
        self._wait(lambda: client.request("GET", "/readyz") is not None, deadline, apiserver, "/readyz ok")
        state["versions"]["apiserver_reported"] = client.get("/version").get("gitVersion")
        return client, apiserver, deadline

    def _wait(self, probe: Any, deadline: float, record: dict[str, Any], what: str) -> Any:
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not still_starting(record):
                raise LabError(f"{record.get('name', 'kube-apiserver')} exited while waiting for {what}; "
                               f"last lines of {record['log']}:\n{_tail(Path(record['log']))}")
            try:
                result = probe()
                if result:
                    return result
            except (KubeError, OSError) as exc:
                last = exc
            time.sleep(0.2)
        raise LabError(f"timed out waiting for {what} (last error: {last}); last lines of "
                       f"{record['log']}:\n{_tail(Path(record['log']))}")

    def _create_crds(self, state: dict[str, Any], docs: list[dict[str, Any]], deadline: float,
                     record: dict[str, Any]) -> None:
        # Posted as they are: the API server drops the CEL rules 1.20 does not know and keeps the
        # rest (types, required fields, pruning), as a cluster with Istio installed does. Gateway
        # API's get the one documented adaptation (adapt_crd_for_1_20).
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

        def create() -> bool:
            # The apiserver spends most of a create checking the (large) schema: two connections
            # keep both cores busy. Existing ones (409, after a retry) are left as they are.
            create_all(state["server"], state["tokens"]["admin"], state["ca_file"],
                       [(base, doc) for doc in docs], concurrency=2)
            return True

        self._wait(create, deadline, record, f"creating {len(docs)} CRDs")

    def _wait_crds_served(self, client: KubeClient, docs: list[dict[str, Any]], deadline: float,
                          record: dict[str, Any]) -> None:
        expected: dict[str, set[str]] = {}
        for doc in docs:
            for version in doc["spec"]["versions"]:
                if version.get("served"):
                    expected.setdefault(f"/apis/{doc['spec']['group']}/{version['name']}", set()).add(
                        doc["spec"]["names"]["plural"])

        def all_discoverable() -> bool:
            # Discovery lists a CRD's resource once it is Established: a few kB per probe, where
            # listing the CRDs themselves would move megabytes of schema while the apiserver works.
            for path in list(expected):
                try:
                    listed = {r["name"] for r in client.get(path).get("resources") or []}
                except KubeError as exc:
                    if exc.status == 404:
                        return False
                    raise
                if not expected[path] <= listed:
                    return False
                del expected[path]
            return True

        self._wait(all_discoverable, deadline, record, f"{len(docs)} CRDs Established and discoverable")
        # Discovery lags Established by a moment; wait until the groups are served.
        self._wait(lambda: client.get("/apis/networking.istio.io/v1/virtualservices"), deadline, record,
                   "networking.istio.io/v1 to be served")
        self._wait(lambda: client.get("/apis/gateway.networking.k8s.io/v1/httproutes"), deadline, record,
                   "gateway.networking.k8s.io/v1 to be served")

    def _register_webhook(self, client: KubeClient, state: dict[str, Any], webhook: dict[str, Any],
                          apiserver: dict[str, Any], deadline: float) -> None:
        """Registers the lab's Istio validation webhook once it listens, and waits until it judges."""
        def listening() -> dict[str, Any] | None:
            try:
                info = json.loads((self.dir / WEBHOOK_INFO_FILE).read_text())
            except (OSError, ValueError):
                return None
            return info if info.get("pid") == webhook["pid"] else None

        info = self._wait(listening, deadline, webhook, "the validation webhook to listen")
        state["ports"]["webhook"] = info["port"]
        state["webhook_url"] = info["url"]
        _save_state(state)
        ca_bundle = base64.b64encode(Path(state["ca_file"]).read_bytes()).decode()
        # One configuration per webhook: istiod's own (validation.istio.io) as istiod registers it, and
        # the lab's stand-in for a newer apiserver's CEL checks of the other kinds.
        for (configuration_name, name), rules in webhook_rules().items():
            configuration = {
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": configuration_name,
                             "labels": {"app.kubernetes.io/part-of": "canary-istio-lab"}},
                "webhooks": [{
                    "name": name,
                    # A URL webhook: kube-apiserver calls loopback directly, no Service needed.
                    "clientConfig": {"url": info["url"], "caBundle": ca_bundle},
                    "rules": rules,
                    "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "matchPolicy": "Equivalent", "timeoutSeconds": 10,
                }],
            }
            client.create("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", configuration)
        # The apiserver picks the configuration up through an informer: probe with a server-side dry
        # run of a VirtualService istiod refuses, until the refusal comes from the webhook.
        probe = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                 "metadata": {"name": "lab-webhook-probe"},
                 "spec": {"hosts": ["lab-webhook-probe"],
                          "http": [{"route": [{"destination": {"host": "lab-webhook-probe"}, "weight": -1}]}]}}

        def refused() -> bool:
            if not process_alive(webhook):
                raise LabError(f"the validation webhook exited; last lines of {webhook['log']}:\n"
                               f"{_tail(Path(webhook['log']))}")
            try:
                client.request("POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices", probe,
                               query={"dryRun": "All"})
            except KubeError as exc:
                if exc.status == 400 and WEBHOOK_NAME in str(exc):
                    return True
                raise
            return False

        self._wait(refused, deadline, apiserver, "the validation webhook to judge VirtualServices")

    def _write_kubeconfig(self, state: dict[str, Any]) -> None:
        users = [{"name": f"lab-{key}", "user": {"token": state["tokens"][key]}} for key in TOKEN_USERS]
        users.append({"name": "lab-cert-admin",
                      "user": {"client-certificate": state["client_cert"], "client-key": state["client_key"]}})
        contexts = [{"name": "lab" if key == "admin" else f"lab-{key}",
                     "context": {"cluster": "lab", "user": f"lab-{key}", "namespace": "default"}}
                    for key in TOKEN_USERS]
        contexts.append({"name": "lab-cert", "context": {"cluster": "lab", "user": "lab-cert-admin"}})
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "lab", "preferences": {},
                  "clusters": [{"name": "lab", "cluster": {"server": state["server"],
                                                           "certificate-authority": state["ca_file"]}}],
                  "users": users, "contexts": contexts}
        path = Path(state["kubeconfig"])
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def down(self, quiet: bool = False) -> bool:
        path = state_path(self.dir)
        if not path.exists():
            if not quiet:
                say(f"no lab in {self.dir}")
            return False
        state = json.loads(path.read_text())
        if "dataplane" in state.get("processes", {}) or (self.dir / "dataplane.json").exists():
            try:
                from lab import dataplane
                dataplane.stop(self.dir)
            except Exception as exc:
                say(f"stopping the data plane: {exc}")
        # Reverse start order: the apiserver before its etcd.
        for key in reversed(list(state.get("processes", {}))):
            stop_process(state["processes"][key])
        # Anything else still running with this lab's directory on its command line is ours too
        # (a start interrupted between spawning a process and recording it).
        for pid in _pids_with_marker(str(self.dir), set(state.get("binaries", {}).values())):
            stop_process({"pid": pid, "marker": str(self.dir), "group": False})
        path.unlink()
        (self.dir / WEBHOOK_INFO_FILE).unlink(missing_ok=True)
        if not quiet:
            say(f"lab {state.get('name')} down ({self.dir})")
        return True

    # --- faults, for the reliability tests -------------------------------------------------

    def kill(self, key: str) -> None:
        """Kills one component ("etcd" or "apiserver") abruptly, as a crash would."""
        state = load_state(self.dir)
        record = state["processes"][key]
        if process_alive(record):
            os.killpg(record["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while process_alive(record) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(record["pid"], os.WNOHANG)
                time.sleep(0.05)

    def start_again(self, key: str, timeout: float = 60.0) -> None:
        """Starts a killed component again with the same ports, certificates and data."""
        state = load_state(self.dir)
        record = state["processes"][key]
        if process_alive(record):
            return
        port = state["ports"][{"apiserver": "apiserver", "webhook": "webhook"}.get(key, "etcd_client")]
        command = list(record["command"])
        if key == "webhook" and "--port" not in command:
            command += ["--port", str(port)]  # the registered URL names this port
        fresh = self._spawn(state, key, command, Path(record["log"]), extra_env=record.get("extra_env"))
        self._wait_port(fresh, port, key, timeout)
        if key == "apiserver":
            client = KubeClient.from_state(state, timeout=10)
            self._wait(lambda: client.request("GET", "/readyz") is not None, time.monotonic() + timeout, fresh,
                       "/readyz ok after restart")

    def status(self) -> dict[str, Any]:
        state = load_state(self.dir)
        processes = {key: {"pid": rec["pid"], "running": process_alive(rec)}
                     for key, rec in state["processes"].items()}
        return {"name": state["name"], "dir": state["dir"], "server": state["server"],
                "kubeconfig": state["kubeconfig"], "ports": state["ports"], "versions": state["versions"],
                "processes": processes, "webhook_url": state.get("webhook_url"),
                "up": all(p["running"] for k, p in processes.items() if k in CONTROL_PLANE)}
