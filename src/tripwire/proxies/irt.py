"""The two-parameter logistic item-response model (2PL), fitted with scipy, vectorised in numpy.

``P(model i answers item j) = 1 / (1 + exp(-a_j (theta_i - b_j)))``: ``theta`` is a checkpoint's
ability, ``b`` an item's difficulty and ``a`` its discrimination. The fit is a joint maximum a
posteriori fit of every ability and item parameter at once (``scipy.optimize.minimize``,
L-BFGS-B with the analytic gradient), with weak normal priors that keep items answered by every
checkpoint (or none) finite when only a few dozen checkpoints are known. Why not girth or py-irt:
``docs/proxies.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

Array = np.ndarray[Any, Any]

PRIOR_SD_THETA = 1.0
"""Prior standard deviation of abilities (logits); it also fixes the scale of the model."""
PRIOR_SD_LOG_A = 0.5
"""Prior standard deviation of log discrimination (a stays near 1 unless the data say otherwise)."""
PRIOR_SD_B = 2.0
"""Prior standard deviation of difficulty (logits)."""


@dataclass(frozen=True, slots=True)
class ItemParams:
    """Fitted 2PL parameters of every item, aligned, over a fixed floor (chance)."""

    a: Array
    """Discrimination of each item (> 0)."""
    b: Array
    """Difficulty of each item (logits)."""
    floor: float = 0.0
    """The chance of a right answer without any ability (1/4 for four choices): fixed, not
    fitted (a fitted lower asymptote is poorly identified from a few dozen checkpoints)."""

    def z(self, theta: Array) -> Array:
        return np.asarray(self.a[None, :] * (np.atleast_1d(theta)[:, None] - self.b[None, :]))

    def p(self, theta: Array) -> Array:
        """P(correct), abilities by rows and items by columns."""
        return self.floor + (1.0 - self.floor) * np.asarray(expit(self.z(theta)))

    def log_p(self, z: Array) -> tuple[Array, Array]:
        """(log P(correct), log P(wrong)) at logits ``z``, computed stably."""
        low = math.log(self.floor) if self.floor > 0 else -math.inf
        right = np.logaddexp(low, math.log1p(-self.floor) - np.logaddexp(0.0, -z))
        wrong = math.log1p(-self.floor) - np.logaddexp(0.0, z)
        return right, wrong

    def slope(self, theta: Array) -> Array:
        """d P(correct) / d ability, abilities by rows and items by columns."""
        s = np.asarray(expit(self.z(theta)))
        return np.asarray(self.a[None, :] * (1.0 - self.floor) * s * (1.0 - s))

    def information(self, theta: Array) -> Array:
        """Fisher information of each item (columns) at each ability (rows):
        slope^2 / (p (1 - p))."""
        p = self.p(theta)
        return np.asarray(self.slope(theta) ** 2 / np.maximum(p * (1.0 - p), 1e-300))


@dataclass(frozen=True, slots=True)
class Fit:
    """A 2PL fit: the item parameters and the fitted abilities of the checkpoints it read."""

    items: ItemParams
    theta: Array
    converged: bool


def fit_2pl(responses: Array, *, floor: float = 0.0, max_iter: int = 500) -> Fit:
    """Fit the 2PL over ``floor`` to ``responses`` (checkpoints by rows, items by columns,
    values in [0, 1]; fractional values enter as expected successes)."""
    y = np.asarray(responses, dtype=np.float64)
    m, n = y.shape
    mean = np.clip((y.mean(axis=0) - floor) / (1.0 - floor), 0.02, 0.98)
    start = np.concatenate([np.zeros(m), np.zeros(n), -np.log(mean / (1.0 - mean))])
    shape = ItemParams(np.ones(n), np.zeros(n), floor)

    def objective(x: Array) -> tuple[float, Array]:
        theta, log_a, b = x[:m], x[m : m + n], x[m + n :]
        a = np.exp(log_a)
        z = a[None, :] * (theta[:, None] - b[None, :])
        right, wrong = shape.log_p(z)
        nll = -float(np.sum(y * right + (1.0 - y) * wrong))
        nll += float(theta @ theta) / (2 * PRIOR_SD_THETA**2)
        nll += float(log_a @ log_a) / (2 * PRIOR_SD_LOG_A**2) + float(b @ b) / (2 * PRIOR_SD_B**2)
        s = expit(z)
        p = np.exp(right)
        r = (p - y) * s / p  # d nll / d z (s - y without a floor)
        g_theta = r @ a + theta / PRIOR_SD_THETA**2
        g_log_a = a * np.sum(r * (theta[:, None] - b[None, :]), axis=0) + log_a / PRIOR_SD_LOG_A**2
        g_b = -a * r.sum(axis=0) + b / PRIOR_SD_B**2
        return nll, np.concatenate([g_theta, g_log_a, g_b])

    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    x = result.x
    theta, a, b = x[:m], np.exp(x[m : m + n]), x[m + n :]
    # the model's scale is fixed by the prior only; standardise abilities so that the prior
    # used for new checkpoints (N(0, 1)) matches the fitted population
    centre, spread = float(theta.mean()), float(theta.std()) or 1.0
    return Fit(
        items=ItemParams(a=a * spread, b=(b - centre) / spread, floor=floor),
        theta=(theta - centre) / spread,
        converged=bool(result.success),
    )


@dataclass(frozen=True, slots=True)
class Ability:
    """Posterior mode and standard deviation of each checkpoint's ability."""

    theta: Array
    sd: Array


GRID = np.linspace(-6.0, 6.0, 121)


def ability(responses: Array, items: ItemParams, *, prior_sd: float = PRIOR_SD_THETA) -> Ability:
    """MAP abilities (prior N(0, prior_sd)) of checkpoints (rows) from their answers to
    ``items`` (columns): a grid search, then Fisher scoring; sd from the posterior curvature."""
    y = np.atleast_2d(np.asarray(responses, dtype=np.float64))
    right, wrong = items.log_p(items.z(GRID))
    loglik = y @ right.T + (1.0 - y) @ wrong.T
    theta = GRID[np.argmax(loglik - GRID[None, :] ** 2 / (2 * prior_sd**2), axis=1)]
    for _ in range(30):
        p = items.p(theta)
        slope = items.slope(theta)
        grad = np.sum((y - p) * slope / np.maximum(p * (1 - p), 1e-300), axis=1)
        grad -= theta / prior_sd**2
        info = items.information(theta).sum(axis=1) + 1.0 / prior_sd**2
        step = np.clip(grad / info, -1.0, 1.0)
        theta = np.clip(theta + step, -8.0, 8.0)
        if float(np.max(np.abs(step))) < 1e-8:
            break
    info = items.information(theta).sum(axis=1) + 1.0 / prior_sd**2
    return Ability(theta=theta, sd=1.0 / np.sqrt(info))
