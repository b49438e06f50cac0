"""Pictures for docs/awx.md: what AWX shows, rendered from the JSON AWX would hold, with no AWX.

- the canary job template's survey (``awx/surveys/canary.json``) as AWX's launch form lays it out:
  one field per question, its label, description, default and a star for the required ones;
- the canary job's artifacts (its ``set_stats`` data, ``canary_release_artifacts``) as AWX's job
  details page shows them: YAML under "Artifacts".

``python -m tests.helpers.awx_pictures [DIR]`` writes ``awx-survey.png`` and ``awx-artifacts.png``
(default: docs/images) with headless Chromium, as the report screenshots are taken.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.collection import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STYLE = """body{font-family:'Red Hat Text',Arial,sans-serif;margin:0;background:#f0f0f0;color:#151515}
header{background:#151515;color:#fff;padding:10px 20px;font-size:15px} header b{color:#73bcf7}
main{background:#fff;margin:16px;padding:20px 24px;border-top:3px solid #06c}
h1{font-size:20px;margin:0 0 4px} .sub{color:#6a6e73;font-size:13px;margin-bottom:16px}
.q{margin:0 0 14px} label{font-weight:600;font-size:14px} .req{color:#c9190b}
.help{color:#6a6e73;font-size:12px;margin:2px 0 4px} .field{border:1px solid #8a8d90;padding:6px 8px;
font-size:14px;min-height:18px;background:#fff;max-width:640px} .field.empty{color:#8a8d90}
.grid{display:grid;grid-template-columns:1fr 1fr;column-gap:24px} pre{background:#f5f5f5;border:1px solid #d2d2d2;
padding:10px;font-size:12.5px;line-height:1.35;overflow:hidden} dt{font-weight:600;font-size:13px;color:#6a6e73}
dd{margin:0 0 10px;font-size:14px} .ok{color:#3e8635;font-weight:600}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{STYLE}</style></head><body>"
            f"<header><b>AWX</b> &nbsp; {html.escape(title)}</header><main>{body}</main></body></html>")


def survey_page(survey: dict[str, Any], template: str) -> str:
    rows = []
    for question in survey["spec"]:
        default = question.get("default", "")
        if question["type"] == "multiplechoice":
            choices = question["choices"] if isinstance(question["choices"], list) else question["choices"].split("\n")
            listed = ", ".join(map(html.escape, choices))
            value = f"{html.escape(str(default))} &#9662; <span class='help'>({listed})</span>"
        else:
            value = html.escape(str(default))
        empty = " empty" if default in ("", None) else ""
        rows.append(f"<div class='q'><label>{'<span class=req>* </span>' if question['required'] else ''}"
                    f"{html.escape(question['question_name'])}</label>"
                    f"<div class='help'>{html.escape(question.get('question_description', ''))}</div>"
                    f"<div class='field{empty}'>{value or '&nbsp;'}</div></div>")
    return _page(f"Templates / {template} / Launch", f"<h1>Launch | {html.escape(template)}</h1>"
                 f"<div class='sub'>Survey: {html.escape(survey['name'])}</div>{''.join(rows)}")


def artifacts_page(artifacts: dict[str, Any], job: str) -> str:
    text = yaml.safe_dump(artifacts, sort_keys=False, default_flow_style=None, width=110)
    template = job.partition(" #")[0]
    details = (f"<dl class='grid'><div><dt>Status</dt><dd class='ok'>&#10004; Successful</dd><dt>Job template</dt>"
               f"<dd>{html.escape(template)}</dd></div><div><dt>Playbook</dt><dd>playbooks/canary.yml</dd>"
               f"<dt>Next node</dt><dd>Promote the canary? (approval)</dd></div></dl>")
    return _page(f"Jobs / {job} / Details", f"<h1>{html.escape(job)}</h1>{details}<dt>Artifacts</dt>"
                 f"<pre>{html.escape(text)}</pre>")


def sample_artifacts() -> dict[str, Any]:
    """What a canary job at 25 % with one passing look publishes (built by the code the role uses)."""
    from tests.helpers.collection import ensure_collection_path

    root = str(ensure_collection_path())
    if root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.canary.istio.plugins.module_utils._logic.artifacts import release_artifacts

    record = {"step": 25, "look": 1, "verdict": "pass", "summary": "every check passed",
              "checks": [{"name": "request-success-rate", "verdict": "pass", "canary": {"value": 99.9},
                          "base": {"value": 99.8}, "min": 99, "max": None,
                          "bounds": {"canary_low": 99.3, "limit": 99}},
                         {"name": "request-duration", "verdict": "pass", "canary": {"value": 48.0},
                          "base": {"value": 45.0}, "min": None, "max": 500,
                          "bounds": {"canary_high": 61.0, "limit": 500}}]}
    return {"canary_release_artifacts": {"localhost": release_artifacts(
        "release", "ratings", "shop", "v1", "v2", {"v1": 75, "v2": 25}, "hold", "", [record],
        {"path": "/runner/project/canary-report-shop-ratings.html", "configmap": "shop/canary-report-ratings"})}}


def screenshot(page: str, path: Path, height: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "page.html"
        source.write_text(page)
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={Path(work) / 'profile'}",
                        f"--window-size=900,{height}", f"--screenshot={path}", source.as_uri()],
                       check=True, capture_output=True, timeout=60)


def render(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    survey = json.loads((REPO_ROOT / "awx" / "surveys" / "canary.json").read_text())
    shots = [(directory / "awx-survey.png", survey_page(survey, "canary release"), 1300),
             (directory / "awx-artifacts.png", artifacts_page(sample_artifacts(), "canary release #43"), 1000)]
    for path, page, height in shots:
        screenshot(page, path, height)
    return [path for path, _page, _height in shots]


if __name__ == "__main__":
    for written in render(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "images"):
        print(written)
