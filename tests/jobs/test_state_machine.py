"""Job status changes are checked in one place and follow DESIGN.md's graph."""

from __future__ import annotations

import pytest

from jobs.models import ALLOWED_TRANSITIONS, InvalidTransition, Job, JobStatus


@pytest.mark.parametrize(
    "current, requested",
    [
        ("validating", "processing"),
        ("validating", "failed"),
        ("processing", "completed"),
        ("processing", "failed"),
        ("processing", "retrying"),
        ("retrying", "processing"),
        ("retrying", "failed"),
        ("completed", "deleted"),
    ],
)
def test_it_allows_the_designed_transitions(current, requested):
    job = Job(status=current)
    job.transition_to(requested)
    assert job.status == requested


@pytest.mark.parametrize(
    "current, requested",
    [
        ("completed", "processing"),
        ("failed", "processing"),
        ("failed", "completed"),
        ("deleted", "completed"),
        ("validating", "completed"),
        ("validating", "deleted"),
        ("retrying", "completed"),
    ],
)
def test_it_refuses_every_other_transition(current, requested):
    job = Job(status=current)
    with pytest.raises(InvalidTransition):
        job.transition_to(requested)
    assert job.status == current


def test_final_states_lead_nowhere_but_completed_to_deleted():
    assert ALLOWED_TRANSITIONS[JobStatus.FAILED] == frozenset()
    assert ALLOWED_TRANSITIONS[JobStatus.DELETED] == frozenset()
    assert ALLOWED_TRANSITIONS[JobStatus.COMPLETED] == {JobStatus.DELETED}
