"""Confidence that means probability: Platt scaling for fact confidences, temperature scaling for
sentiment, both fit on dev; expected calibration error (ECE) to report on test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _log_loss(a: float, b: float, x: np.ndarray, y: np.ndarray) -> float:
    z = a * x + b
    return float(np.sum(np.logaddexp(0, z) - y * z))


def fit_platt(scores: Sequence[float], correct: Sequence[bool], iterations: int = 200) -> tuple[float, float]:
    """a, b so that sigmoid(a * logit(score) + b) fits P(correct); Newton steps on the log loss,
    halved until the loss falls (plain Newton diverges from a=1, b=0 when the scores sit on a few values)."""
    x, y = _logit(np.asarray(scores, dtype=float)), np.asarray(correct, dtype=float)
    if len(x) == 0 or y.min() == y.max():
        return 1.0, 0.0
    a, b = 1.0, 0.0
    loss = _log_loss(a, b, x, y)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(a * x + b, -50, 50)))
        grad = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1 - p) + 1e-9
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and _log_loss(a - scale * step[0], b - scale * step[1], x, y) > loss:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        new_loss = _log_loss(a, b, x, y)
        if np.abs(scale * step).max() < 1e-8 or loss - new_loss < 1e-12:
            break
        loss = new_loss
    return float(a), float(b)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature with the lowest log loss on dev (grid, then refine)."""
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(labels)), labels].mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 60))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.9, best * 1.1, 21)
    return float(min(fine, key=nll))


def ece(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: |accuracy − confidence| weighted over equal-width bins."""
    conf, hit = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    if len(conf) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for k in range(bins):
        inside = (conf > edges[k]) & (conf <= edges[k + 1]) if k else (conf >= 0) & (conf <= edges[1])
        if inside.any():
            total += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    return float(total)
