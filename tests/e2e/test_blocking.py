"""Blocking through the real server: repeated malicious uploads get 403 until the block expires."""

from __future__ import annotations

import time

import pytest

from tests.conftest import BAD_INPUTS, GENOMES
from tests.e2e.server import start_server, wait_for_final


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("blocking"))
    running.create_user("eve", "a long enough passphrase")
    yield running
    running.stop()


def test_repeated_threats_get_the_address_blocked_until_expiry(server):
    client = server.login("eve", "a long enough passphrase")
    hostile = (BAD_INPUTS / "26_injection_header.fa").read_bytes()
    for attempt in range(3):
        response = client.post("/api/upload", files={"file": ("x.fa", hostile)})
        assert response.status_code == 202
        if attempt < 2:
            assert (
                wait_for_final(client, response.json()["job_id"])["message"]
                == "IDS detected threats"
            )
    # The third failure blocks the address while its job runs.
    deadline = time.monotonic() + 30
    while client.get("/jobs/").status_code != 403 and time.monotonic() < deadline:
        time.sleep(0.2)

    clean = (GENOMES / "viral" / "phiX174_NC_001422.fa").read_bytes()
    refused = client.post("/api/upload", files={"file": ("phix.fa", clean)})
    assert refused.status_code == 403
    assert refused.json()["message"] == "Access denied"
    assert client.get("/jobs/").status_code == 403

    # The block is visible to admins; once it expires, the address is served again.
    listed = server.manage(
        "shell",
        "-c",
        "from security.models import BlockedAddress as B;"
        "print(list(B.objects.values_list('address', flat=True)))",
    )
    assert "127.0.0.1" in listed
    server.manage(
        "shell",
        "-c",
        "from django.utils import timezone; from security.models import BlockedAddress as B;"
        "B.objects.update(expires_at=timezone.now())",
    )
    again = client.post("/api/upload", files={"file": ("phix.fa", clean)})
    assert again.status_code == 202
    assert wait_for_final(client, again.json()["job_id"])["status"] == "completed"
    client.close()
