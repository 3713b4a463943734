"""The marker panel: k-mer containment screening, the seeded panel, references attached in admin."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from analysis.markers import (
    THRESHOLD,
    MarkerConsumer,
    MarkerPanelEntry,
    MarkerReferenceError,
    read_reference_fasta,
)
from analysis.parser import SequenceRecord, iter_records
from analysis.report import analyse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GENOMES = DATA / "genomes"
BETA_GLOBIN_LOCUS = GENOMES / "human" / "human_beta_globin_locus_U01317.fa"
MARKERS_FASTA = GENOMES / "markers" / "human_markers.fa"
ECOLI_FILES = sorted((GENOMES / "bacterial").glob("ecoli_*.fa"))
BUNDLED_MARKERS_FASTA = Path(__file__).resolve().parents[2] / "analysis/reference/human_markers.fa"

HBB_SPAN = (62137, 63742)  # 1-based, inclusive, in U01317.1 (the HBB record of MARKERS_FASTA)
COMPLEMENT = bytes.maketrans(b"ACGTNacgtn", b"TGCANtgcan")


def marker_records() -> dict[str, bytes]:
    """FASTA text of each record of the shared markers file, by gene name."""
    text = MARKERS_FASTA.read_bytes()
    records = [b">" + chunk.removeprefix(b">") for chunk in text.split(b"\n>")]
    return {record[1:].split(b"|", 1)[0].decode(): record for record in records}


def seeded_like_panel() -> list[MarkerPanelEntry]:
    """The seeded genes, with the references the seed gives them (pure, no database)."""
    references = marker_records()
    return [
        MarkerPanelEntry(name, f"{name} locus", "High", f"{name} gene", references.get(name))
        for name in ("BRCA1", "BRCA2", "TP53", "APOE", "CFTR", "HBB", "EGFR", "KRAS")
    ]


def screen(path: Path, panel: list[MarkerPanelEntry]) -> dict[str, dict]:
    consumer = MarkerConsumer(panel)
    with path.open("rb") as stream:
        analyse(stream, consumers=[consumer])
    return {result["name"]: result for result in consumer.result()}


def screen_sequences(sequences: list[bytes], panel: list[MarkerPanelEntry]) -> dict[str, dict]:
    consumer = MarkerConsumer(panel)
    for number, sequence in enumerate(sequences, start=1):
        consumer.add(SequenceRecord(number, 1, f"r{number}", "", sequence, 0, None))
    return {result["name"]: result for result in consumer.result()}


def locus_sequence() -> bytes:
    with BETA_GLOBIN_LOCUS.open("rb") as stream:
        return next(iter_records(stream)).sequence


# --- the pure core -------------------------------------------------------------------------


def test_it_finds_hbb_in_the_beta_globin_locus():
    results = screen(BETA_GLOBIN_LOCUS, seeded_like_panel())

    hbb = results["HBB"]
    assert hbb["status"] == "found"
    assert hbb["containment"] == 1.0
    assert hbb["kmers_found"] == hbb["kmers_total"] > 1500
    assert hbb["k"] == 21 and hbb["threshold"] == THRESHOLD
    # The other screened genes are elsewhere in the genome: at most a repeat's worth of k-mers.
    for name in ("EGFR", "KRAS", "BRCA2"):
        assert results[name]["status"] == "not found"
        assert results[name]["containment"] < 0.01


@pytest.mark.parametrize("path", ECOLI_FILES, ids=lambda path: path.name)
def test_it_does_not_find_human_markers_in_e_coli(path):
    results = screen(path, seeded_like_panel())

    for name in ("HBB", "EGFR", "KRAS", "BRCA2"):
        assert results[name]["status"] == "not found"
        assert results[name]["containment"] == 0.0


def test_it_reports_markers_without_reference_as_not_screened_never_absent():
    results = screen(BETA_GLOBIN_LOCUS, seeded_like_panel())

    for name in ("BRCA1", "TP53", "APOE", "CFTR"):
        assert results[name]["status"] == "not screened"
        assert results[name]["containment"] is None
        assert results[name]["note"] == "no reference sequence in the panel"
    assert list(results) == ["BRCA1", "BRCA2", "TP53", "APOE", "CFTR", "HBB", "EGFR", "KRAS"]


def test_it_finds_hbb_on_the_reverse_strand():
    reverse_complement = locus_sequence().translate(COMPLEMENT)[::-1]

    hbb = screen_sequences([reverse_complement], seeded_like_panel())["HBB"]

    assert hbb["status"] == "found"
    assert hbb["containment"] == 1.0


def test_it_finds_hbb_in_reads_from_both_strands():
    locus = locus_sequence()
    gene = locus[HBB_SPAN[0] - 1 - 200 : HBB_SPAN[1] + 200]
    reads = [gene[start : start + 150] for start in range(0, len(gene) - 150, 50)]
    reads = [read if i % 2 else read.translate(COMPLEMENT)[::-1] for i, read in enumerate(reads)]

    hbb = screen_sequences(reads, seeded_like_panel())["HBB"]

    assert hbb["status"] == "found"
    assert hbb["containment"] == 1.0


def test_it_does_not_mistake_the_paralogous_globins_for_hbb():
    # The locus with HBB cut out still holds HBD, HBG1/2 and HBE1 (related globins) and
    # shared repeats: some k-mers match, far fewer than the threshold.
    locus = locus_sequence()
    without_hbb = locus[: HBB_SPAN[0] - 1] + b"N" + locus[HBB_SPAN[1] :]

    hbb = screen_sequences([without_hbb], seeded_like_panel())["HBB"]

    assert hbb["status"] == "not found"
    assert 0 < hbb["containment"] < 0.2


def test_it_reports_a_partial_gene_by_its_containment():
    locus = locus_sequence()
    gene = locus[HBB_SPAN[0] - 1 : HBB_SPAN[1]]

    first_third = screen_sequences([gene[: len(gene) // 3]], seeded_like_panel())["HBB"]
    two_thirds = screen_sequences([gene[: 2 * len(gene) // 3]], seeded_like_panel())["HBB"]

    assert first_third["status"] == "not found"
    assert 0.3 < first_third["containment"] < 0.35
    assert two_thirds["status"] == "found"
    assert 0.63 < two_thirds["containment"] < 0.68


def test_it_says_not_screened_when_the_upload_has_nothing_to_compare():
    results = screen_sequences([b"ACGTN" * 200, b"ACGTACGTAC"], seeded_like_panel())

    assert results["HBB"]["status"] == "not screened"
    assert results["HBB"]["containment"] is None
    assert "no run of 21 unambiguous bases" in results["HBB"]["note"]


def test_it_screens_soft_masked_and_rna_letters():
    gene = locus_sequence()[HBB_SPAN[0] - 1 : HBB_SPAN[1]]

    hbb = screen_sequences([gene.lower().replace(b"t", b"u")], seeded_like_panel())["HBB"]

    assert hbb["containment"] == 1.0


def test_it_reports_an_unusable_reference_as_not_screened():
    panel = [
        MarkerPanelEntry("P", "loc", "High", "protein", b">p\nMKTAYIAKQRQISFVKSHFSRQLEE\n"),
        MarkerPanelEntry("N", "loc", "High", "all N", b"N" * 500),
    ]

    results = screen(BETA_GLOBIN_LOCUS, panel)

    assert results["P"]["status"] == "not screened"
    assert "protein" in results["P"]["note"]
    assert results["N"]["status"] == "not screened"
    assert "no run of 21 unambiguous bases" in results["N"]["note"]


def _canonical_kmers(sequence: str, k: int) -> set[str]:
    complement = str.maketrans("ACGT", "TGCA")
    kmers = set()
    for start in range(len(sequence) - k + 1):
        window = sequence[start : start + k]
        if set(window) <= set("ACGT"):
            kmers.add(min(window, window.translate(complement)[::-1]))
    return kmers


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    reference=st.text(alphabet="ACGTN", min_size=25, max_size=300),
    reads=st.lists(st.text(alphabet="ACGTN", max_size=200), max_size=6),
    k=st.sampled_from([3, 8, 15, 16, 21, 31]),
)
def test_containment_matches_a_plain_set_count(reference, reads, k):
    # Reads may copy part of the reference (either strand) so that matches are frequent.
    reads = [
        *reads,
        reference[5:80],
        reference[20:120].translate(str.maketrans("ACGT", "TGCA"))[::-1],
    ]
    consumer = MarkerConsumer([MarkerPanelEntry("X", "", "", "", reference.encode())], k=k)
    for number, read in enumerate(reads, start=1):
        consumer.add(SequenceRecord(number, 1, "r", "", read.encode(), 0, None))
    result = consumer.result()[0]

    expected = _canonical_kmers(reference, k)
    found = expected & set().union(*(_canonical_kmers(read, k) for read in reads))
    if not expected:
        assert result["status"] == "not screened"
    elif result["status"] != "not screened":
        assert result["kmers_total"] == len(expected)
        assert result["kmers_found"] == len(found)


def test_it_scans_tens_of_megabases_in_about_a_second():
    # Real genomes cut into 150 bp reads: 20 Mb of sequence is what a 50 MB FASTQ holds.
    genomes = []
    for path in sorted((DATA / "genomes_extra").rglob("*.fa")):
        with path.open("rb") as stream:
            genomes.extend(record.sequence for record in iter_records(stream))
    reads = [
        genome[start : start + 150]
        for genome in genomes
        for start in range(0, len(genome) - 150, 150)
    ]
    reads = (reads * (20_000_000 // (150 * len(reads)) + 1))[: 20_000_000 // 150]
    consumer = MarkerConsumer(seeded_like_panel())

    started = time.perf_counter()
    for number, read in enumerate(reads, start=1):
        consumer.add(SequenceRecord(number, 1, "r", "", read, 0, None))
    consumer.result()
    elapsed = time.perf_counter() - started

    assert elapsed < 3.0, f"{len(reads) * 150 / 1e6:.0f} Mb took {elapsed:.2f} s"


def test_it_reads_a_gzip_reference_fasta():
    fasta = read_reference_fasta(io.BytesIO(gzip.compress(marker_records()["HBB"])))

    assert fasta.records == 1
    assert fasta.letters == 1606
    assert fasta.text.startswith(">HBB|U01317.1:62137-63742 Homo sapiens HBB gene")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"@r1\nACGTACGTACGTACGTACGTACGT\n+\nIIIIIIIIIIIIIIIIIIIIIIII\n", "not FASTQ"),
        (b">p\nMKTAYIAKQRQISFVKSHFSRQLEE\n", "looks like a protein"),
        (b">short\nACGTACGTAC\n", "no run of 21 unambiguous bases"),
        (b"ACGT\n>late header\nACGT\n", "data before the first header"),
    ],
)
def test_it_refuses_a_reference_that_is_not_a_nucleotide_fasta(content, message):
    with pytest.raises(MarkerReferenceError, match=message):
        read_reference_fasta(io.BytesIO(content))


# --- the seeded panel (database) -----------------------------------------------------------


@pytest.mark.django_db
def test_the_seed_migration_creates_the_eight_markers_with_their_references():
    from analysis.models import MarkerReference

    markers = {marker.name: marker for marker in MarkerReference.objects.all()}

    assert set(markers) == {"BRCA1", "BRCA2", "TP53", "APOE", "CFTR", "HBB", "EGFR", "KRAS"}
    shared = marker_records()
    for name in ("HBB", "EGFR", "KRAS", "BRCA2"):
        assert markers[name].reference_sequence.encode() == shared[name].strip() + b"\n"
        assert markers[name].reference_source
    for name in ("BRCA1", "TP53", "APOE", "CFTR"):
        assert markers[name].reference_sequence == ""
    assert markers["HBB"].full_location == "chr11:5,225,466-5,227,071 (-), GRCh38, RefSeq"
    assert markers["BRCA1"].location == "chr17:43,044,295-43,125,483"
    assert all(marker.active and marker.significance for marker in markers.values())
    # The product's own copy is the shared file, byte for byte.
    assert BUNDLED_MARKERS_FASTA.read_bytes() == MARKERS_FASTA.read_bytes()


@pytest.mark.django_db
def test_the_seeded_panel_screens_an_upload():
    from analysis.panel import marker_panel

    results = screen(BETA_GLOBIN_LOCUS, marker_panel())

    assert {name: result["status"] for name, result in results.items()} == {
        "APOE": "not screened",
        "BRCA1": "not screened",
        "BRCA2": "not found",
        "CFTR": "not screened",
        "EGFR": "not found",
        "HBB": "found",
        "KRAS": "not found",
        "TP53": "not screened",
    }
    assert results["HBB"]["location"] == "chr11:5,225,466-5,227,071 (-), GRCh38, RefSeq"


@pytest.mark.django_db
def test_an_inactive_marker_leaves_the_panel():
    from analysis.models import MarkerReference
    from analysis.panel import marker_panel

    MarkerReference.objects.filter(name="APOE").update(active=False)

    assert "APOE" not in [entry.name for entry in marker_panel()]


# --- attaching a reference in admin --------------------------------------------------------


@pytest.fixture
def curator_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser(
        username="curator", password="a long admin passphrase"
    )
    client.force_login(admin_user)
    return client


def change_form_data(marker, **changes) -> dict:
    data = {
        field: getattr(marker, field)
        for field in (
            "name",
            "significance",
            "description",
            "assembly",
            "location",
            "strand",
            "annotation_source",
            "reference_sequence",
            "reference_source",
        )
    }
    data["active"] = "on" if marker.active else ""
    data.update(changes)
    return data


@pytest.mark.django_db
def test_a_reference_attached_in_admin_makes_the_marker_screened(curator_client, settings):
    from analysis.models import MarkerReference
    from analysis.panel import marker_panel

    mitochondrial = GENOMES / "human" / "human_mtDNA_rCRS.fa"
    assert screen(mitochondrial, marker_panel())["BRCA1"]["status"] == "not screened"
    brca1 = MarkerReference.objects.get(name="BRCA1")

    # A stand-in reference (the mitochondrial genome): no registry package ships BRCA1.
    response = curator_client.post(
        reverse("admin:analysis_markerreference_change", args=[brca1.pk]),
        change_form_data(
            brca1,
            reference_file=SimpleUploadedFile("brca1.fa", mitochondrial.read_bytes()),
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    brca1.refresh_from_db()
    assert brca1.reference_sequence.startswith(">")
    assert "brca1.fa" in brca1.reference_source and "16,569 letters" in brca1.reference_source
    assert screen(mitochondrial, marker_panel())["BRCA1"]["status"] == "found"
    assert screen(BETA_GLOBIN_LOCUS, marker_panel())["BRCA1"]["status"] == "not found"
    # The site's encrypting upload handler staged the file, and the staged copy does not
    # outlive the request.
    assert settings.STAGING_DIR.is_dir()
    assert not list(settings.STAGING_DIR.glob("*"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("reads.fq", (DATA / "fastq" / "novaseq_800_reads_phred33.fq").read_bytes(), "not FASTQ"),
        ("protein.fa", b">p\nMKTAYIAKQRQISFVKSHFSRQLEE\n", "looks like a protein"),
        ("notes.txt", b"just some text\n", "Only FASTA/FASTQ allowed"),
    ],
)
def test_admin_refuses_a_reference_file_that_is_not_a_nucleotide_fasta(
    curator_client, settings, name, content, message
):
    from analysis.models import MarkerReference

    tp53 = MarkerReference.objects.get(name="TP53")

    response = curator_client.post(
        reverse("admin:analysis_markerreference_change", args=[tp53.pk]),
        change_form_data(tp53, reference_file=SimpleUploadedFile(name, content)),
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    tp53.refresh_from_db()
    assert tp53.reference_sequence == ""
    assert not list(settings.STAGING_DIR.glob("*"))


@pytest.mark.django_db
def test_admin_change_form_takes_a_file(curator_client):
    from analysis.models import MarkerReference

    brca1 = MarkerReference.objects.get(name="BRCA1")

    page = curator_client.get(reverse("admin:analysis_markerreference_change", args=[brca1.pk]))

    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.content.decode()
    assert 'name="reference_file"' in page.content.decode()


@pytest.mark.django_db
def test_admin_lists_and_searches_the_panel(curator_client):
    listing = curator_client.get(reverse("admin:analysis_markerreference_changelist"))
    search = curator_client.get(
        reverse("admin:analysis_markerreference_changelist"), {"q": "cystic fibrosis"}
    )

    assert listing.status_code == 200
    assert all(name in listing.content.decode() for name in ("BRCA1", "HBB", "KRAS"))
    assert "CFTR" in search.content.decode() and "BRCA2" not in search.content.decode()
