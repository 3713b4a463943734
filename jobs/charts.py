"""Pictures of a job's results as server-rendered SVG: no JavaScript, no library, no network.

Each function takes what the pipeline stored (``job.results["analysis"]`` is
``analysis.report.SequenceReport.to_dict()``; ``job.results["species"]`` appears once the
species stage runs) and returns a ``Chart``, or None when there is nothing true to draw. The
SVG carries a ``<title>`` and a ``<desc>`` with the numbers in words, so a screen reader gets
the same facts as the picture; colours only repeat what the labels say.

Written by hand because a charting library would bring JavaScript or a network fetch into the
page (or matplotlib's weight into the server) for four simple plots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
HEIGHT = 260
MARGIN_LEFT = 52
MARGIN_RIGHT = 16
MARGIN_TOP = 16
MARGIN_BOTTOM = 48

INK = "#1b2430"
MUTED = "#55606e"
GRID = "#d9e2ec"
# A white outline behind a label drawn over bars or lines keeps it readable.
HALO = 'paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round"'
ACCENT = "#0b5cad"
MARK = "#b3261e"
BASE_COLOURS = {
    "A": "#1b7a3d",
    "C": "#0b5cad",
    "G": "#8a5a00",
    "T": "#b3261e",
    "U": "#6b2fa0",
    "N": "#55606e",
    "other": "#9aa5b1",
}
# Quality bands as FastQC draws them: poor below Q20, reasonable to Q28, good above.
QUALITY_BANDS = ((0, 20, "#fbe3e1"), (20, 28, "#fdf1c7"), (28, None, "#dff3e5"))

RECORD_BARS_MAX = 60
"""Up to this many records get a bar each; more are drawn as a histogram of GC content."""
GC_BIN_PERCENT = 2


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    summary: str  # the picture's facts in words: caption and SVG description
    svg: SafeString
    note: str | None = None  # what the picture cannot show, said plainly


# --- drawing helpers ------------------------------------------------------------------------


def _number(value: float) -> str:
    """Coordinates with two decimals at most: short SVG, no visible rounding."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _nice_step(span: float, target_ticks: int = 5) -> float:
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _ticks(top: float, target_ticks: int = 5) -> list[float]:
    step = _nice_step(top, target_ticks)
    count = int(math.floor(top / step + 1e-9))
    return [step * index for index in range(count + 1)]


def _tick_label(value: float, step: float) -> str:
    if step >= 1:
        return f"{value:.0f}"
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


class _Plot:
    """A plotting area with a linear y axis from 0 to ``y_top`` and an x range."""

    def __init__(self, *, x_min: float, x_max: float, y_top: float, height: int = HEIGHT) -> None:
        self.x_min, self.x_max, self.y_top = x_min, x_max, y_top
        self.height = height
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, height - MARGIN_BOTTOM

    def x(self, value: float) -> float:
        span = (self.x_max - self.x_min) or 1
        return self.left + (value - self.x_min) / span * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - value / (self.y_top or 1) * (self.bottom - self.top)

    def y_axis(self, label: str, *, suffix: str = "") -> list[str]:
        parts = []
        step = _nice_step(self.y_top)
        for value in _ticks(self.y_top):
            y = _number(self.y(value))
            parts.append(
                f'<line x1="{self.left}" x2="{self.right}" y1="{y}" y2="{y}" stroke="{GRID}"/>'
                f'<text x="{self.left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle"'
                f' font-size="11" fill="{MUTED}">{_tick_label(value, step)}{suffix}</text>'
            )
        middle = _number((self.top + self.bottom) / 2)
        parts.append(
            f'<text x="12" y="{middle}" transform="rotate(-90 12 {middle})" text-anchor="middle"'
            f' font-size="12" fill="{INK}">{escape(label)}</text>'
        )
        return parts

    def x_axis(self, label: str, ticks: Iterable[tuple[float, str]] = ()) -> list[str]:
        parts = [
            f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}"'
            f' stroke="{MUTED}"/>'
        ]
        for value, text in ticks:
            x = _number(self.x(value))
            parts.append(
                f'<line x1="{x}" x2="{x}" y1="{self.bottom}" y2="{self.bottom + 4}"'
                f' stroke="{MUTED}"/><text x="{x}" y="{self.bottom + 16}" text-anchor="middle"'
                f' font-size="11" fill="{MUTED}">{escape(text)}</text>'
            )
        parts.append(
            f'<text x="{_number((self.left + self.right) / 2)}" y="{self.height - 8}"'
            f' text-anchor="middle" font-size="12" fill="{INK}">{escape(label)}</text>'
        )
        return parts


