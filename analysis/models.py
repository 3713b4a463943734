from __future__ import annotations

from django.db import models


class AnnotationSource(models.TextChoices):
    ENSEMBL = "Ensembl", "Ensembl gene span"
    REFSEQ = "RefSeq", "RefSeq gene span"


class Significance(models.TextChoices):
    HIGH = "High", "High"
    MODERATE = "Moderate", "Moderate"
    LOW = "Low", "Low"


class MarkerReference(models.Model):
    """One gene of the marker panel, with the reference sequence it is screened against.

    A marker without a reference sequence stays in the panel and is reported as "not
    screened" (DESIGN.md, "Markers"); `active` takes it out of the panel altogether.
    """

    name = models.CharField(max_length=32, unique=True, help_text="Gene symbol (HGNC).")
    assembly = models.CharField(max_length=16, default="GRCh38")
    location = models.CharField(
        max_length=64,
        help_text="Gene span on the assembly, e.g. chr11:5,225,466-5,227,071.",
    )
    strand = models.CharField(
        max_length=1, choices=[("+", "+ (forward)"), ("-", "- (reverse)")], blank=True
    )
    annotation_source = models.CharField(
        max_length=16,
        choices=AnnotationSource.choices,
        default=AnnotationSource.REFSEQ,
        help_text=(
            "Which annotation the span comes from: Ensembl and RefSeq gene models differ by "
            "up to tens of kb."
        ),
    )
    significance = models.CharField(
        max_length=16, choices=Significance.choices, help_text="Clinical significance."
    )
    description = models.CharField(max_length=255, help_text="One line: what the gene is for.")
    reference_sequence = models.TextField(
        blank=True,
        help_text=(
            "FASTA text (every record counts) or a bare nucleotide sequence. Empty: the "
            "marker is reported as not screened."
        ),
    )
    reference_source = models.CharField(
        max_length=500,
        blank=True,
        help_text="Where the reference sequence comes from (accession, coordinates, package).",
    )
    active = models.BooleanField(
        default=True, help_text="Inactive markers are left out of the panel and the results."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_reference(self) -> bool:
        return bool(self.reference_sequence.strip())

    @property
    def full_location(self) -> str:
        """The location as reported: span, strand, assembly and annotation, e.g.
        "chr11:5,225,466-5,227,071 (-), GRCh38, RefSeq"."""
        strand = f" ({self.strand})" if self.strand else ""
        return f"{self.location}{strand}, {self.assembly}, {self.annotation_source}"
