from __future__ import annotations

import pytest

from security.score import security_score


def test_a_clean_fully_assessed_file_scores_one():
    assert (
        security_score(
            ids_passed=True, aml_passed=True, aml_flagged_fraction=0.0, aml_max_flagged_fraction=0.2
        )
        == 1.0
    )


def test_any_failed_check_scores_zero():
    assert (
        security_score(
            ids_passed=False,
            aml_passed=True,
            aml_flagged_fraction=0.0,
            aml_max_flagged_fraction=0.2,
        )
        == 0
    )
    assert (
        security_score(
            ids_passed=True,
            aml_passed=False,
            aml_flagged_fraction=0.5,
            aml_max_flagged_fraction=0.2,
        )
        == 0
    )


def test_closer_to_the_aml_line_scores_lower():
    near = security_score(
        ids_passed=True, aml_passed=True, aml_flagged_fraction=0.15, aml_max_flagged_fraction=0.2
    )
    far = security_score(
        ids_passed=True, aml_passed=True, aml_flagged_fraction=0.01, aml_max_flagged_fraction=0.2
    )
    assert 0.5 <= near < far < 1.0
    assert near == pytest.approx(1 - 0.5 * 0.75)


def test_too_little_sequence_to_assess_is_not_full_marks():
    assert (
        security_score(
            ids_passed=True,
            aml_passed=None,
            aml_flagged_fraction=None,
            aml_max_flagged_fraction=0.2,
        )
        == 0.75
    )
