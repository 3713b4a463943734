"""Labelled evaluation corpus for the AML defence, built from real data (numpy, no Django).

Every item is what an attacker (or a broken pipeline) could upload instead of real sequence.
The generators take real genome segments, real proteins (translated from open reading frames
of the real genomes) and real English text (the Python documentation shipped with CPython's
``pydoc_data``) and disguise or destroy them in the ways listed in ATTACK_CLASSES. Nothing is
random without a seed: the same seed gives the same corpus.

Adversarial mutations (``adversarial_mutation``) need a species classifier to attack: a
linear model over z-scored canonical 4-mer frequencies of fixed-length windows whose file
answer is the mean of the windows' probabilities, which is what analysis.species serves
(LinearWindowClassifier.from_species_model) and what security.aml_training fits as a
stand-in when no species weights exist.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from security.aml import COLUMN_OF_CODE, FEATURES, K, kmer_codes, to_digits

BASES = b"ACGT"

ATTACK_CLASSES: dict[str, str] = {
    "random_uniform": "uniformly random A/C/G/T",
    "random_gc_biased": "independent random letters with a GC content of 25-75%",
    "low_complexity": "homopolymers, short tandem repeats and two-letter alphabets, 1% noise",
    "repeat_expanded": "real sequence with half its length added as expanded tandem repeats "
    "of its own motifs (1-60 bp units, 2% mutated)",
    "mono_shuffle": "real sequence with its letters shuffled (base composition kept)",
    "di_shuffle": "real sequence shuffled keeping every dinucleotide count (Euler path)",
    "protein_2bit": "real proteins written as bases, two bits a base (ASCII)",
    "protein_letter_map": "real proteins, one base per amino acid (letter index mod 4)",
    "protein_back_translated": "real proteins back-translated with random synonymous codons",
    "text_2bit": "English text written as bases, two bits a base (ASCII)",
    "text_letter_map": "English text, one base per letter (letter index mod 4)",
    "adversarial_mutation": "real sequence with greedy base substitutions that flip the "
    "species classifier's answer (stops at the flip; at most 10% of the bases)",
    "adversarial_confident": "as adversarial_mutation, pushed on until another class leads "
    "by 0.5 in probability (at most 25% of the bases)",
}
"""Classes that AML should reject, with what their items are."""

KNOWN_GAP_CLASSES: dict[str, str] = {
    "tri_shuffle": "real sequence shuffled keeping every trinucleotide count (Euler path)",
    "minority_random": "real sequence with a quarter of its length replaced by random blocks",
}
"""Off-manifold input AML is not designed to catch; measured to state the gap honestly."""


@dataclass(frozen=True)
class CorpusItem:
    attack_class: str
    sequence: bytes
    source: str | None
    """Name of the real file the item was made from (None for text and random items)."""
    detail: dict[str, Any] = field(default_factory=dict)


# --- real material -------------------------------------------------------------------------


@dataclass(frozen=True)
class RealSource:
    """One real genome (all records joined) under a name (its path in the data directory)."""

    name: str
    sequence: bytes


def pick_segment(
    sources: Sequence[RealSource], length: int, rng: np.random.Generator
) -> tuple[bytes, str]:
    """A random segment of exactly `length` A/C/G/T letters (upper case) from a random source
    long enough; sources with N or other codes in the drawn range are drawn again."""
    usable = [source for source in sources if len(source.sequence) >= length]
    if not usable:
        raise ValueError(f"no real source holds {length:,} letters")
    for _ in range(1000):
        source = usable[int(rng.integers(len(usable)))]
        start = int(rng.integers(len(source.sequence) - length + 1))
        segment = source.sequence[start : start + length].upper().replace(b"U", b"T")
        if not segment.translate(None, BASES):
            return segment, source.name
    raise ValueError("no segment of A/C/G/T alone found")


_CODONS = ["".join(c) for c in itertools.product("TCAG", repeat=3)]
_AMINO_ACIDS = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
GENETIC_CODE = dict(zip(_CODONS, _AMINO_ACIDS, strict=True))
"""NCBI translation table 1."""
SYNONYMOUS_CODONS: dict[str, list[str]] = {}
for _codon, _amino_acid in GENETIC_CODE.items():
    SYNONYMOUS_CODONS.setdefault(_amino_acid, []).append(_codon)


_AMINO_ACID_OF_CODON = np.frombuffer(
    "".join(GENETIC_CODE["".join(c)] for c in itertools.product("ACGT", repeat=3)).encode() + b"X",
    np.uint8,
)
"""Amino acid of each codon by its A/C/G/T digits (16a + 4b + c); index 64 is X (not ACGT)."""


def real_proteins(sources: Sequence[RealSource], min_length: int = 200) -> list[str]:
    """Proteins of the open reading frames (ATG to stop, both strands, at least `min_length`
    amino acids) of the sources: real proteins, found without an annotation."""
    proteins = []
    for source in sources:
        forward = to_digits(source.sequence).astype(np.int64)
        reverse = np.where(forward < 4, 3 - forward, 4)[::-1]
        for strand in (forward, reverse):
            for frame in range(3):
                codons = strand[frame : frame + (len(strand) - frame) // 3 * 3].reshape(-1, 3)
                index = codons[:, 0] * 16 + codons[:, 1] * 4 + codons[:, 2]
                index[(codons > 3).any(axis=1)] = 64
                amino_acids = _AMINO_ACID_OF_CODON[index].tobytes().decode("ascii")
                for piece in amino_acids.split("*"):
                    start = piece.find("M")
                    if start >= 0 and len(piece) - start >= min_length and "X" not in piece:
                        proteins.append(piece[start:])
    return proteins


def english_text() -> str:
    """Real English prose: the topic help of the Python documentation (pydoc_data)."""
    from pydoc_data.topics import topics

    return "\n".join(topics[name] for name in sorted(topics))


# --- generators ------------------------------------------------------------------------------


def random_bases(length: int, rng: np.random.Generator, gc: float = 0.5) -> bytes:
    """Independent random letters with the given GC fraction."""
    weights = np.array([1 - gc, gc, gc, 1 - gc]) / 2
    return bytes(np.frombuffer(BASES, np.uint8)[rng.choice(4, size=length, p=weights)])


def point_mutations(sequence: bytes, rate: float, rng: np.random.Generator) -> bytes:
    letters = np.frombuffer(sequence, np.uint8).copy()
    where = rng.random(len(letters)) < rate
    letters[where] = np.frombuffer(BASES, np.uint8)[rng.integers(4, size=int(where.sum()))]
    return letters.tobytes()


def low_complexity(length: int, rng: np.random.Generator) -> tuple[bytes, dict[str, Any]]:
    """Homopolymer runs, a short tandem repeat, or a random two-letter alphabet, 1% noise."""
    kind = ("homopolymer_runs", "tandem_repeat", "two_letters")[int(rng.integers(3))]
    if kind == "homopolymer_runs":
        runs = []
        while sum(map(len, runs)) < length:
            runs.append(bytes([BASES[int(rng.integers(4))]]) * int(rng.integers(5, 60)))
        sequence = b"".join(runs)[:length]
        detail: dict[str, Any] = {"kind": kind}
    elif kind == "tandem_repeat":
        unit = random_bases(int(rng.integers(1, 7)), rng)
        sequence = (unit * (length // len(unit) + 1))[:length]
        detail = {"kind": kind, "unit_length": len(unit)}
    else:
        pair = rng.choice(4, size=2, replace=False)
        letters = np.frombuffer(BASES, np.uint8)[pair]
        sequence = bytes(letters[rng.integers(2, size=length)])
        detail = {"kind": kind}
    return point_mutations(sequence, 0.01, rng), detail


def repeat_expanded(segment: bytes, rng: np.random.Generator) -> tuple[bytes, dict[str, Any]]:
    """`segment` with as many letters again inserted as expansions of its own motifs: blocks of
    500-3,000 letters of a 1-60 bp unit copied from the segment, 2% of the copies mutated."""
    target = len(segment)
    pieces: list[bytes] = []
    cursor = 0
    added = 0
    units = []
    while added < target:
        block = min(int(rng.integers(500, 3001)), target - added)
        unit_length = int(rng.integers(1, 61))
        at = int(rng.integers(len(segment) - unit_length))
        unit = segment[at : at + unit_length]
        expansion = point_mutations((unit * (block // unit_length + 1))[:block], 0.02, rng)
        cut = int(rng.integers(cursor, len(segment) + 1))
        pieces += [segment[cursor:cut], expansion]
        cursor = cut
        added += block
        units.append(unit_length)
    pieces.append(segment[cursor:])
    return b"".join(pieces), {"expanded_letters": added, "unit_lengths": units}


def klet_shuffle(sequence: bytes, k: int, rng: np.random.Generator) -> bytes:
    """A random sequence with exactly the k-mer counts of `sequence` (k = 1, 2 or 3).

    k = 1 is a plain shuffle. For k >= 2 this is the Euler-path method of Altschul and Erickson
    (1985) as given by Kandel et al. (1996): walk the graph of (k-1)-mers whose edges are the
    k-mers, with each vertex's last exit drawn to form a tree towards the final vertex.
    """
    if k == 1:
        letters = np.frombuffer(sequence, np.uint8).copy()
        rng.shuffle(letters)
        return letters.tobytes()
    text = sequence.decode("ascii")
    edges: dict[str, list[str]] = {}
    for i in range(len(text) - k + 1):
        edges.setdefault(text[i : i + k - 1], []).append(text[i + 1 : i + k])
    first, last = text[: k - 1], text[len(text) - k + 1 :]
    while True:
        last_exit = {
            vertex: targets[int(rng.integers(len(targets)))]
            for vertex, targets in edges.items()
            if vertex != last
        }
        if all(_reaches(vertex, last, last_exit) for vertex in last_exit):
            break
    order: dict[str, list[str]] = {}
    for vertex, targets in edges.items():
        rest = list(targets)
        if vertex in last_exit:
            rest.remove(last_exit[vertex])
        rng.shuffle(rest)
        if vertex in last_exit:
            rest.append(last_exit[vertex])
        order[vertex] = rest[::-1]  # popped from the end
    out = [first]
    vertex = first
    for _ in range(len(text) - k + 1):
        nxt = order[vertex].pop()
        out.append(nxt[-1])
        vertex = nxt
    return "".join(out).encode("ascii")


def _reaches(vertex: str, last: str, last_exit: dict[str, str]) -> bool:
    seen = set()
    while vertex != last:
        if vertex in seen or vertex not in last_exit:
            return False
        seen.add(vertex)
        vertex = last_exit[vertex]
    return True


def two_bit_encoding(text: bytes) -> bytes:
    """Each byte as four bases, two bits a base (how data is hidden in DNA storage)."""
    values = np.frombuffer(text, np.uint8)
    digits = np.stack([(values >> shift) & 3 for shift in (6, 4, 2, 0)], axis=1).ravel()
    return bytes(np.frombuffer(BASES, np.uint8)[digits])


def letter_map(text: str, alphabet: str) -> bytes:
    """One base per letter of `alphabet` found in `text` (its index mod 4); others dropped."""
    table = {letter: BASES[index % 4] for index, letter in enumerate(alphabet)}
    return bytes(table[letter] for letter in text.upper() if letter in table)


def back_translate(protein: str, rng: np.random.Generator) -> bytes:
    """Codons for a protein, each drawn uniformly from the synonymous codons."""
    return "".join(
        SYNONYMOUS_CODONS[amino_acid][int(rng.integers(len(SYNONYMOUS_CODONS[amino_acid])))]
        for amino_acid in protein
    ).encode("ascii")


def _fill(make: Callable[[], bytes], length: int) -> bytes:
    pieces: list[bytes] = []
    while sum(map(len, pieces)) < length:
        pieces.append(make())
    return b"".join(pieces)[:length]


# --- adversarial mutations -------------------------------------------------------------------


def window_kmer_counts(digits: np.ndarray, window_length: int) -> np.ndarray:
    """Canonical 4-mer counts of the consecutive whole windows of `digits` (tail dropped)."""
    windows = len(digits) // window_length
    rows = digits[: windows * window_length].reshape(windows, window_length)
    codes = COLUMN_OF_CODE[kmer_codes(rows, K)]
    flat = codes + (np.arange(windows) * (FEATURES + 1))[:, None]
    counts = np.bincount(flat.ravel(), minlength=windows * (FEATURES + 1))
    return counts.reshape(windows, FEATURES + 1)[:, :FEATURES]


class SpeciesLikeModel(Protocol):
    classes: tuple[str, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coefficients: np.ndarray
    intercepts: np.ndarray
    temperature: float


@dataclass(frozen=True, eq=False)
class LinearWindowClassifier:
    """Multinomial logistic regression over z-scored canonical 4-mer frequencies of windows of
    `window_length` letters; a sequence's answer is the mean of its windows' probabilities."""

    classes: tuple[str, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coefficients: np.ndarray
    """classes x FEATURES"""
    intercepts: np.ndarray
    temperature: float
    window_length: int
    name: str

    @classmethod
    def from_species_model(
        cls, model: SpeciesLikeModel, window_length: int, name: str
    ) -> LinearWindowClassifier:
        return cls(
            classes=tuple(model.classes),
            feature_mean=np.asarray(model.feature_mean),
            feature_scale=np.asarray(model.feature_scale),
            coefficients=np.asarray(model.coefficients),
            intercepts=np.asarray(model.intercepts),
            temperature=float(model.temperature),
            window_length=window_length,
            name=name,
        )

    def window_counts(self, digits: np.ndarray) -> np.ndarray:
        return window_kmer_counts(digits, self.window_length)

    def window_probabilities(self, counts: np.ndarray) -> np.ndarray:
        frequencies = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        logits = ((frequencies - self.feature_mean) / self.feature_scale) @ self.coefficients.T
        logits = (logits + self.intercepts) / self.temperature
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def probabilities(self, sequence: bytes) -> np.ndarray:
        """The sequence's class probabilities (mean over its whole windows)."""
        counts = self.window_counts(to_digits(sequence))
        return self.window_probabilities(counts).mean(axis=0)


