"""Money: ISO 4217 currency codes and their minor units, prices in and out of integers of minor units; pure.

Every amount is stored as an integer of the currency's minor units (cents, but yen for JPY and fils for
KWD); `to_minor` reads one, `to_major` writes one back (the page, the webhook)."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["CURRENCIES", "MAX_MINOR", "minor_digits", "to_major", "to_minor"]

# ISO 4217 active codes (list one, 2024/2025), without funds, metals and testing codes (XAU, XTS, XXX...):
# nothing a household pays with. Most currencies have 2 minor digits; the exceptions are listed.
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF "
    "CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF "
    "IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN "
    "MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS "
    "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"

CURRENCIES: dict[str, int] = {
    **{c: 2 for c in _TWO.split()},
    **{c: 0 for c in _ZERO.split()},
    **{c: 3 for c in _THREE.split()},
    **{c: 4 for c in _FOUR.split()},
}

MAX_MINOR = 2**31 - 1  # prices are 32-bit integers of minor units on PostgreSQL


def minor_digits(currency: str) -> int | None:
    """How many minor digits `currency` has; None when it is no ISO 4217 currency we accept."""
    return CURRENCIES.get(currency)


def to_minor(price: Decimal, currency: str) -> int:
    """`price` in major units as an integer of minor units; ValueError when it has more decimals than the currency."""
    digits = CURRENCIES.get(currency)
    if digits is None:
        raise ValueError(f"{currency!r} is no ISO 4217 currency code (e.g. EUR, USD, GBP, JPY)")
    minor = price.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(f"{price} has more decimals than {currency}'s {digits}")
    if not 0 <= minor <= MAX_MINOR:
        raise ValueError(f"{price} {currency} is out of range: 0 to {Decimal(MAX_MINOR).scaleb(-digits)}")
    return int(minor)


def to_major(minor: int, currency: str) -> Decimal:
    """An integer of minor units as the amount in major units (2499 EUR is 24.99, 2499 JPY is 2499)."""
    return Decimal(minor).scaleb(-(minor_digits(currency) or 0))
