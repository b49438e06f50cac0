"""The walk-through's pictures (docs/images/awx-*.png) are rendered from the JSON AWX holds: the canary
survey and the canary job's artifacts. Rendering again shows every question and every artifact, and
a picture that is not blank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import awx_pictures
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e]


def test_the_pictures_show_the_survey_and_the_artifacts(tmp_path: Path):
    survey = json.loads((REPO_ROOT / "awx" / "surveys" / "canary.json").read_text())
    page = awx_pictures.survey_page(survey, "canary release")
    for question in survey["spec"]:
        assert question["question_name"] in page
    artifacts = awx_pictures.sample_artifacts()["canary_release_artifacts"]["localhost"]
    shown = awx_pictures.artifacts_page(awx_pictures.sample_artifacts(), "canary release #43")
    for key in ("share: 25", "verdict: pass", "bounds:", "configmap: shop/canary-report-ratings"):
        assert key in shown, key
    assert artifacts["weights"] == {"v1": 75, "v2": 25}

    from PIL import Image

    for path in awx_pictures.render(tmp_path):
        image = Image.open(path).convert("L")
        dark = sum(1 for pixel in image.getdata() if pixel < 100)
        assert dark > 2000, f"{path.name} looks blank ({dark} dark pixels)"
    for name in ("awx-survey.png", "awx-artifacts.png"):
        assert (REPO_ROOT / "docs" / "images" / name).is_file(), f"{name}: run python -m tests.helpers.awx_pictures"
