"""Through the real server (uvicorn + the ASGI app), not Django's test client."""

from __future__ import annotations

import pytest

from tests.conftest import FASTQ
from tests.e2e.server import start_server
from tests.jobs.test_archive_and_plaintext import _files_containing, unique_read

LIMIT = 4_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(
        tmp_path_factory.mktemp("server"), extra_env={"MEDGENOMICS_MAX_UPLOAD_BYTES": str(LIMIT)}
    )
    running.create_user("lab", "a long enough passphrase")
    yield running
    running.stop()


@pytest.fixture
def lab(server):
    client = server.login("lab", "a long enough passphrase")
    yield client
    client.close()


@pytest.mark.parametrize("copies", [1, 11], ids=["small", "larger-than-2.5MB"])
def test_no_plaintext_is_written_during_or_after_a_job(server, lab, copies):
    """A distinctive 64-byte run of the upload is looked for under the data and temp
    directories again and again while the upload streams in and the job runs, and after."""
    import threading

    read, run = unique_read(copies)
    reads = (FASTQ / "novaseq_800_reads_phred33.fq").read_bytes()
    data = read + reads * copies  # 11 copies: ~3.2 MB, past Django's 2.5 MB memory threshold
    if copies > 1:
        assert 2_500_000 < len(data) < LIMIT
    answer: dict = {}
    sender = threading.Thread(
        target=lambda: answer.update(
            response=lab.post("/api/upload", files={"file": ("r.fastq", data)})
        )
    )
    sender.start()
    scans = 0
    status = {"status": "uploading"}
    while sender.is_alive() or status["status"] not in {"completed", "failed"}:
        assert _files_containing(run, server.data_dir, server.temp_dir) == []
        scans += 1
        if not sender.is_alive():
            response = answer["response"]
            assert response.status_code == 202, response.text
            status = lab.get(f"/api/status/{response.json()['job_id']}").json()
    assert status["status"] == "completed", status
    assert scans >= 2
    assert _files_containing(run, server.data_dir, server.temp_dir) == []


def test_a_declared_oversize_body_is_refused_before_it_is_read(server, lab):
    """Only the headers are sent: the answer comes without the server waiting for the body."""
    import json
    import socket
    from urllib.parse import urlparse

    address = urlparse(server.url)
    cookies = "; ".join(f"{name}={value}" for name, value in lab.cookies.items())
    request = (
        "POST /api/upload HTTP/1.1\r\n"
        f"Host: {address.hostname}:{address.port}\r\n"
        f"Cookie: {cookies}\r\n"
        f"X-CSRFToken: {lab.cookies['csrftoken']}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {LIMIT + 2 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["message"] == "File exceeds 50MB limit"


def test_a_streamed_body_past_the_limit_is_cut_off(server, lab):
    def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.fa"\r\n\r\n>x\n'
        for _ in range(LIMIT // 65536 + 40):
            yield b"ACGT" * 16384

    response = lab.post(
        "/api/upload", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "File exceeds 50MB limit"
