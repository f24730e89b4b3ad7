"""Kitchen kinds: a fridge weighing milk, a bean-to-cup coffee machine, a water-filter jug and a dishwasher.

Figures cite /work/shared/USAGE_FIGURES.md by section; "assumption" marks a value it does not give.
"""

from __future__ import annotations

import random
from typing import Any

from ._kinds import Kind, Reading, Session, SlotDef, step
from ._usage import Household, Rhythm

__all__ = ["Coffee", "Dishwasher", "Fridge", "WaterFilter"]

MILK_G_PER_ML = 1.03  # physics: whole milk weighs ~1.03 g/ml


class Fridge(Kind):
    """A fridge shelf that weighs the household's milk (grams); milk is mostly restocked on shopping trips."""

    kind = "fridge"
    model = "fridge-scale-1"
    activity = "grams"
    # assumption: pours at breakfast and in the evening; §3: dairy intake is lower at weekends (Irish diaries).
    rhythm = Rhythm(
        (0.05, 0.02, 0.02, 0.02, 0.05, 0.3, 1.5, 2.0, 1.5, 0.8, 0.5, 0.6, 0.8, 0.6, 0.5, 0.6, 0.8, 1.0, 1.2, 1.2, 1.0, 0.8, 0.4, 0.1),
        (1.0, 1.0, 1.0, 1.0, 1.0, 0.85, 0.85),
        busy_p=0.05,
        busy_factor=1.5,  # assumption: baking, guests
    )
    elsewhere_days = (0.2, 1.5)  # assumption: out of milk, someone buys it within a day or so
    p_elsewhere_event = 0.0  # a scale cannot tell a new pack from a heavier one
    restock_per_week = 1.85  # §3: 1.6-2.1 grocery trips per household a week
    restock_below = 0.5  # assumption: on a trip, milk is bought when less than half is left
    G_PER_PERSON_DAY = 165.0  # §3 (D): 0.13 (DE) - 0.22 (UK) L a day; US 0.16 L = 165 g
    POUR_G = (30.0, 270.0)  # assumption: a splash in coffee to a glass, uniform (mean 150 g)
    # §3: 1 L cartons, US half gallon (1.89 L), UK 4 pints (2.272 L); 2 L packs.
    PACKS_ML = (1000.0, 1893.0, 2000.0, 2272.0)
    noisy = True
    NOISE_G, QUANTUM_G = 8.0, 5  # assumption: a shelf load cell, +-8 g, 5 g resolution
    AWAY_FROM_SHELF_P = 0.01  # assumption: the pack is on the table when the fridge reports: null

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """Milk in grams; capacity one or two packs."""
        return (SlotDef("milk", "milk", "g", params["capacity"]),)

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Grams a day from household size, and the pack they buy."""
        packs = 1 if household.persons <= 2 else 2
        grams = self.G_PER_PERSON_DAY * household.persons * household.scale
        return {"grams_per_day": grams, "sessions_per_day": grams / sum(self.POUR_G) * 2, "capacity": round(rng.choice(self.PACKS_ML) * MILK_G_PER_ML * packs)}

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """One pour."""
        grams = rng.uniform(*self.POUR_G)
        return Session((grams,), grams)

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """Grams with load-cell noise, or null while the pack is off the shelf."""
        if rng.random() < self.AWAY_FROM_SHELF_P:
            return None
        return max(0, step(level + rng.gauss(0.0, self.NOISE_G), self.QUANTUM_G))


class Coffee(Kind):
    """A bean-to-cup machine: beans in grams, and descaler doses counted down as it descales."""

    kind = "coffee"
    model = "bean2cup-8"
    activity = "cups"
    # assumption: a morning peak and an after-lunch cup; guests on 5 % of days double the cups.
    rhythm = Rhythm(
        (0.02, 0.01, 0.01, 0.01, 0.05, 0.4, 1.8, 2.0, 1.4, 0.9, 0.7, 0.5, 0.6, 1.0, 0.9, 0.7, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.05, 0.02),
        busy_p=0.05,
        busy_factor=2.0,
    )
    CUPS_PER_DRINKER = 2.9  # §4: US 2.9 cups per coffee drinker a day (DE 3.3-3.8 per capita)
    AT_HOME = 0.81  # §4: 81 % of German coffee is drunk at home
    DRINKERS = 0.66  # §4: 66 % of US adults drink coffee daily
    DOSES_G = ((8.0, 0.7), (14.0, 0.3))  # §4: single 6.5-9 g, double 14 g; assumption: 30 % doubles
    BAGS_G = (250.0, 340.0, 500.0, 1000.0)  # §4: EU 250/500 g/1 kg bags, US 12 oz (340 g)
    # §4: Nespresso descales every 300 capsules (600 in soft water); bean-to-cup every 1-3 months by hardness.
    CUPS_PER_DESCALE = (600, 400, 250)  # soft, medium, hard
    HARDNESS_WEIGHTS = (0.3, 0.4, 0.3)  # assumption; §4 gives the German bands, not their shares
    DESCALER_PACK = 3  # assumption: descaling-tablet pack size (not in the figures)
    BINARY_SENSOR_P = 0.3  # assumption: some machines only sense "beans present": they report "some"
    noisy = True
    NOISE_G, QUANTUM_G = 10.0, 10  # assumption: hopper weight estimate

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """Beans in grams (one bag) and descaler doses."""
        return (SlotDef("beans", "coffee.beans", "g", params["bag_g"]), SlotDef("descaler", "coffee.descaler", "count", self.DESCALER_PACK))

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Cups a day from household size; water hardness; the bag size; the bean sensor."""
        drinkers = max(1.0, household.persons * self.DRINKERS)
        cups = self.CUPS_PER_DRINKER * self.AT_HOME * drinkers * household.scale
        hardness = rng.choices(range(3), self.HARDNESS_WEIGHTS)[0]
        return {
            "sessions_per_day": cups,
            "bag_g": rng.choice(self.BAGS_G),
            "cups_per_descale": self.CUPS_PER_DESCALE[hardness],
            "binary_sensor": rng.random() < self.BINARY_SENSOR_P,
            "cups_since_descale": rng.randrange(self.CUPS_PER_DESCALE[hardness]),
        }

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """One cup; every so many cups, one descaling dose."""
        dose = self.DOSES_G[0][0] if rng.random() < self.DOSES_G[0][1] else self.DOSES_G[1][0]
        params["cups_since_descale"] += 1
        descale = 0.0
        if params["cups_since_descale"] >= params["cups_per_descale"]:
            params["cups_since_descale"], descale = 0, 1.0
        return Session((dose, descale), 1.0)

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """Beans: a noisy 10 g estimate, or "some" from a presence sensor; descaler: an exact count."""
        if index == 1:
            return round(level)
        if params["binary_sensor"]:
            return "some" if level > 20.0 else 0
        return max(0, step(level + rng.gauss(0.0, self.NOISE_G), self.QUANTUM_G))


