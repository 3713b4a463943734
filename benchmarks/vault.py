"""Vault benchmark: our vault stage against the command-line pipeline and xz, in one run.

Prints throughput (MB/s) of
  - our vault stage as the pipeline runs it: read the AES-GCM staged upload, zstd, Crypt4GH,
    and decrypt once more to verify length and SHA-256 before anything is deleted;
  - the same without the staging read (create_archive from a plain file);
  - `zstd -3 | crypt4gh encrypt` on the command line (no verification);
  - `xz -6` (compression only),
on a ~50 MB FASTQ (two copies of Debian gasic-examples' 25 MB SRR059298 subset), and the
compression ratio of each on that FASTQ's 25 MB half and on a FASTA (hisat2's 1 Mb of human
chr22 when installed, else the genomes of ../shared/data concatenated).

    apt-get install -y gasic-examples hisat2 zstd xz-utils
    .venv/bin/python benchmarks/vault.py [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from security import keys, staging, vault  # noqa: E402

GASIC = Path("/usr/share/doc/gasic/examples/reads/SRR059298_subset.fastq.gz")
HISAT_CHR22 = Path("/usr/share/doc/hisat2/examples/reference/22_20-21M.fa")
SHARED = REPO.parent / "shared" / "data"


def timed(function, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not GASIC.exists():
        sys.exit(f"missing {GASIC}: apt-get install -y gasic-examples")
    crypt4gh = shutil.which("crypt4gh") or str(Path(sys.executable).with_name("crypt4gh"))
    work = Path(tempfile.mkdtemp(prefix="vault-bench-"))
    try:
        fastq25 = work / "reads25.fastq"
        fastq25.write_bytes(gzip.decompress(GASIC.read_bytes()))
        fastq50 = work / "reads50.fastq"
        fastq50.write_bytes(fastq25.read_bytes() * 2)
        fasta = work / "genome.fa"
        if HISAT_CHR22.exists():
            shutil.copy(HISAT_CHR22, fasta)
            fasta_name = "hisat2 human chr22 (1 Mb)"
        else:
            fasta.write_bytes(
                b"".join(p.read_bytes() for p in sorted((SHARED / "genomes").rglob("*.fa")))
            )
            fasta_name = "shared/data/genomes concatenated"

        public_path, secret_path = work / "custodian.pub", work / "custodian.sec"
        public_key = keys.load_or_create_custodian_keypair(secret_path, public_path)
        data_key = staging.new_data_key()
        staged = work / "upload.stage"
        with staging.StagingWriter(staged, data_key) as writer, fastq50.open("rb") as source:
            while chunk := source.read(1 << 20):
                writer.write(chunk)
        size50 = fastq50.stat().st_size

        def our_vault_stage() -> vault.ArchiveInfo:
            destination = work / "ours.c4gh"
            destination.unlink(missing_ok=True)
            with staging.StagingReader(staged, data_key) as upload:
                return vault.create_archive(upload, destination, recipient_public_keys=[public_key])

        def our_archive_from(path: Path) -> vault.ArchiveInfo:
            destination = work / "plain.c4gh"
            destination.unlink(missing_ok=True)
            with path.open("rb") as source:
                return vault.create_archive(source, destination, recipient_public_keys=[public_key])

        def cli_pipeline(path: Path) -> int:
            out = work / "cli.c4gh"
            subprocess.run(
                f"zstd -3 -q -c {path} | {crypt4gh} encrypt --recipient_pk {public_path} > {out}",
                shell=True,
                check=True,
            )
            return out.stat().st_size

        def xz(path: Path) -> int:
            out = subprocess.run(
                ["xz", "-6", "-c", str(path)], check=True, capture_output=True
            ).stdout
            return len(out)

        def zstd_only(path: Path) -> int:
            out = subprocess.run(
                ["zstd", "-3", "-c", str(path)], check=True, capture_output=True
            ).stdout
            return len(out)

        print(
            f"input: {size50 / 1e6:.1f} MB FASTQ (2 x SRR059298 subset), median of {args.runs} runs"
        )
        print(f"{'pipeline':58} {'seconds':>8} {'MB/s':>8}")
        rows = [
            ("ours: staged upload -> zstd-3 -> Crypt4GH, verified", our_vault_stage),
            ("ours: plain file -> zstd-3 -> Crypt4GH, verified", lambda: our_archive_from(fastq50)),
            ("cli:  zstd -3 | crypt4gh encrypt (no verification)", lambda: cli_pipeline(fastq50)),
            ("xz -6 (compression only)", lambda: xz(fastq50)),
        ]
        seconds = {}
        for label, function in rows:
            # xz takes minutes per run: one run is plenty to place it.
            elapsed, _ = timed(function, 1 if label.startswith("xz") else args.runs)
            seconds[label] = elapsed
            print(f"{label:58} {elapsed:8.2f} {size50 / 1e6 / elapsed:8.1f}")
        ours, cli = seconds[rows[0][0]], seconds[rows[2][0]]
        print(f"ratio ours / cli (time): {ours / cli:.2f}  (below 1.0 = ours faster)")

        print(f"\ncompression ratio (original / output){'':22} {'FASTQ 25 MB':>12} {'FASTA':>8}")
        for label, function in (
            (
                "ours (zstd-3 + Crypt4GH)",
                lambda p: p.stat().st_size / our_archive_from(p).archive_size,
            ),
            ("zstd -3 alone", lambda p: p.stat().st_size / zstd_only(p)),
            ("zstd -3 | crypt4gh encrypt", lambda p: p.stat().st_size / cli_pipeline(p)),
            ("xz -6", lambda p: p.stat().st_size / xz(p)),
        ):
            print(f"{label:58} {function(fastq25):12.3f} {function(fasta):8.3f}")
        print(f"FASTA: {fasta_name}, {fasta.stat().st_size / 1e6:.2f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("C4GH_PASSPHRASE", "")
    main()
