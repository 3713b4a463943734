"""`manage.py process` and `manage.py ensure_admin`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import BAD_INPUTS, FASTQ
from tests.reference_counts import independent_counts

pytestmark = pytest.mark.django_db(transaction=True)


def test_process_runs_the_pipeline_and_prints_the_result(owner):
    path = FASTQ / "roche454_longreads_phred33.fq"
    out = StringIO()
    call_command("process", str(path), "--user", owner.username, stdout=out)
    result = json.loads(out.getvalue())
    length, gc, records = independent_counts(path)
    characteristics = result["results"]["species_analysis"]["sequence_characteristics"]
    assert characteristics["length"] == length
    assert characteristics["record_count"] == records == 10
    assert result["results"]["species_analysis"]["gc_content"] == pytest.approx(gc)
    assert result["results"]["quality"]["phred_offset"] == 33


def test_process_fails_with_the_matrix_message(owner):
    err = StringIO()
    with pytest.raises(CommandError, match="Malformed sequence file"):
        call_command(
            "process", str(BAD_INPUTS / "13_len_mismatch.fq"), "--user", owner.username, stderr=err
        )
    assert json.loads(err.getvalue())["detail"].startswith("record 2")


def test_process_refuses_a_file_that_is_not_a_sequence(owner, tmp_path):
    text = tmp_path / "notes.fa"
    text.write_text("dear diary\n")
    with pytest.raises(CommandError, match="Only FASTA/FASTQ allowed"):
        call_command("process", str(text), "--user", owner.username, stderr=StringIO())


def test_ensure_admin_creates_one_admin_with_a_one_time_password(django_user_model, client):
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = out.getvalue().split("one-time password:")[1].split()[0]
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)

    # Logging in with it leads to choosing a new password before anything else.
    assert client.login(username="admin", password=password)
    response = client.get("/jobs/")
    assert response.status_code == 302 and response["Location"] == "/accounts/password/"
    response = client.post(
        "/accounts/password/",
        {
            "old_password": password,
            "new_password1": "a much better passphrase",
            "new_password2": "a much better passphrase",
        },
    )
    assert response.status_code == 302
    assert client.get("/jobs/").status_code == 200

    # A second run changes nothing and prints no password.
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert again.getvalue() == "" and django_user_model.objects.count() == 1
