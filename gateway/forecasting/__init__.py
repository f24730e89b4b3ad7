"""Forecasting: time-to-empty per slot with an honest interval, vectorised over the fleet; pure numpy.

The core (`forecast_batch`) takes padded arrays and "now" as a number; `core_inputs` builds them
from stored readings; `learn_priors` learns the fleet's cold-start priors. docs/forecasting.md.
"""

from .core import ForecastArrays, explain, forecast_batch
from .inputs import SlotInput, core_inputs, thin_readings, unit_step
from .methods import MEASURED_METHODS, ForecastMethod
from .priors import Group, Prior, learn_priors, population_prior, slot_priors, teaches
from .view import ForecastView

__all__ = [
    "MEASURED_METHODS",
    "ForecastArrays",
    "ForecastMethod",
    "ForecastView",
    "Group",
    "Prior",
    "SlotInput",
    "core_inputs",
    "explain",
    "forecast_batch",
    "learn_priors",
    "population_prior",
    "slot_priors",
    "teaches",
    "thin_readings",
    "unit_step",
]
