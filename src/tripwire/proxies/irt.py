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
    """Fitted 2PL parameters of every item, aligned."""

    a: Array
    """Discrimination of each item (> 0)."""
    b: Array
    """Difficulty of each item (logits)."""

    def p(self, theta: Array) -> Array:
        """P(correct), abilities by rows and items by columns."""
        return np.asarray(
            expit(self.a[None, :] * (np.atleast_1d(theta)[:, None] - self.b[None, :]))
        )

    def information(self, theta: Array) -> Array:
        """Fisher information of each item (columns) at each ability (rows)."""
        p = self.p(theta)
        return np.asarray(self.a[None, :] ** 2 * p * (1.0 - p))


@dataclass(frozen=True, slots=True)
class Fit:
    """A 2PL fit: the item parameters and the fitted abilities of the checkpoints it read."""

    items: ItemParams
    theta: Array
    converged: bool


def fit_2pl(responses: Array, *, max_iter: int = 500) -> Fit:
    """Fit the 2PL to ``responses`` (checkpoints by rows, items by columns, values in [0, 1];
    fractional values enter as expected successes)."""
    y = np.asarray(responses, dtype=np.float64)
    m, n = y.shape
    mean = np.clip(y.mean(axis=0), 0.02, 0.98)
    start = np.concatenate([np.zeros(m), np.zeros(n), -np.log(mean / (1.0 - mean))])

    def objective(x: Array) -> tuple[float, Array]:
        theta, log_a, b = x[:m], x[m : m + n], x[m + n :]
        a = np.exp(log_a)
        z = a[None, :] * (theta[:, None] - b[None, :])
        # -log likelihood of Bernoulli(sigmoid(z)), stably: log(1 + e^z) - y z
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        nll += float(theta @ theta) / (2 * PRIOR_SD_THETA**2)
        nll += float(log_a @ log_a) / (2 * PRIOR_SD_LOG_A**2) + float(b @ b) / (2 * PRIOR_SD_B**2)
        r = expit(z) - y  # d nll / d z
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
        items=ItemParams(a=a * spread, b=(b - centre) / spread),
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
    ``items`` (columns): a grid search, then Newton steps; sd from the posterior curvature."""
    y = np.atleast_2d(np.asarray(responses, dtype=np.float64))
    z = items.a[None, :] * (GRID[:, None] - items.b[None, :])
    loglik = y @ z.T - np.sum(np.logaddexp(0.0, z), axis=1)[None, :]
    theta = GRID[np.argmax(loglik - GRID[None, :] ** 2 / (2 * prior_sd**2), axis=1)]
    for _ in range(20):
        p = items.p(theta)
        grad = (y - p) @ items.a - theta / prior_sd**2
        hess = (p * (1 - p)) @ items.a**2 + 1.0 / prior_sd**2
        step = np.clip(grad / hess, -1.0, 1.0)
        theta = np.clip(theta + step, -8.0, 8.0)
        if float(np.max(np.abs(step))) < 1e-8:
            break
    p = items.p(theta)
    info = (p * (1 - p)) @ items.a**2 + 1.0 / prior_sd**2
    return Ability(theta=theta, sd=1.0 / np.sqrt(info))


def z_two_sided(confidence: float) -> float:
    """The normal quantile of a two-sided band at ``confidence``."""
    from scipy.special import ndtri

    return float(ndtri(0.5 + confidence / 2.0))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))
