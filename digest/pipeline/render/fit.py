"""The size budget: the most items (best first) whose email fits, found with few trials.

One search for both ways of making an email (a whole render per trial, or pieces cut from the
language's render): the same sizes give the same guesses, so both keep the same items.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Made = tuple[dict[str, Any], str]  # a variant's context and its HTML


def size(made: Made) -> int:
    return len(made[1].encode())


def fit(make: Callable[[int], Made], total: int, budget: int, full_size: int, warnings: list[str]) -> Made:
    """`make(keep)` renders with `keep` items in the sections; `total` is how many the variant has.

    The size grows about linearly with the items kept, so each guess interpolates between the
    largest count known to fit and the smallest known not to, with a bisection every other step
    to bound the worst case: 3 to 5 trials instead of a dozen.
    """
    best = make(0)
    lo, lo_size = 0, size(best)
    hi, hi_size = total, full_size
    if lo_size > budget:
        warnings.append(f"the email is {lo_size:,} bytes even with every item moved out; budget {budget:,}")
        return best
    step = 0
    while hi - lo > 1:
        step += 1
        if step % 2:
            guess = lo + int((budget - lo_size) * (hi - lo) / max(1, hi_size - lo_size))
        else:
            guess = (lo + hi) // 2
        guess = min(max(guess, lo + 1), hi - 1)
        trial = make(guess)
        trial_size = size(trial)
        if trial_size <= budget:
            lo, lo_size, best = guess, trial_size, trial
        else:
            hi, hi_size = guess, trial_size
    warnings.append(f"{best[0]['moved']} items moved to 'more on the web' to stay under {budget:,} bytes")
    return best
