"""Makes ``build/collections/ansible_collections/canary/istio`` point at this checkout.

ansible-test, ansible-playbook (ANSIBLE_COLLECTIONS_PATH) and the tests import the collection
through that path. Run as ``python -m tests.helpers.collection`` to print the collections root.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / "build" / "collections"
COLLECTION_DIR = COLLECTIONS_ROOT / "ansible_collections" / "canary" / "istio"


def ensure_collection_path() -> Path:
    COLLECTION_DIR.parent.mkdir(parents=True, exist_ok=True)
    if COLLECTION_DIR.is_symlink() and os.readlink(COLLECTION_DIR) == str(REPO_ROOT):
        return COLLECTIONS_ROOT
    if COLLECTION_DIR.is_symlink() or COLLECTION_DIR.exists():
        COLLECTION_DIR.unlink()
    COLLECTION_DIR.symlink_to(REPO_ROOT, target_is_directory=True)
    return COLLECTIONS_ROOT


if __name__ == "__main__":
    print(ensure_collection_path())
