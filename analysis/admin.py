from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from analysis.markers import (
    MAX_REFERENCE_LETTERS,
    MarkerReferenceError,
    read_reference_fasta,
    reference_kmers,
)
from analysis.models import MarkerReference


class MarkerReferenceForm(forms.ModelForm):
    reference_file = forms.FileField(
        required=False,
        label="Reference FASTA file",
        help_text=(
            "A nucleotide FASTA file (plain or gzip) of the gene or transcript; it replaces "
            f"the reference sequence below. Every record counts; at most "
            f"{MAX_REFERENCE_LETTERS:,} letters."
        ),
    )

    class Meta:
        model = MarkerReference
        fields = (
            "name",
            "active",
            "significance",
            "description",
            "assembly",
            "location",
            "strand",
            "annotation_source",
            "reference_sequence",
            "reference_source",
        )
        widgets = {
            "reference_sequence": forms.Textarea(
                attrs={"rows": 8, "cols": 80, "spellcheck": "false", "class": "vLargeTextField"}
            )
        }

    def clean_reference_file(self):
        upload = self.cleaned_data.get("reference_file")
        if not upload:
            return None
        try:
            # With the site's upload handler this is a StagedUpload: ciphertext on disk that
            # read() decrypts, or a `problem` when it was refused while streaming.
            problem = getattr(upload, "problem", None)
            if problem is not None:
                detail = f": {problem.detail}" if problem.detail else ""
                raise forms.ValidationError(f"{problem.kind.message}{detail}")
            try:
                return read_reference_fasta(upload), upload.name
            except MarkerReferenceError as error:
                raise forms.ValidationError(str(error)) from error
        finally:
            # The staged copy is not needed once read: its content is stored in the row.
            discard = getattr(upload, "discard", None)
            if discard is not None:
                discard()

    def clean_reference_sequence(self) -> str:
        text = self.cleaned_data.get("reference_sequence", "")
        if text.strip():
            try:
                reference_kmers(text.encode("utf-8"))
            except MarkerReferenceError as error:
                raise forms.ValidationError(str(error)) from error
        return text

    def clean(self):
        cleaned = super().clean()
        attached = cleaned.get("reference_file")
        if attached:
            fasta, file_name = attached
            cleaned["reference_sequence"] = fasta.text
            if not cleaned.get("reference_source"):
                source = (
                    f"FASTA file {file_name!r} attached in admin on "
                    f"{timezone.now():%Y-%m-%d}: {fasta.records} record(s), "
                    f"{fasta.letters:,} letters, SHA-256 {fasta.sha256[:16]}"
                )
                cleaned["reference_source"] = source
        return cleaned


@admin.register(MarkerReference)
class MarkerReferenceAdmin(admin.ModelAdmin):
    form = MarkerReferenceForm
    list_display = (
        "name",
        "full_location",
        "significance",
        "screened",
        "reference_length",
        "active",
        "updated_at",
    )
    list_filter = ("active", "significance", "annotation_source")
    search_fields = ("name", "description", "location", "reference_source")
    search_help_text = "A gene symbol, or words of its description, location or source."
    readonly_fields = ("updated_at",)
    fieldsets = (
        (None, {"fields": ("name", "active", "significance", "description")}),
        ("Location", {"fields": ("assembly", "location", "strand", "annotation_source")}),
        (
            "Reference sequence",
            {
                "description": (
                    "Without a reference sequence the marker is reported as not screened, "
                    "never as absent."
                ),
                "fields": (
                    "reference_file",
                    "reference_sequence",
                    "reference_source",
                    "updated_at",
                ),
            },
        ),
    )

    @admin.display(boolean=True, description="Screened")
    def screened(self, marker: MarkerReference) -> bool:
        return marker.has_reference

    @admin.display(description="Reference letters")
    def reference_length(self, marker: MarkerReference) -> str:
        if not marker.has_reference:
            return "—"
        lines = marker.reference_sequence.splitlines()
        letters = sum(len(line.strip()) for line in lines if not line.startswith(">"))
        return f"{letters:,}"
