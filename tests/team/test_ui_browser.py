"""The MLflow UI in headless Chromium, as a person would use it: a finished tiny sslcore run,
its comparison.md artifact and a child run's metric, each reached by URL and found on the page.

Saves a screenshot of the run's comparison.md; SSLCORE_UPDATE_SCREENSHOT=1 also refreshes
docs/images/mlflow_run.png, the picture the README shows.
"""

from __future__ import annotations

import os
import shutil

import pytest
from mlflow import MlflowClient

import sslcore
from tests.team.services import ROOT, serve, tiny_config

CHROMIUM = shutil.which("chromium")
SCREENSHOT = ROOT / "docs" / "images" / "mlflow_run.png"
# Root cannot use Chromium's sandbox; the rest keep it off the network (closed here) and quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PAGE_TIMEOUT_MS = 30_000  # MLflow 3's UI is a React app: pages fill in after the load event

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: "
                       "apt-get install chromium (.ci/run does)"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """(server URL, parent run id): one tiny comparison, logged through mlflow/serve.sh
    (one worker, sqlite store) on a loopback port."""
    tmp = tmp_path_factory.mktemp("ui")
    with serve(tmp / "server", AUTH="none") as url, pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        report = sslcore.compare(tiny_config(tmp / "runs"), tracking_uri=url, progress=False)
        yield url, report.run_id


def test_ui_shows_the_run_its_report_and_a_child_metric(finished_run, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    url, run_id = finished_run
    client = MlflowClient(url)
    parent = client.get_run(run_id)
    experiment = parent.info.experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run_id}'")
    child = next(c for c in children if c.data.tags.get("sslcore.kind") == "downstream")
    report = open(client.download_artifacts(run_id, "comparison.md", str(tmp_path))).read()
    title = report.splitlines()[0].lstrip("# ").strip()  # the report's first heading
    run_page = f"{url}/#/experiments/{experiment}/runs"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(PAGE_TIMEOUT_MS)

            page.goto(f"{run_page}/{run_id}")  # the parent run: its name, status, children
            page.get_by_text(parent.info.run_name, exact=True).first.wait_for()
            page.get_by_text("Finished", exact=True).first.wait_for()
            for c in children:
                page.get_by_role("link", name=c.info.run_name).first.wait_for()

            page.goto(f"{run_page}/{child.info.run_id}")  # a child run's metric and value
            row = page.get_by_role("row").filter(has_text="test_auprc").first
            row.wait_for()
            assert repr(child.data.metrics["test_auprc"]) in row.inner_text()

            page.goto(f"{run_page}/{run_id}/artifactPath/comparison.md")  # the report, rendered
            page.get_by_role("heading", name=title).wait_for()
            page.get_by_text("hist_gbm").first.wait_for()
            assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
            if assistant.count():  # MLflow's chat panel: not ours, not in the picture
                assistant.first.click()
            shot = tmp_path / "mlflow_run.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("SSLCORE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
