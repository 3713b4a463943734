"""Composition: GC, letter counts, soft-masking, N50, k-mers, checked against plain Python."""

from __future__ import annotations

import io
import random
from collections import Counter

import numpy as np
import pytest

from analysis import composition
from analysis.composition import CompositionAccumulator, byte_histogram, gc_content, n50
from analysis.kmers import MAX_K, KmerCounter, count_kmers, kmer_labels
from analysis.report import analyse


def naive_kmers(sequences: list[bytes], k: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for sequence in sequences:
        text = sequence.decode().upper().replace("U", "T")
        for start in range(len(text) - k + 1):
            window = text[start : start + k]
            if set(window) <= set("ACGT"):
                counts[window] += 1
    return counts


def random_sequence(generator: random.Random, length: int, alphabet: str = "ACGTacgtNRYu") -> bytes:
    return "".join(generator.choice(alphabet) for _ in range(length)).encode()


def test_it_gives_gc_as_a_percentage_of_unambiguous_bases():
    assert gc_content(b"GGCCAATT") == 50.0
    assert gc_content(b"ggccAATT") == 50.0
    assert gc_content(b"GCNNNNRY") == 100.0
    assert gc_content(b"GCUU") == 50.0


def test_it_gives_the_same_gc_for_long_sequences_counted_by_histogram():
    generator = random.Random(4097)
    sequence = random_sequence(generator, composition.HISTOGRAM_FROM + 1)
    text = sequence.decode().upper()
    expected = 100 * (text.count("G") + text.count("C")) / sum(map(text.count, "ACGTU"))
    assert gc_content(sequence) == pytest.approx(expected)
    assert gc_content(b"N" * (composition.HISTOGRAM_FROM + 1)) is None


def test_it_gives_no_gc_without_unambiguous_bases():
    assert gc_content(b"") is None
    assert gc_content(b"NNNN") is None


def test_it_counts_1022_k_mers_in_1024_bases():
    generator = random.Random(1024)
    sequence = random_sequence(generator, 1024, "ACGT")
    report = analyse(io.BytesIO(b">x\n" + sequence + b"\n"))
    assert report.sequence_length == 1024
    assert report.k_mer_count == 1022


def test_it_never_counts_a_k_mer_across_two_records():
    report = analyse(io.BytesIO(b">a\nAC\n>b\nGT\n"))
    assert report.k_mer_count == 0
    report = analyse(io.BytesIO(b">a\nACG\nT\n>b\nGT\n"))
    assert report.k_mer_count == 2  # ACG, CGT; the line break inside a record does not count


def test_it_reads_u_as_t_in_k_mers():
    assert count_kmers(b"ACGU") == {"ACG": 1, "CGT": 1}


@pytest.mark.parametrize("k", range(1, MAX_K + 1))
def test_it_counts_k_mers_like_a_plain_python_loop(k):
    generator = random.Random(k)
    sequences = [random_sequence(generator, generator.randrange(0, 300)) for _ in range(40)]
    counter = KmerCounter(k)
    counter.add(sequences)
    expected = naive_kmers(sequences, k)
    found = {
        label: int(count)
        for label, count in zip(kmer_labels(k), counter.counts, strict=True)
        if count
    }
    assert found == dict(expected)
    assert counter.total == sum(expected.values())
    assert counter.distinct == len(expected)


def test_it_counts_k_mers_across_numpy_slices(monkeypatch):
    from analysis import kmers

    monkeypatch.setattr(kmers, "SLICE_LETTERS", 7)
    generator = random.Random(7)
    sequences = [random_sequence(generator, 100) for _ in range(5)]
    counter = KmerCounter(4)
    counter.add(sequences)
    assert counter.total == sum(naive_kmers(sequences, 4).values())


def test_it_refuses_an_unsupported_k():
    for k in (0, MAX_K + 1):
        with pytest.raises(ValueError):
            KmerCounter(k)


def test_it_lists_the_k_mer_profile_for_small_k_only():
    report = analyse(io.BytesIO(b">a\nACGTACGT\n"), k=4)
    profile = report.to_dict()["k_mer_profile"]
    assert len(profile) == 256
    assert profile["ACGT"] == 2
    assert analyse(io.BytesIO(b">a\nACGTACGT\n"), k=6).to_dict()["k_mer_profile"] is None


@pytest.mark.parametrize("length", [0, 1, 2, 3, 1001])
def test_it_histograms_bytes_like_bincount(monkeypatch, length):
    monkeypatch.setattr(composition, "SLICE_BYTES", 64)
    data = bytes(random.Random(length).randrange(256) for _ in range(length))
    expected = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
    assert (byte_histogram(data) == expected).all()


def test_it_counts_letters_ambiguity_codes_and_soft_masking():
    accumulator = CompositionAccumulator()
    accumulator.add([b"ACGTacgtNnRYKMbdhvU"])
    assert accumulator.base_counts == {
        "A": 2, "C": 2, "G": 2, "T": 2, "U": 1, "N": 2, "other": 8,
    }  # fmt: skip
    assert accumulator.sequence_length == 19
    assert accumulator.soft_masked_fraction == pytest.approx(9 / 19)
    assert accumulator.gc_content == pytest.approx(100 * 4 / 9)
    assert accumulator.unambiguous_fraction == pytest.approx(9 / 19)


def test_it_gives_the_fasta_quality_score_as_the_unambiguous_fraction():
    report = analyse(io.BytesIO(b">a\nACGTNNNN\n"))
    assert report.quality_score == 0.5
    assert report.gc_content == 50.0


def test_it_computes_n50_like_seqkit():
    assert n50(Counter({2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1})) == 8
    assert n50(Counter({100: 1, 1: 50})) == 100
    assert n50(Counter({0: 3})) is None


def test_it_reports_lengths():
    report = analyse(io.BytesIO(b">a\nACGTACGTAC\n>b\nACG\n>c\nACGTA\n"))
    assert (report.min_length, report.max_length) == (3, 10)
    assert report.mean_length == 6.0
    assert report.n50 == 10