def adversarial_mutation(
    sequence: bytes,
    classifier: LinearWindowClassifier,
    *,
    max_fraction: float = 0.1,
    step_fraction: float = 0.002,
    margin: float = 0.0,
) -> tuple[bytes, dict[str, Any]]:
    """Greedy white-box attack: substitute bases until the classifier's answer changes.

    Each step takes the gradient of p[original] - p[runner-up] of the mean window
    probabilities with respect to every window's 4-mer counts, scores every single-base
    substitution by the counts it changes (up to four 4-mers out, four in), and applies the
    best `step_fraction` of the length at once (no two within four letters of each other, so
    no 4-mer holds two of them). It stops when another class leads by `margin` or when
    `max_fraction` of the letters are mutated. Returns the mutated sequence and what it took.
    """
    digits = to_digits(sequence).copy()
    if (digits > 3).any():
        raise ValueError("the attack takes A/C/G/T only")
    length_w = classifier.window_length
    usable = len(digits) // length_w * length_w
    if not usable:
        raise ValueError("the sequence is shorter than one classifier window")
    original = classifier.probabilities(sequence)
    label = int(np.argmax(original))
    mutated = np.zeros(len(digits), dtype=bool)
    budget = int(max_fraction * len(digits))
    per_step = max(1, int(step_fraction * len(digits)))
    weights = classifier.coefficients / classifier.feature_scale / classifier.temperature
    positions = np.arange(usable)
    window_of = positions // length_w
    flipped = False
    while True:
        counts = classifier.window_counts(digits)
        probabilities = classifier.window_probabilities(counts)
        mean = probabilities.mean(axis=0)
        others = mean.copy()
        others[label] = -1.0
        runner_up = int(np.argmax(others))
        if mean[runner_up] - mean[label] > margin:
            flipped = True
            break
        if mutated.sum() >= budget:
            break
        # d(p_label - p_runner_up) / d logits of each window (softmax Jacobian), then / d counts.
        direction = np.zeros(len(classifier.classes))
        direction[label], direction[runner_up] = 1.0, -1.0
        gradient_logits = probabilities * (
            direction - (probabilities[:, label] - probabilities[:, runner_up])[:, None]
        )
        totals = np.maximum(counts.sum(axis=1), 1)[:, None]
        gradient_counts = (gradient_logits @ weights) / totals / len(counts)
        gradient_counts = np.concatenate([gradient_counts, np.zeros((len(counts), 1))], axis=1)
        change = _substitution_effects(digits[:usable], length_w, gradient_counts, window_of)
        change[mutated[:usable]] = np.inf
        best = np.argsort(change.min(axis=1), kind="stable")
        taken = np.zeros(usable + 8, dtype=bool)
        applied = 0
        for position in best:
            if change[position].min() >= 0 or applied >= per_step:
                break
            if taken[max(position - 4, 0) : position + 5].any():
                continue
            digits[position] = int(np.argmin(change[position]))
            mutated[position] = True
            taken[position] = True
            applied += 1
            if mutated.sum() >= budget:
                break
        if not applied:
            break
    result = bytes(np.frombuffer(BASES, np.uint8)[digits])
    final = classifier.probabilities(result)
    return result, {
        "classifier": classifier.name,
        "original_class": classifier.classes[label],
        "original_confidence": round(float(original[label]), 4),
        "final_class": classifier.classes[int(np.argmax(final))],
        "final_confidence": round(float(final.max()), 4),
        "flipped": flipped,
        "mutated_fraction": round(float(mutated.sum()) / len(digits), 5),
    }


