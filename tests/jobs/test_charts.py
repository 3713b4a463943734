"""The job page's pictures (jobs/charts.py), drawn from real analysis reports."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from analysis.report import analyse
from jobs import charts
from jobs.models import Job
from tests.conftest import FASTQ, GENOMES, real_sequence_files

SVG = "{http://www.w3.org/2000/svg}"


def report(path) -> dict:
    with path.open("rb") as handle:
        return analyse(handle).to_dict()


def parse(chart: charts.Chart) -> ET.Element:
    """The SVG must be well-formed XML with a title and a description for screen readers."""
    root = ET.fromstring(str(chart.svg))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    labelled_by = root.get("aria-labelledby").split()
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    assert set(labelled_by) <= ids
    assert root.find(f"{SVG}title").text == chart.title
    assert root.find(f"{SVG}desc").text == chart.summary
    return root


def tooltips(root: ET.Element) -> list[str]:
    return [rect.find(f"{SVG}title").text for rect in root.iter(f"{SVG}rect") if len(rect)]


@pytest.mark.parametrize("path", real_sequence_files(), ids=lambda p: p.name)
def test_every_picture_of_every_real_file_is_well_formed(path):
    analysis = report(path)
    drawn = [
        charts.gc_chart(analysis),
        charts.kmer_chart(analysis),
        charts.quality_chart(analysis),
    ]
    for chart in drawn:
        if chart is not None:
            parse(chart)
    assert drawn[0] is not None and drawn[1] is not None
    assert (drawn[2] is not None) == (analysis["format"] == "fastq")


def test_one_long_record_shows_its_base_composition_and_says_why():
    chart = charts.gc_chart(report(GENOMES / "human" / "human_mtDNA_rCRS.fa"))
    root = parse(chart)
    assert chart.title == "Base composition"
    assert "GC content 44.4 %" in chart.summary
    assert "per window" in chart.note  # the report has no per-window GC: said, not faked
    assert any(tip.startswith("C: 5,181") for tip in tooltips(root))


def test_a_few_records_get_a_bar_each():
    chart = charts.gc_chart(report(GENOMES / "human" / "human_hg38_fragments.fa"))
    tips = tooltips(parse(chart))
    assert tips == ["record 1: 35.6 % GC", "record 2: 43.1 % GC"]
    assert "36.3 % over the whole file" in chart.summary


def test_many_reads_are_drawn_as_a_histogram_that_counts_every_read():
    chart = charts.gc_chart(report(FASTQ / "novaseq_800_reads_phred33.fq"))
    assert chart.title == "GC content per record (distribution)"
    counts = [int(re.match(r"([\d,]+) records", tip).group(1)) for tip in tooltips(parse(chart))]
    assert sum(counts) == 800


def test_the_kmer_spectrum_has_a_bar_per_kmer_and_shows_cpg_depletion():
    analysis = report(GENOMES / "human" / "human_hg38_fragments.fa")
    chart = charts.kmer_chart(analysis)
    tips = tooltips(parse(chart))
    assert len(tips) == 64
    windows = analysis["k_mer_count"]
    aaa = analysis["k_mer_profile"]["AAA"]
    assert tips[0].startswith(f"AAA: {aaa:,} windows ({100 * aaa / windows:.2f} %)")
    # Human DNA lacks CpG: the 3-mers furthest below the base composition's expectation hold CG.
    furthest_below = re.search(r"expectation: (.*)\.$", chart.summary).group(1)
    assert all("CG" in item for item in furthest_below.split(", "))


def test_quality_is_plotted_per_position_like_fastqc():
    analysis = report(FASTQ / "illumina_phred64.fq")
    chart = charts.quality_chart(analysis)
    root = parse(chart)
    points = root.find(f"{SVG}polyline").get("points").split()
    assert len(points) == len(analysis["per_position_mean_quality"]) == analysis["max_length"]
    assert f"Q{analysis['mean_quality']:.1f} over all bases" in chart.summary


def test_a_fasta_file_has_no_quality_picture():
    assert charts.quality_chart(report(GENOMES / "viral" / "phiX174_NC_001422.fa")) is None


def test_species_is_not_drawn_before_its_stage_runs():
    assert charts.species_chart(None) is None
    assert charts.species_chart({}) is None


def test_species_probabilities_are_drawn_with_the_threshold():
    species = {
        "predicted_species": "Human",
        "confidence": 0.8123,
        "probabilities": {"Human": 0.8123, "Bacterial": 0.1, "Plant": 0.06, "Viral": 0.0277},
        "threshold": 0.55,
        "note": None,
    }
    chart = charts.species_chart(species)
    root = parse(chart)
    labels = [text.text for text in root.iter(f"{SVG}text")]
    assert labels[:2] == ["Human", "81.2 %"]
    assert "threshold 55 %" in labels
    assert "Predicted Human with confidence 81.2 %" in chart.summary


def test_text_from_results_is_escaped():
    chart = charts.species_chart(
        {"predicted_species": "<script>", "confidence": 0.5, "probabilities": {"<script>": 0.5}}
    )
    assert "<script>" not in str(chart.svg)
    parse(chart)


def test_a_running_job_has_no_pictures_yet():
    assert charts.job_charts(Job(status="processing")) == {}
