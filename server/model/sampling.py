"""Token sampling from logits rows with numpy: temperature, top-p, and the score of each pick.

One row per live sequence. The score is the token's log-probability under the model itself
(temperature 1, no top-p), so candidates drawn with different settings rank on one scale.
Only the row of each generated token is needed: the prompt's tokens get no logits at all.
"""

from __future__ import annotations

import numpy as np


def sample_rows(
    logits: np.ndarray, temperature: float, top_p: float, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pick one token per row; return the tokens and their log-probabilities.

    `uniforms` holds one draw in [0, 1) per row, so the caller owns the randomness (one
    generator per sequence keeps each sequence's draws independent of the others').
    Temperature 0 is greedy.
    """
    rows = np.asarray(logits, dtype=np.float32)
    shifted = rows - rows.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    log_z = np.log(exp.sum(axis=1))
    if temperature == 0:
        tokens = shifted.argmax(axis=1)
    else:
        if temperature != 1:
            exp = np.exp(shifted / np.float32(temperature))
        probs = exp / exp.sum(axis=1, keepdims=True)
        picks = [_pick(p, top_p, float(u)) for p, u in zip(probs, uniforms, strict=True)]
        tokens = np.array(picks, dtype=np.int64)
    logprobs = shifted[np.arange(len(rows)), tokens] - log_z
    return tokens, logprobs.astype(np.float64)


def nucleus_threshold(probs: np.ndarray, top_p: float) -> float:
    """The smallest probability inside the top-p nucleus (the fewest likeliest tokens whose
    mass reaches `top_p`); the nucleus is every token at or above it.

    Tokens with probability at most (1 - top_p) / V carry at most 1 - top_p of the mass
    together, so the threshold always lies among the others: only their values are sorted,
    never the whole vocabulary, and no indices at all (sampling needs membership, not order).
    """
    values = probs[probs > (1.0 - top_p) / len(probs)]
    if values.size == 0:
        return float(probs.max())
    values = np.sort(values)[::-1]
    mass = np.cumsum(values)
    return float(values[int(np.searchsorted(mass, min(top_p, mass[-1])))])


def _pick(probs: np.ndarray, top_p: float, u: float) -> int:
    kept = np.flatnonzero(probs >= nucleus_threshold(probs, top_p)) if top_p < 1 else None
    weights = probs if kept is None else probs[kept]
    mass = np.cumsum(weights)
    at = min(int(np.searchsorted(mass, u * mass[-1], side="right")), len(weights) - 1)
    return at if kept is None else int(kept[at])
