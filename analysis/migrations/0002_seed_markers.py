"""Seed the marker panel: eight genes, GRCh38 RefSeq gene spans, four reference sequences.

Spans are RefSeq's (shared/data/PROVENANCE.md): the references screened are RefSeq records
(NM_ transcripts, and the HBB gene whose 1,606 bp are exactly the RefSeq span), so the
coordinates come from the same annotation. Reference sequences are read from
analysis/reference/human_markers.fa, pinned by its SHA-256 so that every database seeded from
this migration gets the same sequences.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.db import migrations

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "reference" / "human_markers.fa"
REFERENCE_SHA256 = "4bc0940ce48ec475200b7f856c57711eb49d7abc8c8b690a6f8263d2cd830668"
REFERENCE_NOTE = "analysis/reference/human_markers.fa (see analysis/reference/README.md)"

# name, RefSeq span on GRCh38, strand, significance, description, reference record, its source
MARKERS = [
    (
        "BRCA1",
        "chr17:43,044,295-43,125,483",
        "-",
        "High",
        "Homologous-recombination DNA repair; pathogenic germline variants cause hereditary "
        "breast and ovarian cancer",
        None,
        "",
    ),
    (
        "BRCA2",
        "chr13:32,314,862-32,399,850",
        "+",
        "High",
        "Homologous-recombination DNA repair (RAD51 loading); pathogenic germline variants "
        "cause hereditary breast, ovarian, prostate and pancreatic cancer",
        "BRCA2|NM_000059.3",
        "RefSeq NM_000059.3, BRCA2 mRNA (11,386 bp, exons only), from PyPI sdist hgvs 1.5.7 "
        "tests/data (Apache-2.0)",
    ),
    (
        "TP53",
        "chr17:7,668,402-7,687,550",
        "-",
        "High",
        "Tumour suppressor p53, the gene most often mutated in cancer; germline variants "
        "cause Li-Fraumeni syndrome",
        None,
        "",
    ),
    (
        "APOE",
        "chr19:44,905,749-44,909,395",
        "+",
        "Moderate",
        "Apolipoprotein E; the ε4 allele is the strongest common genetic risk factor for "
        "late-onset Alzheimer disease",
        None,
        "",
    ),
    (
        "CFTR",
        "chr7:117,478,340-117,668,665",
        "+",
        "High",
        "Epithelial chloride channel; biallelic pathogenic variants cause cystic fibrosis",
        None,
        "",
    ),
    (
        "HBB",
        "chr11:5,225,466-5,227,071",
        "-",
        "High",
        "Beta-globin chain of adult haemoglobin; variants cause sickle cell disease and "
        "beta-thalassaemia",
        "HBB|U01317.1:62137-63742",
        "INSDC U01317.1:62137-63742, HBB gene (1,606 bp, genomic: exons and introns), from "
        "Debian package emboss-test, test/genbank/gbpri1.seq",
    ),
    (
        "EGFR",
        "chr7:55,019,032-55,207,338",
        "+",
        "High",
        "Receptor tyrosine kinase; somatic activating mutations in lung cancer predict "
        "response to EGFR inhibitors",
        "EGFR|NM_005228.3",
        "RefSeq NM_005228.3, EGFR mRNA (5,616 bp, exons only), from PyPI sdist biopython "
        "1.88 Tests/codonalign/egfr_nucl.fa",
    ),
    (
        "KRAS",
        "chr12:25,204,789-25,250,931",
        "-",
        "High",
        "RAS GTPase; somatic activating mutations drive pancreatic, colorectal and lung "
        "cancers and predict resistance to anti-EGFR antibodies",
        "KRAS|NM_004985.4",
        "RefSeq NM_004985.4, KRAS mRNA (5,765 bp, exons only), from PyPI sdist hgvs 1.5.7 "
        "tests/data (Apache-2.0)",
    ),
]


def reference_records() -> dict[str, str]:
    """FASTA text of each record of the reference file, by its identifier."""
    data = REFERENCE_FILE.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != REFERENCE_SHA256:
        raise RuntimeError(
            f"{REFERENCE_FILE} has SHA-256 {digest}, not {REFERENCE_SHA256}: the seeded "
            "references must not change under an applied migration (add a new one instead)"
        )
    records = {}
    for chunk in data.decode("ascii").split("\n>"):
        text = ">" + chunk.removeprefix(">").strip() + "\n"
        identifier = text[1:].split(None, 1)[0]
        records[identifier] = text
    return records


def seed_markers(apps, schema_editor) -> None:
    MarkerReference = apps.get_model("analysis", "MarkerReference")
    records = reference_records()
    for name, location, strand, significance, description, record, source in MARKERS:
        MarkerReference.objects.update_or_create(
            name=name,
            defaults={
                "assembly": "GRCh38",
                "location": location,
                "strand": strand,
                "annotation_source": "RefSeq",
                "significance": significance,
                "description": description,
                "reference_sequence": records[record] if record else "",
                "reference_source": f"{source}; {REFERENCE_NOTE}" if record else "",
                "active": True,
            },
        )


def unseed_markers(apps, schema_editor) -> None:
    MarkerReference = apps.get_model("analysis", "MarkerReference")
    MarkerReference.objects.filter(name__in=[marker[0] for marker in MARKERS]).delete()


class Migration(migrations.Migration):
    dependencies = [("analysis", "0001_initial")]

    operations = [migrations.RunPython(seed_markers, unseed_markers)]
