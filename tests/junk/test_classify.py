"""mailsrv.junk.classify: Robinson's token probability and Fisher's combining."""

from __future__ import annotations

import math

import pytest

from mailsrv.junk.classify import _chi2_survival, decide, fisher_score, token_probability


def test_chi2_survival_matches_closed_forms() -> None:
    # 2 degrees of freedom: exp(-x/2).
    assert _chi2_survival(3.0, 2) == pytest.approx(math.exp(-1.5))
    # 4 degrees of freedom: exp(-x/2) (1 + x/2).
    assert _chi2_survival(3.0, 4) == pytest.approx(math.exp(-1.5) * 2.5)
    assert _chi2_survival(0.0, 10) == pytest.approx(1.0)


def test_token_probability_corrects_for_class_sizes_and_few_sightings() -> None:
    # Seen in 5 of 10 spams and 5 of 100 hams: ten times more typical of spam.
    assert token_probability(5, 5, 100, 10) > 0.85
    assert token_probability(50, 5, 100, 10) == pytest.approx(0.5)
    # One sighting in spam is weaker evidence than a hundred.
    assert token_probability(0, 1, 100, 100) < token_probability(0, 100, 100, 100)
    assert 0 < token_probability(0, 1000, 10, 10) < 1


def test_fisher_score_symmetry() -> None:
    assert fisher_score([]) == 0.5
    assert fisher_score([0.99] * 10) > 0.99
    assert fisher_score([0.01] * 10) < 0.01
    assert fisher_score([0.9, 0.1]) == pytest.approx(0.5)


def test_untrained_filter_has_no_score() -> None:
    verdict = decide({"x": (1, 0)}, 1, 0, 0.95, 150, 1)
    assert verdict.score is None and not verdict.junk and verdict.reason


def test_decide_picks_most_significant_first_and_obeys_cutoff() -> None:
    counts = {"spammy": (0, 50), "hammy": (50, 0), "neutral": (25, 25), "rare": (0, 1)}
    verdict = decide(counts, 100, 100, 0.95, 150, 2)
    tokens = [e.token for e in verdict.evidence]
    assert "neutral" not in tokens and "rare" not in tokens
    assert set(tokens) == {"spammy", "hammy"}
    assert decide(counts, 100, 100, 0.95, 1, 1).evidence[0].token in {"spammy", "hammy", "rare"}
