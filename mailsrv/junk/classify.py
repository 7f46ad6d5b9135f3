"""From token counts to a junk score: Robinson's per-token probability and Fisher's combining.

For a token seen in ``b`` of ``nb`` spam messages and ``g`` of ``ng`` ham messages:

    p = (b/nb) / (b/nb + g/ng)                  how often it marks spam, corrected for class sizes
    f = (s·x + n·p) / (s + n),  n = b + g        Robinson: few sightings pull f toward the prior x

Tokens with |f − ½| below ``min_deviation`` say nothing and are left out; of the rest the ``top_words`` most
significant are combined with Fisher's method (chi-square of −2·Σ ln f with 2k degrees of freedom, once for the
spam hypothesis and once for ham), giving ``(1 + S − H) / 2`` in [0, 1]. The same family bogofilter uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Robinson's strength of the prior and the prior itself (tuned by bench/junk.py's cross-validation).
STRENGTH = 0.1
PRIOR = 0.5
MIN_DEVIATION = 0.3
# f never reaches 0 or 1: one token must not decide alone.
_CLAMP = 1e-4


@dataclass(frozen=True)
class TokenEvidence:
    token: str
    ham: int
    spam: int
    probability: float  # f, Robinson-corrected


@dataclass(frozen=True)
class Verdict:
    """A classification: ``score`` in [0, 1] (None when the filter has not seen both classes yet), the
    tokens that decided it, most significant first, and whether it is above the threshold."""

    score: float | None
    junk: bool
    evidence: tuple[TokenEvidence, ...]
    reason: str = ""


def token_probability(ham: int, spam: int, ham_total: int, spam_total: int) -> float:
    """Robinson's f for one token (module docstring)."""
    n = ham + spam
    spam_rate = spam / spam_total
    ham_rate = ham / ham_total
    p = spam_rate / (spam_rate + ham_rate) if spam_rate + ham_rate > 0 else PRIOR
    f = (STRENGTH * PRIOR + n * p) / (STRENGTH + n)
    return min(max(f, _CLAMP), 1 - _CLAMP)


def _chi2_survival(chi2: float, degrees: int) -> float:
    """P(X ≥ chi2) for a chi-square variable with an even number of degrees of freedom (a finite series)."""
    m = chi2 / 2.0
    term = math.exp(-m)
    total = term
    for i in range(1, degrees // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def fisher_score(probabilities: list[float]) -> float:
    """Combine token probabilities into a score (Fisher/Robinson, module docstring). 0.5 for no evidence."""
    if not probabilities:
        return 0.5
    k = len(probabilities)
    log_spam = sum(math.log(f) for f in probabilities)
    log_ham = sum(math.log(1.0 - f) for f in probabilities)
    spamminess = 1.0 - _chi2_survival(-2.0 * log_ham, 2 * k)
    hamminess = 1.0 - _chi2_survival(-2.0 * log_spam, 2 * k)
    return (1.0 + spamminess - hamminess) / 2.0


def decide(
    counts: dict[str, tuple[int, int]],
    ham_total: int,
    spam_total: int,
    threshold: float,
    top_words: int,
    rare_word_cutoff: int,
) -> Verdict:
    """The verdict for a message whose known tokens have the given (ham, spam) counts."""
    if ham_total == 0 or spam_total == 0:
        return Verdict(None, False, (), reason="not trained on both ham and spam yet")
    evidence: list[TokenEvidence] = []
    for token, (ham, spam) in counts.items():
        if ham + spam < rare_word_cutoff:
            continue
        f = token_probability(ham, spam, ham_total, spam_total)
        if abs(f - 0.5) >= MIN_DEVIATION:
            evidence.append(TokenEvidence(token, ham, spam, f))
    # Most significant first; ties broken by token so a verdict is reproducible.
    evidence.sort(key=lambda e: (-abs(e.probability - 0.5), e.token))
    chosen = evidence[:top_words]
    score = fisher_score([e.probability for e in chosen])
    return Verdict(score, score >= threshold, tuple(chosen))