def _substitution_effects(
    digits: np.ndarray, length_w: int, gradient: np.ndarray, window_of: np.ndarray
) -> np.ndarray:
    """First-order change of the objective for putting base b (column) at each position: the
    sum over the 4-mers covering the position of gradient[new 4-mer] - gradient[old 4-mer]."""
    rows = digits.reshape(-1, length_w)
    codes = kmer_codes(rows, K).ravel()  # 4**K where the 4-mer runs past its window's end
    change = np.zeros((len(digits), 4))
    current = digits.astype(np.int64)
    for offset in range(K):  # the 4-mer starting `offset` letters before the position
        start = np.arange(len(digits)) - offset
        ok = (start >= 0) & (start // length_w == window_of) & (codes[np.maximum(start, 0)] < 4**K)
        old = np.where(ok, codes[np.maximum(start, 0)], 0)
        shift = 2 * (K - 1 - offset)
        old_column = COLUMN_OF_CODE[old]
        for base in range(4):
            new = np.where(ok, old + ((base - current) << shift), 0)
            delta = gradient[window_of, COLUMN_OF_CODE[new]] - gradient[window_of, old_column]
            change[:, base] += np.where(ok, delta, 0.0)
    change[np.arange(len(digits)), current] = np.inf  # not a substitution
    return change


# --- the corpus ------------------------------------------------------------------------------


def build_corpus(
    sources: Sequence[RealSource],
    *,
    seed: int,
    items_per_class: int,
    lengths: Sequence[int],
    classifier: LinearWindowClassifier | None = None,
    classes: Sequence[str] | None = None,
    protein_sources: Sequence[RealSource] | None = None,
) -> list[CorpusItem]:
    """`items_per_class` items of every class for each length in `lengths` (letters).

    Real material comes from `sources` (whole genomes); proteins from the open reading
    frames of `protein_sources` (default: `sources`; bacterial genomes are dense in genes).
    Adversarial items need `classifier` and are left out without one.
    """
    rng = np.random.default_rng(seed)
    wanted = list(classes or [*ATTACK_CLASSES, *KNOWN_GAP_CLASSES])
    proteins = (
        real_proteins(protein_sources or sources)
        if any(c.startswith("protein") for c in wanted)
        else []
    )
    text = english_text() if any(c.startswith("text") for c in wanted) else ""
    items: list[CorpusItem] = []
    for attack_class, length, _ in itertools.product(wanted, lengths, range(items_per_class)):
        item = _make_item(attack_class, length, sources, proteins, text, classifier, rng)
        if item is not None:
            items.append(item)
    return items


def _make_item(
    attack_class: str,
    length: int,
    sources: Sequence[RealSource],
    proteins: list[str],
    text: str,
    classifier: LinearWindowClassifier | None,
    rng: np.random.Generator,
) -> CorpusItem | None:
    source: str | None = None
    detail: dict[str, Any] = {}
    if attack_class == "random_uniform":
        sequence = random_bases(length, rng)
    elif attack_class == "random_gc_biased":
        gc = float(rng.uniform(0.25, 0.75))
        sequence, detail = random_bases(length, rng, gc), {"gc": round(gc, 3)}
    elif attack_class == "low_complexity":
        sequence, detail = low_complexity(length, rng)
    elif attack_class == "repeat_expanded":
        segment, source = pick_segment(sources, length // 2, rng)
        sequence, detail = repeat_expanded(segment, rng)
    elif attack_class in ("mono_shuffle", "di_shuffle", "tri_shuffle"):
        segment, source = pick_segment(sources, length, rng)
        k = {"mono_shuffle": 1, "di_shuffle": 2, "tri_shuffle": 3}[attack_class]
        sequence = klet_shuffle(segment, k, rng)
    elif attack_class == "minority_random":
        segment, source = pick_segment(sources, length, rng)
        letters = bytearray(segment)
        block = length // 8
        for start in rng.choice(8, size=2, replace=False) * block:
            letters[start : start + block] = random_bases(block, rng)
        sequence = bytes(letters)
    elif attack_class.startswith("protein"):
        order = rng.permutation(len(proteins))
        picked = iter(itertools.cycle(order))

        def next_protein() -> str:
            return proteins[int(next(picked))]

        if attack_class == "protein_2bit":
            sequence = _fill(lambda: two_bit_encoding(next_protein().encode()), length)
        elif attack_class == "protein_letter_map":
            sequence = _fill(lambda: letter_map(next_protein(), "ACDEFGHIKLMNPQRSTVWY"), length)
        else:
            sequence = _fill(lambda: back_translate(next_protein(), rng), length)
    elif attack_class.startswith("text"):
        start = int(rng.integers(len(text) - 2 * length))
        passage = text[start : start + 2 * length]
        if attack_class == "text_2bit":
            sequence = two_bit_encoding(passage.encode("utf-8"))[:length]
        else:
            sequence = letter_map(passage, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")[:length]
    elif attack_class in ("adversarial_mutation", "adversarial_confident"):
        if classifier is None:
            return None
        segment, source = pick_segment(sources, length, rng)
        if attack_class == "adversarial_mutation":
            sequence, detail = adversarial_mutation(segment, classifier)
        else:
            sequence, detail = adversarial_mutation(
                segment, classifier, max_fraction=0.25, margin=0.5
            )
    else:
        raise ValueError(f"unknown attack class {attack_class!r}")
    return CorpusItem(attack_class, sequence, source, detail)
