"""Time to empty: when use at an uncertain, log-normal rate, with bursts that diffuse, reaches the level now."""

from __future__ import annotations

import numpy as np

from .away import push_past_away

__all__ = ["time_to_empty"]

_Z90 = 1.2815515655446004  # one-sided 90 % normal quantile: P10 and P90
_MAX_CV = 3.0  # beyond this relative sd a log-normal rate is meaningless: keep it normal


def _quantile(
    z: float, level: np.ndarray, rate: np.ndarray, var_l: np.ndarray, sig2: np.ndarray, var_r: np.ndarray,
    cv: np.ndarray, skew: np.ndarray, h50: np.ndarray,
) -> np.ndarray:
    """The time h at which use C(h) ~ N(rate h, var_l + sig2 h + v h^2) reaches the level with score z.

    (level - rate h)^2 = z^2 (var_l + sig2 h + v h^2), solved without cancellation. The rate is
    log-normal (few bursts make its upper tail long): v is the normal variance that reproduces
    its bound on the side asked for; on the early side the bursts' diffusion also grows with the
    rate, as a compound Poisson's does. z < 0: an early quantile (the smaller root), z > 0: late.
    """
    if z == 0:
        return h50
    za = abs(z)
    z2 = za * za
    c = level * level - z2 * var_l
    if z < 0:
        v = np.where(skew, np.square(rate * np.expm1(za * cv) / za), var_r)
        b = 2 * level * rate + z2 * sig2 * np.where(skew, np.exp(za * cv), 1.0)
        a = rate * rate - z2 * v
        return np.where(c > 0, 2 * c / (b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))), 0.0)
    v = np.where(skew, np.square(rate * -np.expm1(-za * cv) / za), var_r)
    b = 2 * level * rate + z2 * sig2
    a = rate * rate - z2 * v
    return np.where(a > 0, (b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * a), np.inf)


def time_to_empty(
    level: np.ndarray, rate: np.ndarray, var_l: np.ndarray, sig2: np.ndarray, var_r: np.ndarray,
    now_d: np.ndarray, away: np.ndarray | None, zs: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Days to empty at P10, P50, P90 and at the extra scores zs ((S, len(zs))), away periods pausing use."""
    # Time h at which use C(h) ~ N(rate h, var_l + sig2 h + v h^2) reaches the level:
    # (level - rate h)^2 = z^2 (var_l + sig2 h + v h^2), solved without cancellation. The
    # rate is log-normal (few bursts make its upper tail long): v is the normal variance
    # that reproduces its upper bound for P10 and its lower bound for P90; in the fast
    # scenario of P10 the bursts' diffusion grows with the rate, as a compound Poisson's does.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # a zero or NaN rate has no time
        cv = np.sqrt(var_r) / rate
        skew = (rate > 0) & (cv < _MAX_CV)
        h50 = np.where(rate > 0, level / rate, np.where(level > 0, np.inf, 0.0))
        hs = [_quantile(z, level, rate, var_l, sig2, var_r, cv, skew, h50) for z in (-_Z90, _Z90, *zs)]
        tte = []
        for h in (hs[0], h50, hs[1], *hs[2:]):
            if away is not None:
                h = push_past_away(now_d + h, now_d, away) - now_d
            tte.append(np.where(np.isnan(level) | np.isnan(rate), np.nan, h))
    extra = np.stack(tte[3:], axis=1) if zs else np.empty((len(level), 0))
    return tte[0], tte[1], tte[2], extra
