"""Consumers fed whole batches (add_batch) give exactly what record-by-record feeding gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.markers import MarkerConsumer, MarkerPanelEntry
from analysis.parser import iter_records, open_decompressed
from analysis.report import analyse
from analysis.species import SpeciesConsumer

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]


def panel() -> list[MarkerPanelEntry]:
    reference = (REPO / "analysis" / "reference" / "human_markers.fa").read_bytes()
    return [MarkerPanelEntry("ALL", "chr?", "test", "every reference", reference)]


@pytest.mark.parametrize(
    "path",
    [
        DATA / "fastq" / "novaseq_800_reads_phred33.fq",
        DATA / "fastq" / "roche454_longreads_phred33.fq",
        DATA / "genomes" / "human" / "human_beta_globin_locus_U01317.fa",
        DATA / "genomes" / "human" / "human_hg38_fragments.fa",
    ],
    ids=lambda p: p.name,
)
def test_batch_and_record_feeding_agree(path):
    by_batch = [SpeciesConsumer(), MarkerConsumer(panel())]
    with path.open("rb") as handle:
        analyse(handle, consumers=by_batch)
    by_record = [SpeciesConsumer(), MarkerConsumer(panel())]
    with path.open("rb") as handle:
        for record in iter_records(open_decompressed(handle)):
            for consumer in by_record:
                consumer.add(record)
    assert by_batch[0].result() == by_record[0].result()
    assert by_batch[1].result() == by_record[1].result()