class WaterFilter(Kind):
    """A filter jug that meters the water it filters: the cartridge's remaining life in ml (of its rated litres)."""

    kind = "water_filter"
    model = "jug-maxtra"
    activity = "litres"
    # assumption: fills through the day; §5 EPA: P90 intake is about twice the mean, so hot days (10 %) x1.6.
    rhythm = Rhythm(
        (0.05, 0.02, 0.02, 0.02, 0.05, 0.3, 1.0, 1.5, 1.2, 0.9, 0.9, 1.0, 1.2, 1.0, 0.9, 0.9, 1.0, 1.2, 1.3, 1.1, 0.9, 0.6, 0.3, 0.1),
        busy_p=0.1,
        busy_factor=1.6,
    )
    elsewhere_days = (1.0, 10.0)  # assumption: people overrun a filter before buying one
    p_elsewhere_event = 0.7  # the jug's reset button after a change
    RATED_ML = 150_000  # §5: Brita MAXTRA 150 L (or 4 weeks)
    L_PER_PERSON_DAY = 1.75  # §5: a 2-person home uses 3-4 L a day; Brita sizes for 1.9 L a person
    FILL_L = (1.0, 1.4)  # assumption: one jug fill (a 1.4 L filtered-water jug, sometimes topped up)
    QUANTUM_ML = 100  # assumption: the meter counts in 100 ml steps

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """The cartridge's remaining rated life in ml."""
        return (SlotDef("cartridge", "water.filter", "ml", self.RATED_ML),)

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Jug fills a day from household size."""
        litres = self.L_PER_PERSON_DAY * household.persons * household.scale
        return {"litres_per_day": litres, "sessions_per_day": litres / (sum(self.FILL_L) / 2)}

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """One jug fill."""
        litres = rng.uniform(*self.FILL_L)
        return Session((litres * 1000.0,), litres)

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """The meter's count, in 100 ml steps."""
        return step(level, self.QUANTUM_ML)


