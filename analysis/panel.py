"""The marker panel as the pipeline sees it: the active MarkerReference rows, as plain data.

The Django side of analysis.markers: the pipeline builds its consumer with
`MarkerConsumer(marker_panel())`, so the pure core never touches the database.
"""

from __future__ import annotations

from analysis.markers import MarkerPanelEntry
from analysis.models import MarkerReference


def marker_panel() -> list[MarkerPanelEntry]:
    """The active markers, by name; `reference` is None for a marker with no sequence."""
    return [
        MarkerPanelEntry(
            name=marker.name,
            location=marker.full_location,
            significance=marker.significance,
            description=marker.description,
            reference=marker.reference_sequence.encode("ascii", "replace")
            if marker.has_reference
            else None,
        )
        for marker in MarkerReference.objects.filter(active=True).order_by("name")
    ]
