"""Speed and memory of one analysis pass against seqkit, on 100,000 real reads.

    apt-get install -y gasic-examples seqkit
    .venv/bin/python benchmarks/analysis.py [--repeat 5] [--input PATH.fastq.gz]

Inputs: the 25 MB FASTQ of gasic-examples (SRR059298_subset, 100,000 reads of 72 bp), as
gzip and plain, and a 50 MB file made of two copies of it (two gzip members when compressed).
For each input it prints MB/s of decompressed data and seconds (median and best of --repeat
runs, interleaved so that load from other processes hits every tool alike) for:

- ours, in process: `analysis.report.analyse()` with no consumer, and with the species model
  and the marker panel as consumers (the pipeline's whole analysis stage);
- ours, whole process: `python -c` that imports the analysis and runs it, as a command line
  tool would (interpreter and numpy start-up included);
- `seqkit stats -a` (all statistics: N50, Q20/Q30, GC) and `seqkit fx2tab -n -g` (GC per
  read, which our per-record summaries also give), and the two together;

then the ratios, the peak resident memory of each (ru_maxrss of a process running only it) and
the figures both tools agree on, as a check that they computed the same thing.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.markers import MarkerConsumer, MarkerPanelEntry  # noqa: E402
from analysis.report import analyse  # noqa: E402
from analysis.species import SpeciesConsumer  # noqa: E402

DEFAULT_INPUT = Path("/usr/share/doc/gasic/examples/reads/SRR059298_subset.fastq.gz")
PYTHON = sys.executable

MEMORY_PROBE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
STATS = "seqkit stats -a -j 1"
STATS_THREADS = "seqkit stats -a (4 threads)"
FX2TAB = "seqkit fx2tab -n -g"
BOTH = "seqkit stats -a + fx2tab"

IMPORT_ONLY = """
import sys
sys.path.insert(0, {root!r})
import analysis.report
"""
OURS_COMMAND = """
import sys
sys.path.insert(0, {root!r})
from analysis.report import analyse
with open(sys.argv[1], "rb") as stream:
    analyse(stream)
"""


def full_consumers() -> tuple:
    """The pipeline's analysis stage: species model and the seeded marker panel's references."""
    reference = (ROOT / "analysis" / "reference" / "human_markers.fa").read_bytes()
    panel = [MarkerPanelEntry("panel", "-", "-", "HBB, EGFR, KRAS, BRCA2 references", reference)]
    return (SpeciesConsumer(), MarkerConsumer(panel))


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def run_ours(path: Path, consumers: tuple = ()) -> None:
    with open(path, "rb") as stream:
        analyse(stream, consumers=consumers)


def command(arguments: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(arguments, stdout=subprocess.DEVNULL, check=True)


def peak_memory_mb(arguments: list[str]) -> float:
    output = subprocess.run(
        [PYTHON, "-c", MEMORY_PROBE, *arguments], check=True, capture_output=True, text=True
    ).stdout
    return int(output.strip()) / 1024


def agreement(path: Path, seqkit: str) -> str:
    with open(path, "rb") as stream:
        report = analyse(stream)
    output = subprocess.run(
        [seqkit, "stats", "-a", "-T", str(path)], check=True, capture_output=True, text=True
    ).stdout
    stats = next(csv.DictReader(io.StringIO(output), delimiter="\t"))
    return (
        f"reads {report.record_count:,} / {int(stats['num_seqs']):,}, "
        f"bases {report.sequence_length:,} / {int(stats['sum_len']):,}, "
        f"Q20 {100 * report.q20_fraction:.2f} / {stats['Q20(%)']}, "
        f"Q30 {100 * report.q30_fraction:.2f} / {stats['Q30(%)']} (ours / seqkit)"
    )


def benchmark(label: str, path: Path, size: int, seqkit: str, repeat: int) -> None:
    ours_process = [PYTHON, "-c", OURS_COMMAND.format(root=str(ROOT)), str(path)]
    stats = [seqkit, "stats", "-a", "-j", "1", str(path)]
    stats_threads = [seqkit, "stats", "-a", str(path)]
    fx2tab = [seqkit, "fx2tab", "-n", "-g", str(path)]
    import_only = [PYTHON, "-c", IMPORT_ONLY.format(root=str(ROOT))]
    tools: dict[str, Callable[[], object]] = {
        "ours, in process": lambda: run_ours(path),
        "ours, full analysis (+ species, markers)": lambda: run_ours(path, full_consumers()),
        "ours, whole process": command(ours_process),
        STATS: command(stats),
        STATS_THREADS: command(stats_threads),
        FX2TAB: command(fx2tab),
    }
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, tool in tools.items():
            times[name].append(seconds(tool))
    median = {name: statistics.median(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    for summary in (median, best):
        summary[BOTH] = summary[STATS] + summary[FX2TAB]

    megabytes = size / 1e6
    print(f"\n## {label}: {path.name}, {megabytes:.1f} MB decompressed, {repeat} runs")
    print(f"{'tool':34} {'median s':>9} {'MB/s':>7} {'best s':>8} {'MB/s':>7}")
    for name in median:
        print(
            f"{name:34} {median[name]:9.3f} {megabytes / median[name]:7.0f} "
            f"{best[name]:8.3f} {megabytes / best[name]:7.0f}"
        )
    print("ratios (median time of ours / median time of seqkit):")
    for ours in (
        "ours, in process",
        "ours, full analysis (+ species, markers)",
        "ours, whole process",
    ):
        against = (STATS, STATS_THREADS, BOTH)
        ratios = ", ".join(f"{median[ours] / median[other]:.2f}x {other}" for other in against)
        print(f"  {ours}: {ratios}")
    print("peak resident memory (MB):")
    for name, arguments in (
        ("ours, whole process", ours_process),
        ("python and the analysis imported, no file", import_only),
        (STATS, stats),
        (FX2TAB, fx2tab),
    ):
        print(f"  {name:44} {peak_memory_mb(arguments):7.1f}")
    print("check:", agreement(path, seqkit))


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    options.add_argument("--repeat", type=int, default=5)
    arguments = options.parse_args()
    seqkit = shutil.which("seqkit")
    if seqkit is None or not arguments.input.exists():
        sys.exit("needs seqkit and the reads: apt-get install -y gasic-examples seqkit")

    with tempfile.TemporaryDirectory(prefix="analysis-benchmark-") as folder:
        compressed = arguments.input.read_bytes()
        plain = gzip.decompress(compressed)
        files = {
            "25 MB gzip": (Path(folder) / "reads.fastq.gz", compressed, len(plain)),
            "25 MB plain": (Path(folder) / "reads.fastq", plain, len(plain)),
            "50 MB gzip (two members)": (
                Path(folder) / "reads_x2.fastq.gz",
                compressed + compressed,
                2 * len(plain),
            ),
            "50 MB plain": (Path(folder) / "reads_x2.fastq", plain + plain, 2 * len(plain)),
        }
        del plain
        for path, content, _ in files.values():
            path.write_bytes(content)
        print(f"python {sys.version.split()[0]}, seqkit {seqkit_version(seqkit)}")
        for label, (path, _, size) in files.items():
            benchmark(label, path, size, seqkit, arguments.repeat)


def seqkit_version(seqkit: str) -> str:
    return subprocess.run([seqkit, "version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