def _svg(key: str, title: str, summary: str, parts: Sequence[str], height: int = HEIGHT) -> str:
    return mark_safe(  # noqa: S308 - every text inside was escaped where it was built
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}"'
        f' width="100%" role="img" aria-labelledby="chart-{key}-title chart-{key}-desc"'
        f' font-family="system-ui, -apple-system, Segoe UI, sans-serif">'
        f'<title id="chart-{key}-title">{escape(title)}</title>'
        f'<desc id="chart-{key}-desc">{escape(summary)}</desc>'
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>' + "".join(parts) + "</svg>"
    )


def _integer_ticks(first: int, last: int, target: int = 8) -> list[tuple[float, str]]:
    step = max(1, int(_nice_step(last - first, target)))
    values = [first] + [value for value in range(step, last + 1, step) if value > first]
    return [(value, f"{value:,}") for value in values]


# --- GC content ---------------------------------------------------------------------------


def gc_chart(analysis: dict | None) -> Chart | None:
    """GC content per record; a histogram when there are many records; for a single record
    (the report holds no per-window GC) the base composition of the file."""
    if not analysis or not analysis.get("records"):
        return None
    if analysis.get("record_count") == 1:
        return _base_composition_chart(analysis)
    summaries = analysis["records"]
    records = [r for r in summaries if r.get("gc_content") is not None]
    if not records:
        return None
    overall = analysis.get("gc_content")
    values = [r["gc_content"] for r in records]
    summary = (
        f"GC content of {len(records):,} records: from {min(values):.1f} % to "
        f"{max(values):.1f} %"
        + (f", {overall:.1f} % over the whole file." if overall is not None else ".")
    )
    notes = []
    if analysis.get("records_capped"):
        notes.append(
            f"The report keeps per-record values for the first {len(summaries):,} of "
            f"{analysis['record_count']:,} records."
        )
    if len(records) < len(summaries):
        notes.append(
            f"{len(summaries) - len(records):,} record(s) with no A/C/G/T have no GC content."
        )
    note = " ".join(notes) or None
    if len(records) <= RECORD_BARS_MAX:
        return _gc_bars(records, overall, summary, note)
    return _gc_histogram(values, overall, summary, note)


def _gc_bars(records: list[dict], overall: float | None, summary: str, note: str | None) -> Chart:
    count = len(records)
    plot = _Plot(x_min=0, x_max=count, y_top=100)
    parts = plot.y_axis("GC content", suffix=" %")
    slot = (plot.right - plot.left) / count
    bar = min(48.0, max(1.0, slot * 0.75))
    for index, record in enumerate(records):
        value = record["gc_content"]
        x = plot.x(index) + (slot - bar) / 2
        parts.append(
            f'<rect x="{_number(x)}" y="{_number(plot.y(value))}" width="{_number(bar)}"'
            f' height="{_number(plot.bottom - plot.y(value))}" fill="{ACCENT}">'
            f"<title>record {record['number']}: {value:.1f} % GC</title></rect>"
        )
    step = max(1, math.ceil(count / 12))
    ticks = [(index + 0.5, f"{records[index]['number']}") for index in range(0, count, step)]
    parts += plot.x_axis("Record", ticks)
    parts += _overall_line(plot, overall, horizontal=True)
    title = "GC content per record"
    return Chart("gc", title, summary, _svg("gc", title, summary, parts), note)


