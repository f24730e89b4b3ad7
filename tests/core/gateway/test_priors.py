"""Fleet priors: medians and robust spreads per group, what teaches them, and learning in the slot's own unit; pure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.forecasting import Prior, learn_priors, population_prior, slot_priors, teaches
from gateway.forecasting.priors import group_medians

MAD_TO_SD = 1.4826022185056018
LN2 = math.log(2)
INK = ("P-100", "black")
BEANS = ("C-7", "beans")


def _sd(rate: float, log_sd: float) -> float:
    """The sd of a log-normal with median `rate` as the core reads a prior: rate x sqrt(e^(s^2) - 1)."""
    return rate * math.sqrt(math.expm1(log_sd * log_sd))


def test_group_medians_of_odd_and_even_groups_from_one_sort() -> None:
    values = np.array([5.0, 1.0, 10.0, 3.0, 2.0, 4.0, 7.0])
    groups = np.array(["b", "a", "b", "a", "a", "b", "b"])
    ids, med, n = group_medians(values, groups)
    assert ids.tolist() == ["a", "b"]
    assert med.tolist() == [2.0, 6.0]  # a: 1 2 3; b: 4 5 7 10 -> (5 + 7) / 2
    assert n.tolist() == [3, 4]


def test_population_prior_is_the_median_and_1_4826_mad_per_group_ignoring_nan() -> None:
    rates = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan, 1.0, 2.0, 4.0, 10.0])
    groups = np.array(["odd"] * 6 + ["even"] * 4)
    ids, med, sd = population_prior(rates, groups)
    assert ids.tolist() == ["even", "odd"]
    # odd: median 3, |deviations| 2 1 0 1 97 -> MAD 1; even: median (2 + 4) / 2 = 3, |dev| 2 1 1 7 -> MAD 1.5.
    assert med.tolist() == [3.0, 3.0]
    assert sd == pytest.approx([1.5 * MAD_TO_SD, 1.0 * MAD_TO_SD], rel=1e-12)


def test_a_group_of_five_teaching_slots_learns_the_median_and_spread_of_its_log_rates() -> None:
    rates = [0.04, 0.01, 0.16, 0.02, 0.08]  # doubling: log-MAD is ln 2
    priors = learn_priors([INK] * 5, rates, [1.0] * 5, {})
    assert list(priors) == [INK]
    p = priors[INK]
    assert p.rate == pytest.approx(0.04, rel=1e-12)
    assert p.sd == pytest.approx(_sd(0.04, MAD_TO_SD * LN2), rel=1e-12)
    assert p.sd == pytest.approx(0.0547737499, rel=1e-9)
    assert p.capacity is None  # equal capacities: the fraction and the unit spread alike


def test_an_even_group_takes_the_mean_of_its_two_middle_log_rates() -> None:
    rates = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32]  # middle: 0.04 and 0.08 -> geometric mean 0.01 x 2^2.5
    p = learn_priors([INK] * 6, rates, [float("nan")] * 6, {})[INK]
    assert p.rate == pytest.approx(0.01 * 2**2.5, rel=1e-12)
    # |k - 2.5| ln 2 = 2.5 1.5 .5 .5 1.5 2.5 -> MAD 1.5 ln 2.
    assert p.sd == pytest.approx(_sd(0.01 * 2**2.5, MAD_TO_SD * 1.5 * LN2), rel=1e-12)
    assert p.capacity is None  # no capacity known: learnt as a fraction


def test_the_log_sd_has_a_floor_of_0_5() -> None:
    p = learn_priors([INK] * 5, [0.04, 0.05, 0.05, 0.05, 0.06], [1.0] * 5, {})[INK]  # log-MAD 0
    assert p.rate == pytest.approx(0.05, rel=1e-12)
    assert p.sd == pytest.approx(_sd(0.05, 0.5), rel=1e-12)
    assert p.sd == pytest.approx(0.05 * math.sqrt(math.exp(0.25) - 1), rel=1e-12)


def test_a_group_with_fewer_than_five_teaching_slots_keeps_its_previous_prior_and_capacity() -> None:
    before = {INK: Prior(0.03, 0.01, 250.0), ("other", "slot"): Prior(0.5, 0.2)}
    four = learn_priors([INK] * 4, [0.01, 0.02, 0.04, 0.08], [1.0] * 4, before)
    assert four == before
    # A zero or unknown rate does not teach: five slots, four of them teaching.
    zero = learn_priors([INK] * 5, [0.01, 0.02, 0.04, 0.08, 0.0], [1.0] * 5, before)
    assert zero == before
    nan = learn_priors([INK] * 5, [0.01, 0.02, 0.04, 0.08, float("nan")], [1.0] * 5, before)
    assert nan == before
    # A new group with four slots gets no prior; the learnt ones replace only their own group's.
    new = learn_priors([("new", "slot")] * 4 + [INK] * 5, [0.1] * 4 + [0.04, 0.01, 0.16, 0.02, 0.08], [1.0] * 9, before)
    assert set(new) == {INK, ("other", "slot")}
    assert new[("other", "slot")] == Prior(0.5, 0.2)
    assert new[INK].rate == pytest.approx(0.04) and new[INK].capacity is None


def test_nothing_to_learn_from_returns_the_previous_priors() -> None:
    before = {INK: Prior(0.03, 0.01)}
    assert learn_priors([], [], [], before) == before
    assert learn_priors([INK] * 5, [0.0] * 5, [1.0] * 5, before) == before


# Six coffee machines drinking about 30 g a day, three from 250 g bags and three from 1000 g bags.
BAGS = [250.0, 250.0, 250.0, 1000.0, 1000.0, 1000.0]
GRAMS_A_DAY = [29.0, 30.0, 31.0, 29.0, 30.0, 31.0]
FRACTIONS = [g / c for g, c in zip(GRAMS_A_DAY, BAGS, strict=True)]


def test_a_group_is_learnt_in_grams_when_households_drink_their_beans_whatever_the_bag() -> None:
    p = learn_priors([BEANS] * 6, FRACTIONS, BAGS, {})[BEANS]
    assert p.capacity == 625.0  # the median bag: (250 + 1000) / 2
    assert p.rate == pytest.approx(30 / 625, rel=1e-12)  # the median 30 g a day, of a 625 g bag
    # In grams the log-rates spread by ln(31/30) x 1.4826 = 0.049: floored to 0.5.
    assert p.sd == pytest.approx(_sd(30 / 625, 0.5), rel=1e-12)
    rate, sd = p.for_capacity(500.0)
    assert rate == pytest.approx(30 / 500, rel=1e-12)  # 0.06: still 30 g a day
    assert sd == pytest.approx(_sd(30 / 500, 0.5), rel=1e-12)
    assert p.for_capacity(250.0)[0] == pytest.approx(0.12, rel=1e-12)


def test_a_group_with_a_slot_of_unknown_capacity_is_learnt_as_a_fraction() -> None:
    capacities = BAGS[:5] + [float("nan")]
    p = learn_priors([BEANS] * 6, FRACTIONS, capacities, {})[BEANS]
    assert p.capacity is None
    # Sorted fractions .029 .03 .031 .116 .12 .124: the median log-rate is between .031 and .116.
    assert p.rate == pytest.approx(math.sqrt(0.031 * 0.116), rel=1e-12)


def test_a_prior_without_a_capacity_or_for_a_slot_without_one_is_the_same_fraction() -> None:
    assert Prior(0.04, 0.02).for_capacity(500.0) == (0.04, 0.02)
    learnt = Prior(0.048, 0.0125, 625.0)
    assert learnt.for_capacity(0.0) == (0.048, 0.0125)
    assert learnt.for_capacity(float("nan")) == (0.048, 0.0125)
    assert learnt.for_capacity(625.0) == (0.048, 0.0125)


@pytest.mark.parametrize("method", ["level regression", "step-down regression"])
def test_a_measured_forecast_that_owes_little_to_the_prior_teaches(method: str) -> None:
    assert teaches(method, 0.05, None)
    assert teaches(method, 0.05, 0.0)
    assert teaches(method, 0.05, 0.2)  # the limit itself still teaches


def test_prior_heavy_unmeasured_or_rateless_forecasts_do_not_teach() -> None:
    assert not teaches("level regression", 0.05, 0.21)  # mostly the prior's echo
    assert not teaches("prior only", 0.05, 1.0)
    assert not teaches("step bound", 0.05, None)  # a level that never moved bounds the use
    assert not teaches("none", 0.05, None)
    assert not teaches(None, 0.05, None)
    assert not teaches("level regression", None, None)


def test_slot_priors_rescale_per_slot_and_give_nan_for_unknown_groups() -> None:
    priors = {BEANS: Prior(0.048, 0.0125, 625.0), INK: Prior(0.04, 0.02)}
    groups = [BEANS, INK, ("unknown", "slot"), BEANS]
    mu, sd = slot_priors(groups, np.array([500.0, 1.0, 100.0, 1000.0]), priors)
    np.testing.assert_allclose(mu, [0.06, 0.04, np.nan, 0.03], rtol=1e-12)
    np.testing.assert_allclose(sd, [0.015625, 0.02, np.nan, 0.0078125], rtol=1e-12)


def test_slot_priors_of_an_empty_batch_are_empty() -> None:
    mu, sd = slot_priors([], np.array([]), {INK: Prior(0.04, 0.02)})
    assert mu.shape == sd.shape == (0,)
