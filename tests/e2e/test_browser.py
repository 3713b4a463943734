"""A person's path through the site, in a real browser (headless Chromium) against the real server.

Playwright drives Debian's Chromium (Playwright's own browser download cannot work here); the
server is uvicorn serving the ASGI app in a subprocess (tests/e2e/server.py). The job page must
follow a job to its end over the websocket alone: the tests mark the window when they land on the
job page and check that the mark is still there at the end (no reload, no navigation).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.server import start_server, wait_for_final

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MTDNA = SHARED_DATA / "genomes" / "human" / "human_mtDNA_rCRS.fa"
READS = SHARED_DATA / "fastq" / "novaseq_800_reads_phred33.fq"
HOSTILE = SHARED_DATA / "badinputs" / "26_injection_header.fa"
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOT_FOR_DOCS = REPO / "docs" / "screenshots" / "job_page.png"
USER, PASSWORD = "lab", "a long enough passphrase"
JOB_URL = re.compile(r".*/jobs/[0-9a-f-]{36}/$")
FINAL_TIMEOUT_MS = 120_000
# Runs in every page before its own scripts: after each websocket message htmx has swapped in,
# note the stage list the page now shows (what a person watching would have seen, in order).
RECORD_STAGES_SHOWN = """
window.__stagesShown = [];
document.addEventListener("htmx:wsAfterMessage", () => {
  const stages = Array.from(document.querySelectorAll("#job-progress li[data-stage]"));
  window.__stagesShown.push({
    stages: stages.map(li => [li.dataset.stage, li.dataset.stageStatus]),
    progress: Number(document.getElementById("job-progress-bar").value),
  });
});
"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing: apt-get install chromium (see .ci/run)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # One worker thread, so that a job queued behind another is seen from its very first stage.
    running = start_server(
        tmp_path_factory.mktemp("browser"), extra_env={"MEDGENOMICS_WORKER_THREADS": "1"}
    )
    running.create_user(USER, PASSWORD)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        # Stops Playwright's event loop too: the Django tests after these must not find one.
        playwright.stop()


