"""What a person sees: the product page rendered by headless Chromium shows the stars the probe counted."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.traffic.conftest import TrafficLab
from tests.traffic.test_release_traffic import add_version, probe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def screenshot(url: str, path: Path, profile: Path) -> None:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1100,800",
                    f"--screenshot={path}", url], check=True, capture_output=True, timeout=60)


def star_pixels(path: Path) -> dict[str, int]:
    """Pixels of the page that are star-red, and dark ones (black stars, text, the navigation bar)."""
    from PIL import Image
    image = Image.open(path).convert("RGB")
    red = dark = 0
    for r, g, b in image.getdata():
        if r > 170 and g < 70 and b < 70:
            red += 1
        elif r < 60 and g < 60 and b < 60:
            dark += 1
    return {"red": red, "dark": dark}


def test_screenshot_shows_the_stars_the_probe_counted(traffic_lab: TrafficLab, bookinfo_ns: str, tmp_path: Path):
    lab, ns = traffic_lab, bookinfo_ns
    add_version(lab, ns, "v2")
    add_version(lab, ns, "v3")
    shots = {}
    for version in ("v1", "v2", "v3"):
        weights = {v: (100 if v == version else 0) for v in ("v1", "v2", "v3")}
        lab.module("traffic_split", ns, name="reviews", weights=weights)
        time.sleep(1.0)
        counted = probe(lab, 30, expect={version: 100}, max_errors=0)
        assert not counted.get("failed") and counted["counts"][version] == 30, counted.get("msg")
        shots[version] = tmp_path / f"productpage-{version}.png"
        screenshot(f"{lab.gateway}/productpage", shots[version], tmp_path / f"profile-{version}")
    pixels = {version: star_pixels(path) for version, path in shots.items()}
    # v3: red stars; v1 and v2: none.
    assert pixels["v3"]["red"] > 200 and pixels["v1"]["red"] < 20 and pixels["v2"]["red"] < 20, pixels
    # v2: black stars add dark pixels to the same page v1 shows without stars.
    assert pixels["v2"]["dark"] > pixels["v1"]["dark"] + 200, pixels
    # Keep the pictures for people: build/screenshots/ (not in git).
    keep = Path(__file__).resolve().parents[2] / "build" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    for path in shots.values():
        shutil.copy(path, keep / path.name)
