"""Fleet priors: what a newcomer's slot is expected to use, learnt per (device model, slot) from the fleet; pure.

A household's rate spreads log-normally across the fleet (a heavy user uses several times the
median), so a group's prior is the median and robust spread of its data-rich slots' log-rates.
It is learnt in the slot's own unit (grams, ml a day) instead when that spreads less: a household
uses its beans, whatever the size of the bag it bought. docs/forecasting.md, "Fleet priors".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .methods import MEASURED_METHODS

__all__ = ["Group", "Prior", "group_medians", "learn_priors", "population_prior", "slot_priors", "teaches"]

Group = tuple[str, str]  # (device model, slot id)

_MAD_TO_SD = 1.482602218505602  # median absolute deviation of a normal is 0.6745 sd
# A forecast teaches the fleet's prior only when its own readings carry it: a regression whose
# rate owes less than this share of its precision to a prior (no echo of the prior back into it).
_TEACH_PRIOR_WEIGHT = 0.2
_MIN_FLEET = 5  # slots per (model, slot) before their median and spread mean anything
# Floor of the prior's log-sd: a household's rate is never known to better than a factor of
# e^0.5 = 1.65 from its neighbours' (the simulated fleet's households spread by about e^0.7).
_PRIOR_MIN_LOG_SD = 0.5


@dataclass(frozen=True, slots=True)
class Prior:
    """A group's prior rate per active day (fraction of capacity) and its sd, as the core reads them."""

    rate: float
    sd: float
    capacity: float | None = None  # learnt in the slot's own unit: the capacity `rate` is a fraction of

    def for_capacity(self, capacity: float) -> tuple[float, float]:
        """The rate and sd for a slot of this capacity (the same fraction unless learnt in the unit)."""
        if self.capacity is None or not capacity > 0:
            return self.rate, self.sd
        scale = self.capacity / capacity
        return self.rate * scale, self.sd * scale


def teaches(method: str | None, rate_per_day: float | None, prior_weight: float | None) -> bool:
    """Whether a stored forecast may teach its group's prior: a measured rate that owes little to a prior."""
    return rate_per_day is not None and method in MEASURED_METHODS and (prior_weight or 0.0) <= _TEACH_PRIOR_WEIGHT


def group_medians(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (sorted ids): the median of `values` and how many there are, from one sort."""
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    ids, start, n = np.unique(g, return_index=True, return_counts=True)
    return ids, (v[start + (n - 1) // 2] + v[start + n // 2]) / 2, n


def population_prior(rates: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (e.g. model and slot): the median rate and a robust sd (1.4826 x MAD); NaN rates ignored."""
    r = np.asarray(rates, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    ok = np.isfinite(r)
    r, g = r[ok], g[ok]
    ids, med, _ = group_medians(r, g)
    _, mad, _ = group_medians(np.abs(r - med[np.searchsorted(ids, g)]), g)
    return ids, med, _MAD_TO_SD * mad


def learn_priors(groups: Sequence[Group], rates: Sequence[float], capacities: Sequence[float], previous: Mapping[Group, Prior]) -> dict[Group, Prior]:
    """The priors after relearning from teaching forecasts (`teaches`): one group, rate and capacity (NaN: unknown) each.

    A group with too few data-rich slots this time keeps the prior it had: its slots may lean on
    that prior so much that they stop teaching it (milk bought every few days).
    """
    out = dict(previous)
    keys = {f"{m}\x1f{s}": (m, s) for m, s in groups}
    g_all = np.array([f"{m}\x1f{s}" for m, s in groups])
    r, c = np.array(rates, dtype=np.float64), np.array(capacities, dtype=np.float64)
    use = r > 0  # households' rates spread log-normally: learn the median and spread of log-rates
    if not use.any():
        return out
    gids, med, sd = population_prior(np.log(r[use]), g_all[use])
    # The same in the slot's own unit. Whichever of the two spreads less across the fleet is the
    # better prior for a newcomer (equal capacities: the same).
    has_cap = use & (c > 0)
    gids_u, med_u, sd_u = population_prior(np.log(r[has_cap] * c[has_cap]), g_all[has_cap])
    by_unit = dict(zip(gids_u.tolist(), zip(med_u.tolist(), sd_u.tolist(), strict=True), strict=True))
    ids, n = np.unique(g_all[use], return_counts=True)
    counts = dict(zip(ids.tolist(), n.tolist(), strict=True))
    ids_c, ref_c, n_c = group_medians(c[has_cap], g_all[has_cap])
    ref, with_cap = dict(zip(ids_c.tolist(), ref_c.tolist(), strict=True)), dict(zip(ids_c.tolist(), n_c.tolist(), strict=True))
    for g, m, s in zip(gids.tolist(), med.tolist(), sd.tolist(), strict=True):
        if counts[g] < _MIN_FLEET:
            continue
        capacity = None
        if g in by_unit and by_unit[g][1] < s - 1e-9 and with_cap[g] == counts[g]:
            # Kept as the fraction per day of the group's median capacity, rescaled per slot.
            m, s = by_unit[g][0] - math.log(ref[g]), by_unit[g][1]
            capacity = ref[g]
        # The core reads a prior as log-normal with median `rate` and log-sd sqrt(log(1 + (sd/rate)^2)).
        s = max(s, _PRIOR_MIN_LOG_SD)
        out[keys[g]] = Prior(math.exp(m), math.exp(m) * math.sqrt(math.expm1(s * s)), capacity)
    return out


def slot_priors(groups: Sequence[Group], capacity: np.ndarray, priors: Mapping[Group, Prior]) -> tuple[np.ndarray, np.ndarray]:
    """Per slot of a batch, its group's prior rate and sd for its own capacity (NaN where the group has none)."""
    mu = np.full(len(groups), np.nan)
    sd = np.full(len(groups), np.nan)
    for i, group in enumerate(groups):
        prior = priors.get(group)
        if prior is not None:
            mu[i], sd[i] = prior.for_capacity(float(capacity[i]))
    return mu, sd
