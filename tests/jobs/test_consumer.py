"""The job page's websocket (/ws/jobs/<id>/): who may listen, and what a listener receives.

Through the project's real ASGI stack (origin check, session authentication, URL routing) on the
in-memory channel layer. State changes come from a worker thread, as in the embedded server, so
the notification has to travel through the loop the consumer remembered (jobs/notify.py).
"""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from jobs import services
from jobs.consumers import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND
from jobs.models import Job
from jobs.notify import notify_job_changed
from jobs.runner import run_until_settled
from medgenomics.asgi import application
from tests.conftest import BAD_INPUTS, GENOMES, upload

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture(autouse=True)
async def close_the_sync_threads_connections():
    """The consumer's queries run in asgiref's sync thread; a persistent connection left open
    there (CONN_MAX_AGE with PostgreSQL) would keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def queued_job_id(owner_client, settings):
    """A real upload, staged and waiting: the test decides when the pipeline runs."""
    settings.MEDGENOMICS_JOB_RUNNER = "none"
    return upload(owner_client, GENOMES / "viral" / "phiX174_NC_001422.fa").json()["job_id"]


@pytest.fixture
def hostile_job_id(owner_client, settings):
    settings.MEDGENOMICS_JOB_RUNNER = "none"
    return upload(owner_client, BAD_INPUTS / "26_injection_header.fa").json()["job_id"]


def session_cookie(client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def communicator(job_id: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/jobs/{job_id}/", headers=[ORIGIN, *headers])


async def receive_until(listener: WebsocketCommunicator, needle: str, *, limit: int = 200) -> str:
    """Messages until one holds ``needle`` (the pipeline sends one per state change)."""
    for _ in range(limit):
        message = await listener.receive_from(timeout=30)
        if needle in message:
            return message
    raise AssertionError(f"no message with {needle!r} in {limit} messages")


async def test_an_anonymous_visitor_is_refused(queued_job_id):
    listener = communicator(queued_job_id)
    connected, code = await listener.connect()
    assert not connected
    assert code == CLOSE_NOT_AUTHENTICATED


async def test_another_user_is_refused_as_if_the_job_did_not_exist(
    queued_job_id, client, other_user
):
    await database_sync_to_async(client.force_login)(other_user)
    listener = communicator(queued_job_id, session_cookie(client))
    connected, code = await listener.connect()
    assert not connected
    assert code == CLOSE_NOT_FOUND


async def test_a_page_from_another_site_is_refused(queued_job_id, owner_client):
    listener = WebsocketCommunicator(
        application,
        f"/ws/jobs/{queued_job_id}/",
        headers=[(b"origin", b"https://evil.example"), session_cookie(owner_client)],
    )
    connected, _ = await listener.connect()
    assert not connected


async def test_the_owner_gets_the_current_state_at_once(queued_job_id, owner_client):
    listener = communicator(queued_job_id, session_cookie(owner_client))
    connected, _ = await listener.connect()
    assert connected
    first = await listener.receive_from(timeout=10)
    # Every live fragment, each marked for an out-of-band swap by id.
    assert 'id="job-status"' in first and 'hx-swap-oob="innerHTML"' in first
    assert 'id="job-progress"' in first and 'id="job-results"' in first
    assert "Checking file" in first
    await listener.disconnect()


async def test_the_owner_receives_the_fragment_after_a_state_change(queued_job_id, owner_client):
    listener = communicator(queued_job_id, session_cookie(owner_client))
    assert (await listener.connect())[0]
    await listener.receive_from(timeout=10)

    # A worker thread changes the row and notifies, as the pipeline does.
    def enter_ids_stage() -> None:
        job = Job.objects.get(pk=queued_job_id)
        services.job_enter_stage(job, stage_name="ids", progress=25, message="Scanning for threats")

    await database_sync_to_async(enter_ids_stage)()
    message = await listener.receive_from(timeout=10)
    assert "Scanning for threats" in message
    assert 'value="25"' in message
    ids_stage = re.search(r'<li class="stage [^"]*" data-stage="ids"[^>]*>', message).group(0)
    assert 'data-stage-status="running"' in ids_stage
    await listener.disconnect()


async def test_the_results_arrive_when_the_job_completes(queued_job_id, owner_client):
    listener = communicator(queued_job_id, session_cookie(owner_client))
    assert (await listener.connect())[0]
    await listener.receive_from(timeout=10)

    await database_sync_to_async(run_until_settled)(queued_job_id)
    final = await receive_until(listener, 'data-status="completed"')
    assert "5386 bases" in final  # the results section, rendered from the row
    assert "Deletion certificate (JSON)" in final
    assert '<svg class="chart"' in final  # and its pictures
    # Every stage ticked (or "not run" until its issue lands); none left running or pending.
    assert 'data-stage-status="done"' in final
    assert 'data-stage-status="running"' not in final
    assert 'data-stage-status="pending"' not in final
    # Nothing changes after the end: the consumer closes instead of pushing more.
    assert (await listener.receive_output(timeout=10))["type"] == "websocket.close"


async def test_a_failed_job_pushes_the_error_and_a_retry_link(hostile_job_id, owner_client):
    listener = communicator(hostile_job_id, session_cookie(owner_client))
    assert (await listener.connect())[0]
    await listener.receive_from(timeout=10)

    await database_sync_to_async(run_until_settled)(hostile_job_id)
    final = await receive_until(listener, 'data-status="failed"')
    assert "IDS detected threats" in final
    assert "Upload another file" in final
    assert 'data-stage-status="failed"' in final
    assert (await listener.receive_output(timeout=10))["type"] == "websocket.close"


async def test_an_unchanged_job_is_not_sent_again(queued_job_id, owner_client):
    listener = communicator(queued_job_id, session_cookie(owner_client))
    assert (await listener.connect())[0]
    await listener.receive_from(timeout=10)

    def nudge_then_change() -> None:
        job = Job.objects.get(pk=queued_job_id)
        notify_job_changed(job)  # nothing new: nothing is sent
        services.job_enter_stage(job, stage_name="policy", progress=10, message="Loading policy")

    await database_sync_to_async(nudge_then_change)()
    # Nudges are handled in order: the first message after them is already the change.
    assert "Loading policy" in await listener.receive_from(timeout=10)
    assert await listener.receive_nothing(timeout=0.3)
    await listener.disconnect()


async def test_a_late_listener_gets_the_final_state_without_any_notification(
    queued_job_id, owner_client
):
    await database_sync_to_async(run_until_settled)(queued_job_id)
    listener = communicator(queued_job_id, session_cookie(owner_client))
    assert (await listener.connect())[0]
    first = await listener.receive_from(timeout=10)
    assert 'data-status="completed"' in first and "5386 bases" in first
    assert (await listener.receive_output(timeout=10))["type"] == "websocket.close"
