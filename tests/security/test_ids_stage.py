"""The IDS stage in the pipeline: threats fail the job, become events, and block repeat senders."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from jobs.models import Job
from security import ids
from security.models import BlockedAddress, SecurityEvent
from tests.conftest import BAD_INPUTS, GENOMES, upload, wait_for_final

pytestmark = pytest.mark.django_db(transaction=True)

INJECTION = BAD_INPUTS / "26_injection_header.fa"


def threats_counted(threat_type: str) -> float:
    return (
        REGISTRY.get_sample_value("ids_threats_detected_total", {"threat_type": threat_type}) or 0.0
    )


def test_an_injection_header_fails_the_job_on_record_1_only(owner_client, inline_jobs):
    before = threats_counted("command_injection")
    job_id = upload(owner_client, INJECTION).json()["job_id"]
    status = wait_for_final(owner_client, job_id)

    assert status["status"] == "failed"
    assert status["message"] == "IDS detected threats"
    assert "record 1" in status["detail"] and "record 2" not in status["detail"]
    for threat in ("command_injection", "sql_injection"):
        assert threat in status["detail"]
    result = owner_client.get(f"/api/result/{job_id}")
    assert result.status_code == 400 and result.json()["message"] == "IDS detected threats"

    job = Job.objects.get(pk=job_id)
    assert job.ids_passed is False and job.policy_version == 1
    page = owner_client.get(f"/jobs/{job_id}/").content.decode()
    assert f"All {len(job.results['ids']['findings'])} findings" in page
    assert "pwned" not in page  # the page lists signature labels, never the header
    events = list(SecurityEvent.objects.filter(job=job))
    assert events and {event.record for event in events} == {1}
    assert all(event.user == job.owner and event.source_ip == "127.0.0.1" for event in events)
    # Events keep the fixed label of the signature that matched, never the header's text.
    labels = {signature.label for signature in ids._build_signatures()}
    assert {event.pattern for event in events} <= labels | {"control bytes", "text before header"}
    assert not any(
        word in event.pattern for event in events for word in ("pwned", "seqs", "ctg7", "alert(1)")
    )
    assert threats_counted("command_injection") > before


def test_real_headers_pass_the_ids(owner_client, inline_jobs):
    job_id = upload(
        owner_client, GENOMES / "bacterial" / "yersinia_pestis_pPCP1_NC_005816.fa"
    ).json()["job_id"]
    assert wait_for_final(owner_client, job_id)["status"] == "completed"
    body = owner_client.get(f"/api/result/{job_id}").json()
    assert body["results"]["security"]["ids_passed"] is True
    assert body["results"]["security"]["policy_version"] == 1


def test_repeated_threats_block_the_address(owner_client, inline_jobs):
    for _ in range(3):  # jobs run inline: each has finished when its upload answers
        assert upload(owner_client, INJECTION).status_code == 202
    assert Job.objects.filter(status="failed").count() == 3
    assert BlockedAddress.objects.filter(address="127.0.0.1").exists()
    response = owner_client.get("/jobs/")
    assert response.status_code == 403
    assert response.json()["message"] == "Access denied"


def test_an_alert_mail_goes_out_when_events_cross_the_threshold(
    owner_client, inline_jobs, mailoutbox, settings
):
    settings.ADMINS = [("Security", "security@lab.invalid")]
    for _ in range(2):  # 26_injection_header.fa gives several events per upload
        wait_for_final(owner_client, upload(owner_client, INJECTION).json()["job_id"])
    assert SecurityEvent.objects.count() >= 10
    assert len(mailoutbox) == 1
    assert "threshold" in mailoutbox[0].subject


def test_no_file_name_or_header_reaches_the_logs(owner_client, inline_jobs, caplog):
    secret_name = "patient_JaneDoe_1974.fasta"
    content = (
        b">chr_JaneDoe_tumour_sample sample=JaneDoe\nACGTACGTTGCAACGTGGCC\n"
        + INJECTION.read_bytes()
    )
    with caplog.at_level(logging.DEBUG):
        for data in (content, (GENOMES / "human" / "human_mtDNA_rCRS.fa").read_bytes()):
            job_id = upload(owner_client, INJECTION, name=secret_name, content=data).json()[
                "job_id"
            ]
            wait_for_final(owner_client, job_id)
    logged = "\n".join(
        record.getMessage() + " " + " ".join(str(value) for value in vars(record).values())
        for record in caplog.records
    )
    assert "job_id" in logged or job_id in logged  # the logs did capture the jobs
    for identifier in ("JaneDoe", "patient_", "rCRS", "DROP TABLE", "chr_"):
        assert identifier not in logged
