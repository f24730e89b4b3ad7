"""Printer kinds: an inkjet (CMYK cartridges, percent) and a laser (toner plus a waste receptacle that fills).

Figures cite /work/shared/USAGE_FIGURES.md by section; "assumption" marks a value it does not give.
"""

from __future__ import annotations

import math
import random
from typing import Any

from ._kinds import Kind, Reading, Session, SlotDef, step
from ._usage import Household, Rhythm, poisson

__all__ = ["Inkjet", "Laser"]

# assumption: people print in the day and evening, less at weekends; §1b gives volumes, not hours.
PRINT_HOURS = (0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.0, 1.2, 1.2, 1.0, 1.0, 1.1, 1.2, 1.2, 1.1, 1.0, 1.0, 1.1, 1.0, 0.8, 0.5, 0.2)
PRINT_WEEK = (1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.6)
# §1b (Consumer Reports): pages come in batches of 2-3; bursts (a school project) are an assumption: 5 % of days x4.
PRINT_RHYTHM = Rhythm(PRINT_HOURS, PRINT_WEEK, busy_p=0.05, busy_factor=4.0)
PAGES_PER_BATCH = 2.5  # §1b: batches of 2-3 pages
SPREAD_SIGMA = 0.6  # §1b: 74 % print 0-30 pages a week, a few far more: a wide lognormal spread


def _lognormal_mean1(rng: random.Random, sigma: float) -> float:
    return math.exp(rng.gauss(-sigma * sigma / 2, sigma))


class Inkjet(Kind):
    """A home inkjet: HP 67XL-class cartridges, 10 % steps, ink lost to maintenance when it wakes up."""

    kind = "printer.inkjet"
    model = "hp-67"
    activity = "pages"
    rhythm = PRINT_RHYTHM
    INKS = ("black", "cyan", "magenta", "yellow")
    PAGES_PER_DAY = 1.0  # §1b: the average home user prints 25-35 pages a month
    BLACK_YIELD = 240.0  # §1a: HP 67XL black, 240 pages (ISO/IEC 24711)
    COLOUR_YIELD = 170.0  # §1a (D): HP 951 C/M/Y 700 p vs 950 black 1,000 p, so 0.7 x 240
    MOSTLY_COLOUR_P = 0.35  # §1b: just over a third of home users print mostly colour; 43 % mostly black
    COLOUR_SHARE = (0.6, 0.15)  # assumption: share of colour pages for mostly-colour / mostly-black households
    WAKE_CLEAN_AFTER_S = 86400.0  # §1d: intermittent use wastes ink on maintenance; assumption: a clean after a day idle
    WAKE_CLEAN_PCT = 1.0  # §1d (D): with the §1b pattern this sends about half of the ink to maintenance
    MANUAL_CLEAN_P, MANUAL_CLEAN_PCT = 0.01, 15.0  # §1d: a manual head clean costs 10-25 % of a cartridge
    SOME_BELOW = 5.0  # §1c: Canon's first stage "ink may have run out"; IPP's "some remaining"

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """Four cartridges in percent."""
        return tuple(SlotDef(s, f"ink.{s}", "percent", 100) for s in self.INKS)

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Pages a day and colour share of this household."""
        pages = self.PAGES_PER_DAY * household.scale * _lognormal_mean1(rng, SPREAD_SIGMA)
        colour = self.COLOUR_SHARE[0] if rng.random() < self.MOSTLY_COLOUR_P else self.COLOUR_SHARE[1]
        return {"pages_per_day": pages, "sessions_per_day": pages / PAGES_PER_BATCH, "colour_share": colour}

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """A batch of pages, plus a cleaning cycle after a long idle spell or now and then by hand."""
        pages = 1 + poisson(rng, PAGES_PER_BATCH - 1)
        colour = sum(rng.random() < params["colour_share"] for _ in range(pages))
        black = 100.0 * (pages - colour + 0.5 * colour) / self.BLACK_YIELD
        cmy = 100.0 * colour / self.COLOUR_YIELD
        clean = self.WAKE_CLEAN_PCT if idle_s > self.WAKE_CLEAN_AFTER_S else 0.0
        if rng.random() < self.MANUAL_CLEAN_P:
            clean += self.MANUAL_CLEAN_PCT
        return Session((black + clean, cmy + clean, cmy + clean, cmy + clean), pages)

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """10 % steps (§1c HP default); "some" when nearly out but not out."""
        if 0.0 < level < self.SOME_BELOW:
            return "some"
        return step(level, 10)

    def exact(self, index: int, level: float, params: dict[str, Any]) -> Reading:
        """1 % steps."""
        return round(level)


class Laser(Kind):
    """A home-office mono laser: toner in 1 % steps (IPP), and a waste-toner box that fills as toner is used."""

    kind = "printer.laser"
    model = "laser-mono-26"
    activity = "pages"
    rhythm = PRINT_RHYTHM
    elsewhere_days = (1.0, 7.0)  # assumption: toner is not bought on the next grocery trip
    PAGES_PER_DAY = 2.0  # assumption: between §1b's ~1 page a day and the top of "0-30 pages a week" (4.3 a day)
    PAGES_PER_JOB = 3.0  # §1b batches of 2-3; §2 Xerox rates toner at 2 pages a job
    TONER_YIELD = 3000.0  # §2: HP 26A 3,100, OKI B4250 2,500, HP 1010 ~2,000 pages at 5 %
    COVERAGE = (1.0, 3.0)  # §2: real coverage of 10-15 % vs 5 % cuts the yield to 1/2-1/3 (uniform factor)
    TONERS_PER_WASTE_BOX = (2.0, 10.0)  # §2: waste box after 5,000-30,000 pages; Brother colour ~ every 10 toners
    LOW_SOME_P = 0.3  # assumption: some models say only "some" below their low mark
    LOW_MARK = 9.0  # §1c: IPP marker-low-level 9 % (Brother HL-L2370DW)

    def slots(self, params: dict[str, Any]) -> tuple[SlotDef, ...]:
        """A toner cartridge and a waste-toner receptacle, both in percent."""
        return (SlotDef("toner", "toner.black", "percent", 100), SlotDef("waste", "toner.waste", "percent", 100, fills_up=True))

    def params(self, rng: random.Random, household: Household) -> dict[str, Any]:
        """Pages a day, page coverage and the waste box's size in toners."""
        pages = self.PAGES_PER_DAY * household.scale * _lognormal_mean1(rng, SPREAD_SIGMA)
        return {
            "pages_per_day": pages,
            "sessions_per_day": pages / self.PAGES_PER_JOB,
            "coverage": rng.uniform(*self.COVERAGE),
            "toners_per_box": rng.uniform(*self.TONERS_PER_WASTE_BOX),
            "low_some": rng.random() < self.LOW_SOME_P,
        }

    def session(self, rng: random.Random, params: dict[str, Any], idle_s: float) -> Session:
        """A print job; a share of the toner it uses ends up in the waste box."""
        pages = 1 + poisson(rng, self.PAGES_PER_JOB - 1)
        toner = 100.0 * pages * params["coverage"] / self.TONER_YIELD
        return Session((toner, toner / params["toners_per_box"]), pages)

    def report(self, index: int, level: float, rng: random.Random, params: dict[str, Any]) -> Reading:
        """Toner as IPP's integer percent (§1c); the waste box in 10 % steps (assumption)."""
        if index == 0:
            if params["low_some"] and 0.0 < level < self.LOW_MARK:
                return "some"
            return round(level)
        return step(level, 10)

    def exact(self, index: int, level: float, params: dict[str, Any]) -> Reading:
        """1 % steps."""
        return round(level)
