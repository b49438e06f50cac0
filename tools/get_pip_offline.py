"""Offline stand-in for the get-pip script ansible-test downloads to bootstrap its virtualenvs.

These machines cannot reach the host ansible-test fetches get-pip from. ansible-test first looks
in ~/.ansible/test/cache/get_pip_<version>.py, so `make lint` puts this file there. It installs
pip with ensurepip, then installs what get-pip was asked for through the machine's own pip
configuration (which is what makes the package index reachable here).
"""

import ensurepip
import os
import subprocess
import sys


def main() -> None:
    ensurepip.bootstrap(upgrade=True)
    # ensurepip turns pip's configuration off; the machine's pip.conf must apply again.
    os.environ.pop("PIP_CONFIG_FILE", None)
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args])


if __name__ == "__main__":
    main()