class Dishwasher(Kind):
    """A dishwasher with a tablet magazine (count), a salt reservoir (g) and rinse aid (ml)."""

    kind = "dishwasher"
    model = "dw-autodose-60"
    activity = "cycles"
    # assumption: it runs after dinner; a bit more at weekends; §6 gives cycles a week, not hours.
    rhythm = Rhythm(
        (0.1, 0.05, 0.02, 0.02, 0.02, 0.05, 0.2, 0.4, 0.5, 0.6, 0.6, 0.5, 0.5, 0.8, 0.8, 0.6, 0.5, 0.6, 1.0, 2.0, 2.5, 2.0, 1.2, 0.4),
        (1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2),
        busy_p=0.05,
        busy_factor=2.0,
    )
    # §6 (RECS 2015, owners): not in a typical week 20 %, 1/wk 17 %, 2-3/wk 32.2 %, 4-6/wk 19.2 %, daily+ 11.7 %.
    CYCLES_PER_WEEK = ((0.3, 20.0), (1.0, 17.0), (2.5, 32.2), (5.0, 19.2), (8.0, 11.7))
    MAGAZINE = 40  # assumption: tab pack sizes are "not found" in §6
    SALT_CAPACITY_G = 1500  # §6: salt reservoir max 1.5 kg
    SALT_G = ((0, 10), (9, 20), (12, 40), (20, 15), (30, 10), (60, 5))  # §6: H1-H6 grams a cycle; assumption: shares
    RINSE_CAPACITY_ML, RINSE_ML = 150, 10.0  # §6 (D): 500 ml lasts 40-60 cycles, so ~10 ml; refill ~monthly
    FLOAT_SWITCH_P = 0.5  # assumption: half the machines sense salt with a float switch: "some" until low
    SALT_LOW = 0.15  # assumption: where a float switch trips

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """Tablets, salt and rinse aid."""
        return (
            SlotDef("tablets", "dishwasher.tablets", "count", self.MAGAZINE),
            SlotDef("salt", "dishwasher.salt", "g", self.SALT_CAPACITY_G),
            SlotDef("rinse_aid", "dishwasher.rinse_aid", "ml", self.RINSE_CAPACITY_ML),
        )

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Cycles a week (RECS shares) and the softener setting."""
        rates, weights = zip(*self.CYCLES_PER_WEEK, strict=True)
        salts, salt_w = zip(*self.SALT_G, strict=True)
        return {
            "sessions_per_day": rng.choices(rates, weights)[0] / 7.0,
            "salt_g": float(rng.choices(salts, salt_w)[0]),
            "float_switch": rng.random() < self.FLOAT_SWITCH_P,
        }

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """One cycle: one tablet (§6), the softener's salt, a dose of rinse aid."""
        return Session((1.0, params["salt_g"], self.RINSE_ML), 1.0)

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """Tablets counted; salt from a float switch ("some") or an estimate in 100 g steps; rinse aid in 10 ml steps."""
        if index == 0:
            return round(level)
        if index == 1:
            if params["float_switch"] and level > self.SALT_LOW * self.SALT_CAPACITY_G:
                return "some"
            return step(level, 100)
        return step(level, 10)

    def exact(self, index: int, level: float, params: dict[str, Any]) -> Reading:
        """Whole units."""
        return round(level)
