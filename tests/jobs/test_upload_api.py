"""The main job through the HTTP API on every real file: upload, process, results, proof."""

from __future__ import annotations

import hashlib

import pytest

from security import signing
from security.keyring import signing_key
from tests.conftest import real_sequence_files, upload, wait_for_final
from tests.reference_counts import independent_counts, independent_kmer_windows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", real_sequence_files(), ids=lambda p: p.name)
def test_it_processes_every_real_file_to_completion(owner_client, inline_jobs, path):
    response = upload(owner_client, path)
    assert response.status_code == 202, response.content
    job_id = response.json()["job_id"]

    status = wait_for_final(owner_client, job_id)
    assert status["status"] == "completed", status
    assert status["progress"] == 100

    result = owner_client.get(f"/api/result/{job_id}").json()
    species = result["results"]["species_analysis"]
    length, gc, records = independent_counts(path)
    assert species["sequence_characteristics"]["length"] == length
    assert species["sequence_characteristics"]["record_count"] == records
    assert species["gc_content"] == pytest.approx(gc, abs=1e-6)
    assert species["sequence_characteristics"]["k_mer_diversity"] == independent_kmer_windows(path)
    assert 0 <= species["sequence_characteristics"]["quality_score"] <= 1
    assert (
        result["results"]["metadata"]["plaintext_sha256"]
        == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    assert result["results"]["metadata"]["encryption_method"] == "C4GH-ZSTD3"


def test_it_answers_at_once_and_runs_the_job_on_the_worker_pool(owner_client, settings):
    settings.MEDGENOMICS_JOB_RUNNER = "thread"
    path = real_sequence_files()[0]
    response = upload(owner_client, path)
    assert response.status_code == 202
    assert response.json()["status"] == "validating"
    assert wait_for_final(owner_client, response.json()["job_id"])["status"] == "completed"


def test_the_result_keeps_the_seed_shape_with_every_stage_run(owner_client, inline_jobs):
    from tests.conftest import GENOMES

    job_id = upload(owner_client, GENOMES / "human" / "human_mtDNA_rCRS.fa").json()["job_id"]
    wait_for_final(owner_client, job_id)
    body = owner_client.get(f"/api/result/{job_id}").json()

    assert set(body) >= {"job_id", "filename", "completed_at", "results"}
    assert set(body["results"]) >= {"genetic_markers", "species_analysis", "metadata"}
    assert set(body["results"]["metadata"]) >= {
        "processing_time_ms",
        "security_score",
        "encryption_method",
    }
    # 16,569 bases in one record: 16,567 3-mer windows of A/C/G/T (rCRS has one N).
    characteristics = body["results"]["species_analysis"]["sequence_characteristics"]
    assert characteristics["length"] == 16569
    assert characteristics["k_mer_diversity"] == 16569 - 2 - 3  # the N interrupts three windows
    stages = {stage["name"]: stage["status"] for stage in body["results"]["stages"]}
    assert set(stages.values()) == {"done"}
    assert body["results"]["species_analysis"]["predicted_species"] in {
        "Human",
        "Bacterial",
        "Plant",
        "Viral",
        "Unknown",
    }
    assert 0 <= body["results"]["species_analysis"]["confidence"] <= 1
    assert body["results"]["genetic_markers"] == []  # mtDNA holds none of the panel genes
    panel = {marker["name"]: marker["status"] for marker in body["results"]["marker_panel"]}
    assert panel["BRCA1"] == "not screened" and panel["HBB"] == "not found"
    security = body["results"]["security"]
    assert security["ids_passed"] is True and security["aml_passed"] is True
    assert 0.5 <= security["security_score"] <= 1
    # The stored file name is a pseudonym, never the real one.
    assert "rCRS" not in body["filename"]


def test_the_proof_is_a_valid_signed_certificate(owner_client, inline_jobs):
    from tests.conftest import FASTQ

    path = FASTQ / "illumina_phred64.fq"
    job_id = upload(owner_client, path).json()["job_id"]
    wait_for_final(owner_client, job_id)

    certificate = owner_client.get(f"/api/proof/{job_id}").json()
    assert certificate["job_id"] == job_id
    assert certificate["plaintext_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    expected_hash = hashlib.sha256(
        f"{job_id}|{certificate['plaintext_sha256']}|{certificate['deletion_timestamp']}".encode()
    ).hexdigest()
    assert certificate["deletion_hash"] == expected_hash
    assert certificate["hash_algorithm"] == "SHA-256"
    assert signing.verify(certificate, signing_key().public_key()).valid

    certificate["plaintext_sha256"] = "0" * 64
    assert not signing.verify(certificate, signing_key().public_key()).valid


def test_the_public_key_is_served_without_login(client):
    response = client.get("/api/proof/public-key")
    assert response.status_code == 200
    assert b"BEGIN PUBLIC KEY" in response.content


def test_the_hbb_marker_is_found_in_the_beta_globin_locus_only(owner_client, inline_jobs):
    from tests.conftest import GENOMES

    def markers_of(path):
        job_id = upload(owner_client, path).json()["job_id"]
        wait_for_final(owner_client, job_id)
        return owner_client.get(f"/api/result/{job_id}").json()["results"]

    locus = markers_of(GENOMES / "human" / "human_beta_globin_locus_U01317.fa")
    [hbb] = locus["genetic_markers"]
    assert hbb["name"] == "HBB" and hbb["containment"] > 0.9
    assert {"location", "significance", "description"} <= set(hbb)
    assert locus["species_analysis"]["predicted_species"] == "Human"
    for name in ("ecoli_lac_operon_J01636.fa", "ecoli_MIIJ01000039_first100kb.fa"):
        assert markers_of(GENOMES / "bacterial" / name)["genetic_markers"] == []