def _gc_histogram(
    values: list[float], overall: float | None, summary: str, note: str | None
) -> Chart:
    bins = [0] * (100 // GC_BIN_PERCENT)
    for value in values:
        bins[min(len(bins) - 1, int(value // GC_BIN_PERCENT))] += 1
    top = max(bins)
    plot = _Plot(x_min=0, x_max=100, y_top=top * 1.1 or 1)
    parts = plot.y_axis("Records")
    width = plot.x(GC_BIN_PERCENT) - plot.x(0)
    for index, count in enumerate(bins):
        if not count:
            continue
        low = index * GC_BIN_PERCENT
        parts.append(
            f'<rect x="{_number(plot.x(low) + 0.5)}" y="{_number(plot.y(count))}"'
            f' width="{_number(width - 1)}" height="{_number(plot.bottom - plot.y(count))}"'
            f' fill="{ACCENT}"><title>{count:,} records with {low}-{low + GC_BIN_PERCENT} % GC'
            f"</title></rect>"
        )
    parts += plot.x_axis("GC content (%)", [(value, f"{value}") for value in range(0, 101, 10)])
    parts += _overall_line(plot, overall, horizontal=False)
    title = "GC content per record (distribution)"
    return Chart("gc", title, summary, _svg("gc", title, summary, parts), note)


def _overall_line(plot: _Plot, overall: float | None, *, horizontal: bool) -> list[str]:
    if overall is None:
        return []
    label = f"whole file {overall:.1f} %"
    if horizontal:
        y = _number(plot.y(overall))
        return [
            f'<line x1="{plot.left}" x2="{plot.right}" y1="{y}" y2="{y}" stroke="{MARK}"'
            f' stroke-width="2" stroke-dasharray="6 4"/>'
            f'<text x="{plot.right - 4}" y="{_number(plot.y(overall) - 6)}" text-anchor="end"'
            f' font-size="12" font-weight="600" fill="{MARK}" {HALO}>{label}</text>'
        ]
    x = _number(plot.x(overall))
    return [
        f'<line x1="{x}" x2="{x}" y1="{plot.top}" y2="{plot.bottom}" stroke="{MARK}"'
        f' stroke-width="2" stroke-dasharray="6 4"/>'
        f'<text x="{_number(plot.x(overall) + (6 if overall < 60 else -6))}"'
        f' y="{plot.top + 12}" text-anchor="{"start" if overall < 60 else "end"}"'
        f' font-size="12" font-weight="600" fill="{MARK}" {HALO}>{label}</text>'
    ]


def _percent(share: float) -> str:
    """One decimal, but a present base never reads as 0.0 %."""
    return "< 0.1 %" if 0 < share < 0.05 else f"{share:.1f} %"


def _base_composition_chart(analysis: dict) -> Chart | None:
    counts = {base: n for base, n in (analysis.get("base_counts") or {}).items() if n}
    total = sum(counts.values())
    if not total:
        return None
    height = 128
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    scale = (right - left) / total
    parts = []
    x = float(left)
    legend = []
    for base in ("A", "C", "G", "T", "U", "N", "other"):
        count = counts.get(base)
        if not count:
            continue
        share = 100 * count / total
        width = count * scale
        parts.append(
            f'<rect x="{_number(x)}" y="24" width="{_number(width)}" height="44"'
            f' fill="{BASE_COLOURS[base]}"><title>{base}: {count:,} ({share:.1f} %)</title></rect>'
        )
        if width > 34:
            parts.append(
                f'<text x="{_number(x + width / 2)}" y="51" text-anchor="middle" font-size="13"'
                f' font-weight="600" fill="#ffffff">{base}</text>'
            )
        legend.append((base, count, share))
        x += width
    for index, (base, count, share) in enumerate(legend):
        column = left + index * ((right - left) / max(len(legend), 1))
        parts.append(
            f'<rect x="{_number(column)}" y="88" width="12" height="12"'
            f' fill="{BASE_COLOURS[base]}"/><text x="{_number(column + 17)}" y="98"'
            f' font-size="12" fill="{INK}">{base} {escape(_percent(share))}</text>'
            f'<text x="{_number(column + 17)}" y="114" font-size="11" fill="{MUTED}">'
            f"{count:,}</text>"
        )
    gc = analysis.get("gc_content")
    if gc is not None:
        parts.append(
            f'<text x="{left}" y="16" font-size="12" fill="{INK}">GC {gc:.1f} % of A/C/G/T</text>'
        )
    summary = (
        "Base composition of the single record: "
        + ", ".join(f"{base} {_percent(share)}" for base, _, share in legend)
        + (f"; GC content {gc:.1f} %." if gc is not None else ".")
    )
    title = "Base composition"
    return Chart(
        "gc",
        title,
        summary,
        _svg("gc", title, summary, parts, height=height),
        note=(
            "One record: GC along the sequence (per window) is not in the analysis report, "
            "so the file's base composition is shown instead."
        ),
    )


# --- k-mer spectrum -----------------------------------------------------------------------


def kmer_chart(analysis: dict | None) -> Chart | None:
    """Frequency of every k-mer among the file's windows, with the frequency expected from the
    base composition alone (a mark on each bar): the gap between them is the sequence's own
    structure, e.g. the CpG depletion of vertebrate DNA."""
    profile = (analysis or {}).get("k_mer_profile")
    windows = (analysis or {}).get("k_mer_count") or 0
    if not profile or not windows:
        return None
    k = analysis.get("k", len(next(iter(profile))))
    labels = list(profile)
    shares = [100 * profile[label] / windows for label in labels]
    expected = _expected_shares(labels, analysis.get("base_counts") or {})
    top = max([*shares, *(expected or [])]) * 1.1
    plot = _Plot(x_min=0, x_max=len(labels), y_top=top, height=HEIGHT + 40)
    plot.top += 16  # room for the legend above the bars
    plot.bottom -= 24  # room for the k-mer labels under the axis
    parts = plot.y_axis("Share of windows", suffix=" %")
    slot = (plot.right - plot.left) / len(labels)
    for index, (label, share) in enumerate(zip(labels, shares, strict=True)):
        x = plot.x(index)
        parts.append(
            f'<rect x="{_number(x + slot * 0.1)}" y="{_number(plot.y(share))}"'
            f' width="{_number(slot * 0.8)}" height="{_number(plot.bottom - plot.y(share))}"'
            f' fill="{ACCENT}"><title>{escape(label)}: {profile[label]:,} windows ({share:.2f} %)'
            + (f", {expected[index]:.2f} % expected from the base composition" if expected else "")
            + "</title></rect>"
        )
        if expected:
            y = _number(plot.y(expected[index]))
            parts.append(
                f'<line x1="{_number(x + slot * 0.05)}" x2="{_number(x + slot * 0.95)}"'
                f' y1="{y}" y2="{y}" stroke="{MARK}" stroke-width="2"/>'
            )
    parts.append(
        f'<line x1="{plot.left}" x2="{plot.right}" y1="{plot.bottom}" y2="{plot.bottom}"'
        f' stroke="{MUTED}"/>'
    )
    if len(labels) <= 64:
        for index, label in enumerate(labels):
            x = _number(plot.x(index) + slot / 2)
            y = plot.bottom + 6
            parts.append(
                f'<text x="{x}" y="{y}" transform="rotate(90 {x} {y})" font-size="9"'
                f' font-family="DejaVu Sans Mono, monospace" dominant-baseline="middle"'
                f' fill="{MUTED}">{escape(label)}</text>'
            )
    parts.append(
        f'<text x="{_number((plot.left + plot.right) / 2)}" y="{plot.height - 6}"'
        f' text-anchor="middle" font-size="12" fill="{INK}">{k}-mer</text>'
    )
    if expected:
        parts.append(
            f'<rect x="{plot.right - 330}" y="6" width="12" height="10" fill="{ACCENT}"/>'
            f'<text x="{plot.right - 314}" y="15" font-size="11" fill="{INK}">observed</text>'
            f'<line x1="{plot.right - 240}" x2="{plot.right - 224}" y1="11" y2="11"'
            f' stroke="{MARK}" stroke-width="2"/>'
            f'<text x="{plot.right - 220}" y="15" font-size="11" fill="{INK}">'
            f"expected from base composition</text>"
        )
    ranked = sorted(zip(shares, labels, strict=True), reverse=True)
    distinct = sum(1 for count in profile.values() if count)
    summary = (
        f"{windows:,} {k}-mer windows, {distinct} of {len(labels)} possible {k}-mers seen. "
        "Most frequent: "
        + ", ".join(f"{label} {share:.2f} %" for share, label in ranked[:3])
        + "; least frequent: "
        + ", ".join(f"{label} {share:.2f} %" for share, label in ranked[-3:])
        + "."
    )
    if expected:
        ratios = sorted(
            (share / e, label)
            for share, e, label in zip(shares, expected, labels, strict=True)
            if e
        )
        summary += (
            " Furthest below the base composition's expectation: "
            + ", ".join(f"{label} ({ratio:.2f}×)" for ratio, label in ratios[:3])
            + "."
        )
    title = f"{k}-mer spectrum"
    return Chart("kmer", title, summary, _svg("kmer", title, summary, parts, height=plot.height))


def _expected_shares(labels: list[str], base_counts: dict) -> list[float] | None:
    """Percent of windows each k-mer would take if bases were independent (T and U pooled)."""
    counts = {base: base_counts.get(base, 0) for base in "ACG"}
    counts["T"] = base_counts.get("T", 0) + base_counts.get("U", 0)
    total = sum(counts.values())
    if not total:
        return None
    frequency = {base: count / total for base, count in counts.items()}
    return [100 * math.prod(frequency[letter] for letter in label) for label in labels]


# --- per-position quality (FASTQ) --------------------------------------------------------


def quality_chart(analysis: dict | None) -> Chart | None:
    """Mean Phred quality per read position, over FastQC's poor / reasonable / good bands."""
    if not analysis or analysis.get("format") != "fastq":
        return None
    means = analysis.get("per_position_mean_quality") or []
    if not means:
        return None
    bin_size = analysis.get("per_position_bin_size") or 1
    positions = [1 + index * bin_size for index in range(len(means))]
    last = positions[-1] + bin_size - 1
    top = max(41.0, max(means) + 2)
    plot = _Plot(x_min=1, x_max=max(last, 2), y_top=top)
    parts = []
    for low, high, colour in QUALITY_BANDS:
        upper = top if high is None else high
        parts.append(
            f'<rect x="{plot.left}" y="{_number(plot.y(upper))}" width="{plot.right - plot.left}"'
            f' height="{_number(plot.y(low) - plot.y(upper))}" fill="{colour}"/>'
        )
    parts += plot.y_axis("Mean quality (Phred)")
    points = " ".join(
        f"{_number(plot.x(position + (bin_size - 1) / 2))},{_number(plot.y(mean))}"
        for position, mean in zip(positions, means, strict=True)
    )
    if len(means) == 1:
        parts.append(
            f'<circle cx="{_number(plot.x(1))}" cy="{_number(plot.y(means[0]))}" r="3"'
            f' fill="{ACCENT}"/>'
        )
    parts.append(
        f'<polyline points="{points}" fill="none" stroke="{ACCENT}" stroke-width="2"'
        f' stroke-linejoin="round"/>'
    )
    overall = analysis.get("mean_quality")
    if overall is not None:
        parts += _quality_mean_line(plot, overall)
    for value, label in ((20, "Q20"), (28, "Q28")):
        parts.append(
            f'<text x="{plot.right - 4}" y="{_number(plot.y(value) - 4)}" text-anchor="end"'
            f' font-size="10" fill="{INK}" {HALO}>{label}</text>'
        )
    parts += plot.x_axis("Position in read (bases)", _integer_ticks(1, last))
    worst = min(range(len(means)), key=means.__getitem__)
    summary = (
        f"Mean quality per position over {len(means):,} "
        + ("positions" if bin_size == 1 else f"bins of {bin_size} positions")
        + f" (reads up to {last:,} bases): from Q{max(means):.1f} down to Q{means[worst]:.1f}"
        f" at position {positions[worst]:,}"
        + (f"; Q{overall:.1f} over all bases." if overall is not None else ".")
    )
    title = "Per-position mean quality"
    note = (
        f"Positions are averaged in bins of {bin_size} bases (long reads)."
        if bin_size > 1
        else None
    )
    return Chart("quality", title, summary, _svg("quality", title, summary, parts), note)


def _quality_mean_line(plot: _Plot, overall: float) -> list[str]:
    y = _number(plot.y(overall))
    return [
        f'<line x1="{plot.left}" x2="{plot.right}" y1="{y}" y2="{y}" stroke="{MARK}"'
        f' stroke-width="1.5" stroke-dasharray="6 4"/>'
        f'<text x="{plot.left + 6}" y="{_number(plot.y(overall) + 16)}" font-size="12"'
        f' font-weight="600" fill="{MARK}" {HALO}>mean Q{overall:.1f}</text>'
    ]


# --- species ------------------------------------------------------------------------------


def species_chart(species: dict | None) -> Chart | None:
    """The species model's class probabilities (or its one confidence), with its threshold."""
    if not species or species.get("confidence") is None:
        return None
    predicted = species.get("predicted_species") or "Unknown"
    probabilities = species.get("probabilities") or {predicted: species["confidence"]}
    threshold = species.get("threshold")
    rows = sorted(probabilities.items(), key=lambda item: -item[1])
    row_height = 30
    height = MARGIN_TOP + row_height * len(rows) + 44
    left, right = 110, WIDTH - 70
    parts = []
    for index, (name, probability) in enumerate(rows):
        y = MARGIN_TOP + index * row_height
        width = (right - left) * max(0.0, min(1.0, probability))
        chosen = name == predicted
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="13"'
            f' font-weight="{700 if chosen else 400}" fill="{INK}">{escape(name)}</text>'
            f'<rect x="{left}" y="{y + 4}" width="{right - left}" height="18" fill="{GRID}"/>'
            f'<rect x="{left}" y="{y + 4}" width="{_number(width)}" height="18"'
            f' fill="{ACCENT if chosen else "#7b8794"}"/>'
            f'<text x="{right + 6}" y="{y + 17}" font-size="12" fill="{INK}">'
            f"{100 * probability:.1f} %</text>"
        )
    bottom = MARGIN_TOP + row_height * len(rows)
    if threshold is not None:
        x = _number(left + (right - left) * threshold)
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{MARGIN_TOP}" y2="{bottom + 4}" stroke="{MARK}"'
            f' stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text x="{x}" y="{bottom + 18}" text-anchor="middle" font-size="11" fill="{MARK}"'
            f" {HALO}>"
            f"threshold {100 * threshold:.0f} %</text>"
        )
    summary = f"Predicted {predicted} with confidence {100 * species['confidence']:.1f} %" + (
        f" (threshold {100 * threshold:.0f} %)" if threshold is not None else ""
    )
    if len(rows) > 1:
        summary += ". Class probabilities: " + ", ".join(
            f"{name} {100 * probability:.1f} %" for name, probability in rows
        )
    summary += "."
    title = "Species prediction"
    return Chart(
        "species",
        title,
        summary,
        _svg("species", title, summary, parts, height=height),
        note=species.get("note"),
    )


def job_charts(job) -> dict[str, Chart | None]:
    """Every picture of a finished job; empty while it runs (nothing to draw yet)."""
    if job.status not in ("completed", "deleted"):
        return {}
    results = job.results or {}
    analysis = results.get("analysis")
    return {
        "gc": gc_chart(analysis),
        "kmer": kmer_chart(analysis),
        "quality": quality_chart(analysis),
        "species": species_chart(results.get("species")),
    }