@pytest.fixture
def page(server, browser):
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1100, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(30_000)
    context.add_init_script(RECORD_STAGES_SHOWN)
    page = context.new_page()
    page.console_errors = []  # CSP violations and script errors show up here
    page.on(
        "console",
        lambda message: (
            page.console_errors.append(f"{message.text} {message.location}")
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/jobs/")
    yield page
    context.close()


@pytest.fixture
def busy_worker(server):
    """Keeps the server's only worker busy for a few seconds with a large upload, so the next
    job waits in the queue and its page is loaded before its first stage starts."""
    client = server.login(USER, PASSWORD)
    data = large_fastq()
    response = client.post("/api/upload", files={"file": ("busy.fq", data)})
    assert response.status_code == 202, response.text
    yield response.json()["job_id"]
    wait_for_final(client, response.json()["job_id"])
    client.close()


def large_fastq() -> bytes:
    """Real reads repeated to 44 MB (under the 50 MB limit): a job that takes a few seconds, so
    that each of its stages is on screen long enough to be seen."""
    return READS.read_bytes() * 150


def land_on_job_page(page) -> str:
    """Wait for the job page, mark the window, and return the job id."""
    page.wait_for_url(JOB_URL)
    page.evaluate("window.__landedOnJobPage = 'still here'")
    return page.url.rstrip("/").rsplit("/", 1)[1]


def assert_no_navigation_since_landing(page) -> None:
    assert page.evaluate("window.__landedOnJobPage") == "still here"
    assert page.console_errors == [], page.console_errors


def stage_states(page) -> list[tuple[str, str]]:
    pairs = page.eval_on_selector_all(
        "#job-progress li[data-stage]",
        "items => items.map(li => [li.dataset.stage, li.dataset.stageStatus])",
    )
    return [tuple(pair) for pair in pairs]


def upload_through_the_page(page, path: Path) -> None:
    page.goto("/jobs/upload/")
    page.set_input_files("#id_file", str(path))
    page.get_by_role("button", name="Upload and process").click()


def save_screenshot(page, name: str, *, for_docs: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    if for_docs:
        SCREENSHOT_FOR_DOCS.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOT_FOR_DOCS)
    return path


def shown_live(page) -> list[tuple[tuple[tuple[str, str], ...], int]]:
    """The distinct (stage list, progress) states the page showed, in order."""
    shown = [
        (tuple(tuple(pair) for pair in entry["stages"]), entry["progress"])
        for entry in page.evaluate("window.__stagesShown")
    ]
    return [state for i, state in enumerate(shown) if i == 0 or state != shown[i - 1]]


def test_a_fasta_upload_is_followed_live_to_its_results(page, busy_worker):
    upload_through_the_page(page, MTDNA)
    job_id = land_on_job_page(page)
    # Queued behind the busy job: the page was rendered before the job's first stage.
    assert set(dict(stage_states(page)).values()) <= {"pending", "not run"}
    page.wait_for_selector('#job-results[data-status="completed"]', timeout=FINAL_TIMEOUT_MS)
    assert_no_navigation_since_landing(page)
    shown = shown_live(page)
    assert len(shown) >= 2, shown  # pushed over the websocket: queued, then done
    assert dict(shown[-1][0])["vault"] == "done" and shown[-1][1] == 100

    # The results section appeared without a reload: facts, pictures, verdicts, proofs.
    results = page.locator("#job-results")
    assert "16569 bases" in results.inner_text()
    assert page.locator("#job-status").inner_text().startswith("Completed")
    assert page.locator("#figure-gc svg.chart").count() == 1
    assert page.locator("#figure-kmer svg.chart").count() == 1
    assert "Predicted" in page.locator("#figure-species").inner_text()
    assert page.locator("#figure-species svg.chart").count() == 1
    assert "passed" in page.locator("#security-heading + dl").inner_text()
    assert page.get_by_role("link", name="Deletion certificate (JSON)").is_visible()
    for stage in page.locator("#job-progress li.stage-done").all():
        assert re.search(r"\d+ ms", stage.inner_text())  # every finished stage has its duration
    save_screenshot(page, "job_page_fasta.png")

    # The certificate, as JSON and as a page.
    certificate = page.request.get(f"/api/proof/{job_id}")
    assert certificate.status == 200
    document = certificate.json()
    assert document["job_id"] == job_id and document["signature"]
    page.get_by_role("link", name="Certificate page").click()
    page.wait_for_url(f"**/jobs/{job_id}/certificate/")
    assert "Certificate of plaintext deletion" in page.locator("h1").inner_text()
    assert document["deletion_hash"] in page.content()
    assert page.console_errors == [], page.console_errors


def test_a_large_fastq_is_seen_advancing_stage_by_stage(page, tmp_path):
    reads = tmp_path / "reads.fq"
    reads.write_bytes(large_fastq())  # a path, not a buffer: a 44 MB buffer crawls through CDP
    upload_through_the_page(page, reads)
    land_on_job_page(page)
    page.wait_for_selector('#job-results[data-status="completed"]', timeout=FINAL_TIMEOUT_MS)
    assert_no_navigation_since_landing(page)

    shown = shown_live(page)
    running = [stage for stages, _ in shown for stage, state in stages if state == "running"]
    assert running, shown  # stages were on screen while they ran
    progress = [value for _, value in shown]
    assert progress == sorted(progress) and progress[-1] == 100, progress
    assert set(dict(shown[-1][0]).values()) <= {"done", "not run"}
    assert "18000000 bases" in page.locator("#results-heading + dl").inner_text()


def test_a_fastq_dropped_on_the_page_gets_its_quality_picture(page, server):
    page.goto("/jobs/upload/")
    payload = base64.b64encode(READS.read_bytes()).decode("ascii")
    page.evaluate(
        """([name, payload]) => {
            const bytes = Uint8Array.from(atob(payload), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "application/octet-stream"}));
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: transfer, bubbles: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [READS.name, payload],
    )
    assert f"Selected: {READS.name}" in page.locator("#selected-file").inner_text()
    page.get_by_role("button", name="Upload and process").click()
    land_on_job_page(page)
    page.wait_for_selector('#job-results[data-status="completed"]', timeout=FINAL_TIMEOUT_MS)
    assert_no_navigation_since_landing(page)

    facts = page.locator("#results-heading + dl").inner_text()
    assert "Phred+33" in facts and "120000 bases" in facts
    quality = page.locator("#figure-quality")
    assert quality.locator("svg.chart polyline").count() == 1
    assert "Per-position mean quality" in quality.inner_text()
    assert "distribution" in page.locator("#figure-gc").inner_text()  # 800 reads: a histogram
    page.locator("#figure-quality").scroll_into_view_if_needed()
    save_screenshot(page, "job_page.png", for_docs=True)


def test_the_certificate_pdf_downloads(page, server):
    client = server.login(USER, PASSWORD)
    job_id = client.post("/api/upload", files={"file": (MTDNA.name, MTDNA.read_bytes())}).json()[
        "job_id"
    ]
    assert wait_for_final(client, job_id)["status"] == "completed"
    probe = client.get(f"/api/proof/{job_id}.pdf")
    client.close()
    if probe.status_code == 404 or (
        probe.status_code == 400 and probe.json().get("error") == "Invalid UUID format"
    ):
        pytest.skip(f"/api/proof/<id>.pdf is not served yet (HTTP {probe.status_code})")

    page.goto(f"/jobs/{job_id}/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Certificate (PDF)").click()
    download = download_info.value
    ARTIFACTS.mkdir(exist_ok=True)
    saved = ARTIFACTS / f"certificate-{job_id}.pdf"
    download.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF-")


def test_a_hostile_file_is_rejected_live_with_a_retry_link(page):
    upload_through_the_page(page, HOSTILE)
    land_on_job_page(page)
    page.wait_for_selector('#job-results[data-status="failed"]', timeout=FINAL_TIMEOUT_MS)
    assert_no_navigation_since_landing(page)
    alert = page.get_by_role("alert")
    assert "IDS detected threats" in alert.inner_text()
    assert dict(stage_states(page))["ids"] == "failed"
    assert page.locator("#job-status").inner_text().startswith("Failed")
    save_screenshot(page, "job_page_failed.png")
    retry = page.get_by_role("link", name="Upload another file")
    retry.click()
    page.wait_for_url("**/jobs/upload/")


def test_the_page_refuses_a_file_that_is_not_fasta_or_fastq_before_sending(page):
    page.goto("/jobs/upload/")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_input_files(
        "#id_file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    assert "Only FASTA/FASTQ allowed" in page.locator("#upload-status").inner_text()
    save_screenshot(page, "upload_page_refusal.png")
    page.get_by_role("button", name="Upload and process").click()
    assert "Only FASTA/FASTQ allowed" in page.locator("#upload-status").inner_text()
    assert page.url.endswith("/jobs/upload/")
    assert not [url for url in requests if "/api/upload" in url]


def test_the_job_list_and_profile_work_with_the_keyboard(page):
    page.goto("/jobs/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.goto("/jobs/profile/")
    page.get_by_label("Token name").fill("browser test")
    page.get_by_label("Token name").press("Enter")  # submits the form
    token = page.locator("#new-token-value").input_value()
    assert token.startswith("mgk_")
    save_screenshot(page, "profile_page.png")
    status = page.request.get(
        "/api/status/00000000-0000-4000-8000-000000000000",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status.status == 404 and json.loads(status.text())["error"] == "Job ID not found"
    page.get_by_role("button", name="Revoke token browser test").click()
    assert "revoked" in page.locator("table.tokens").inner_text()
