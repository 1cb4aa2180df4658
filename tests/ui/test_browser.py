"""The Dagster UI in a real browser (Debian's chromium, driven by Playwright) against `dagster dev`: webserver and
daemon on a temporary instance, as a user would meet them.

A video dropped into the drop folder is picked up by the sensor; a second one is added with the ``add_video``
job from the launchpad and ingested from the job page's "Materialize all" dialog. Then the pages a user looks
at must show what they promise: the timeline preview inline, the timeline and contact sheet behind "Show
Markdown", the asset checks, the plugin and cost tables, the project cost report; no "Upstream data missing"
warning on memory's materialize dialog; every run findable by project. Screenshots of each page go to
``artifacts/ui/`` (``VIDINTEL_UI_ARTIFACTS``). `make ui-test` runs this file alone; `make test` runs it too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("VIDINTEL_UI_ARTIFACTS", REPO / "artifacts" / "ui"))
CHROMIUM = os.environ.get("VIDINTEL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
LOCATION = "vidintel_pipeline.definitions"

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make install")
if not CHROMIUM:
    pytest.skip(
        "no chromium on PATH: `make ui-test` installs Debian's chromium when run as root "
        "(Playwright cannot download its own browsers here)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, ok, timeout_s: float, every_s: float = 1.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        got = ok()
        if got:
            return got
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def ui(home, monkeypatch):
    """`dagster dev` (webserver + daemon) on the test's own instance; yields its base URL."""
    from vidintel_pipeline.runtime.instance import ensure_instance_home

    monkeypatch.setenv("VIDINTEL_SENSOR_SETTLE_S", "1")
    monkeypatch.setenv("VIDINTEL_SENSOR_INTERVAL_S", "3")
    ensure_instance_home()  # the embedded dagster.yaml: run queue, routing launcher
    port = _free_port()
    log = open(home / "dagster-dev.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1"]
        + ["-p", str(port)],
        cwd=REPO,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/server_info", timeout=2) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None and pytest.fail((home / "dagster-dev.log").read_text()[-3000:])

    try:
        _wait("the webserver", up, 180)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _run_done(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def test_the_ui_shows_pictures_checks_and_costs_for_sensor_and_launchpad_runs(ui, home, demo_video):
    from playwright.sync_api import expect, sync_playwright

    from vidintel_pipeline.runtime.instance import get_instance

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    instance = get_instance()
    shots: list[str] = []

    # 1. a video dropped into the drop folder: the sensor adopts it and its run succeeds
    inbox = home / "data/ingest/incoming/uitest"
    inbox.mkdir(parents=True)
    shutil.copy(demo_video[0], inbox / "dropped.mp4")
    [sensor_run] = _wait(
        "the sensor's run",
        lambda: [r for r in instance.get_runs(dg.RunsFilter(tags={"vidintel/project": "uitest"})) if r.is_finished],
        300,
    )
    assert sensor_run.status == dg.DagsterRunStatus.SUCCESS, (home / "dagster-dev.log").read_text()[-3000:]
    assert sensor_run.tags["dagster/partition"] == "uitest__dropped"
    # from now on only what the browser launches runs
    subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "sensor", "stop", "new_video_sensor", "-w", "workspace.yaml"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=180,
    )

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1600, "height": 1200})
        # Dagster's "join the community" prompt (shown on localhost until dismissed) would cover the pages
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        page = context.new_page()
        page.set_default_timeout(30_000)

        def goto(path: str) -> None:
            page.goto(ui + path)
            page.wait_for_load_state("networkidle")
            skip = page.get_by_role("button", name="Skip")  # Dagster's "join the community" prompt, first visit
            if skip.count():
                skip.click()

        def shot(name: str) -> None:
            path = ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(str(path))

        def launched_run_id() -> str:
            page.wait_for_url("**/runs/*", timeout=60_000)
            return page.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]

        # 2. add a second video from the launchpad of add_video
        goto(f"/locations/{LOCATION}/jobs/add_video/playground")
        config = (
            f"ops:\n  store_video:\n    config:\n      source: {demo_video[0]}\n"
            "      project_id: uitest\n      video_id: second\n"
        )
        page.wait_for_selector(".CodeMirror")
        page.evaluate("(c) => document.querySelector('.CodeMirror').CodeMirror.setValue(c)", config)
        expect(page.get_by_text("No errors")).to_be_visible()
        shot("add-video-launchpad")
        expect(page.get_by_role("button", name="Launch Run")).to_be_enabled()
        page.get_by_role("button", name="Launch Run").click()
        added = _wait("the add_video run", lambda: _run_done(instance, launched_run_id()), 180)
        assert added.status == dg.DagsterRunStatus.SUCCESS

        # 3. ingest it from the job page: "Materialize all", partition uitest__second, one run
        goto(f"/locations/{LOCATION}/jobs/ingest_video")
        page.get_by_role("button", name="Materialize all").click()
        dialog = page.get_by_role("dialog").last
        dialog.get_by_text("Select a partition or create one").click()
        page.keyboard.type("uitest__second")
        page.get_by_text("uitest__second", exact=True).locator("visible=true").last.click()
        page.keyboard.press("Escape")
        expect(dialog.get_by_role("button", name="Launch 1 run")).to_be_enabled()
        assert "Upstream data missing" not in dialog.inner_text()
        shot("materialize-dialog")
        before = {r.run_id for r in instance.get_runs()}
        dialog.get_by_role("button", name="Launch 1 run").click()  # a toast links the run; the page stays
        [run_id] = _wait(
            "the launched run",
            lambda: [
                r.run_id
                for r in instance.get_runs(dg.RunsFilter(job_name="ingest_video"))
                if r.run_id not in before and r.tags.get("dagster/partition") == "uitest__second"
            ],
            60,
        )
        launched = _wait("the launched run to finish", lambda: _run_done(instance, run_id), 300)
        assert launched.status == dg.DagsterRunStatus.SUCCESS, (home / "dagster-dev.log").read_text()[-3000:]
        # findable by project: the routing launcher tagged it from its partition
        assert launched.tags.get("vidintel/project") == "uitest" and launched.tags.get("vidintel/video") == "second"
        goto("/runs?q%5B0%5D=tag%3Avidintel%2Fproject%3Duitest")
        expect(page.get_by_text(launched.run_id[:8]).first).to_be_visible()
        expect(page.get_by_text(sensor_run.run_id[:8]).first).to_be_visible()
        shot("runs-by-project")

        # 4. memory's page for the launched partition: the preview inline, the pictures behind "Show Markdown"
        goto("/assets/memory?partition=uitest__second")
        preview = page.locator("img[src^='data:image/png']").first
        expect(preview).to_be_visible()
        assert page.evaluate("(img) => img.naturalWidth", preview.element_handle()) == 320
        expect(page.get_by_text("cost_usd").first).to_be_visible()  # the plugin_runs table
        expect(page.get_by_text("faster_whisper").first).to_be_visible()
        shot("memory-overview")
        for key, mime in (("timeline", "png"), ("contact_sheet", "jpeg")):
            row = page.locator("tr", has=page.get_by_text(key, exact=True))
            row.get_by_text("[Show Markdown]").click()
            img = page.get_by_role("dialog").locator(f"img[src^='data:image/{mime}']")
            expect(img).to_be_visible()
            size = page.evaluate("(i) => [i.naturalWidth, i.naturalHeight]", img.element_handle())
            assert size[0] >= 300 and size[1] >= 80, (key, size)
            page.wait_for_timeout(500)  # the dialog fades in
            shot(key)
            page.get_by_role("dialog").get_by_role("button", name="Close").click()

        # no "Upstream data missing" on memory's own materialize dialog (its upstreams are all in ingest_video)
        page.get_by_role("button", name="Materialize").first.click()
        dialog = page.get_by_role("dialog").last
        expect(dialog.get_by_text("Partition selection")).to_be_visible()
        page.wait_for_timeout(1500)  # the warnings query runs after the dialog opens
        assert "Upstream data missing" not in dialog.inner_text()
        dialog.get_by_role("button", name="Cancel").click()

        # 5. the checks, on the Checks tab
        goto("/assets/memory?view=checks")
        for name in ("markers_in_range", "no_plugin_failed", "transcript_when_speech", "cost_within_budget"):
            expect(page.get_by_text(name).first).to_be_visible()
        expect(page.get_by_text("Succeeded", exact=True)).to_have_count(4)
        shot("memory-checks")

        # 6. the project cost report, refreshed by costs_automation without anyone materializing it
        def report_has_both() -> bool:
            ev = instance.get_latest_materialization_event(dg.AssetKey("project_costs"))
            return bool(ev) and ev.asset_materialization.metadata["projects"].value.get("uitest", {}).get("videos") == 2

        _wait("project_costs to list both videos", report_has_both, 180, every_s=2)
        goto("/assets/project_costs")
        report = page.locator("tr", has=page.get_by_text("report", exact=True)).first
        expect(report.get_by_text("uitest").first).to_be_visible()
        by_plugin = page.locator("tr", has=page.get_by_text("by_plugin", exact=True)).first
        for plugin in ("local_shots", "local_scenes", "local_prompt", "faster_whisper"):  # every plugin that ran
            expect(by_plugin.get_by_text(plugin, exact=True)).to_be_visible()
        shot("project-costs")
        browser.close()
    print("\nUI screenshots:\n  " + "\n  ".join(shots))
