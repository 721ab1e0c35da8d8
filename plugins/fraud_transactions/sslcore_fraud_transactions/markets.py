"""Markets and periods: what changes when a fraud model meets another market or a later quarter.

A model trained on one issuer's transactions is deployed in another country, or simply kept
in service while the world moves on: prices and currencies differ (amounts scale), the card
holders, merchants and devices are different ones (ids never seen in training), people
travel and change phones at another rate (so legitimate "new device" and "new region" rows
are more or less common), and fraudsters change tactics (another mix of the known patterns,
or a new one). :class:`Market` holds these levers; its defaults are the built-in market, and
:func:`~sslcore_fraud_transactions.synthetic.generate_transactions` applies them.

The new pattern, ``scam`` (purchase and investment scams): the card holder is talked into
paying, so the payment comes from their own device, in their home region, at their usual hours,
online, to a merchant they never used, for several times their usual amount. None of the
account-takeover or card-testing signals (new device, new region, bursts of tiny amounts)
fire; only the amount and the new merchant do, as in legitimate big purchases.

Example::

    later = Market(start="2024-07-01", amount_scale=1.08, new_device_rate=0.25,
                   fraud_mix=FraudMix(ato=0.35, testing=0.2, oop=0.15, scam=0.3))
    df = generate_transactions(50_000, seed=1, market=later)
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FraudMix(BaseModel):
    """Shares of the fraudulent rows per pattern; they sum to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ato: float = Field(0.45, ge=0.0, le=1.0, description="account takeover")
    testing: float = Field(0.30, ge=0.0, le=1.0, description="card testing")
    oop: float = Field(0.25, ge=0.0, le=1.0, description="out-of-pattern purchase")
    scam: float = Field(0.0, ge=0.0, le=1.0, description="scam payment by the card holder "
                        "(own device, home, usual hours, new merchant, large amount)")

    @model_validator(mode="after")
    def _sum_to_one(self) -> FraudMix:
        total = self.ato + self.testing + self.oop + self.scam
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ato + testing + oop + scam must be 1, got {total:g}")
        return self


class Market(BaseModel):
    """One market and period; every default gives the built-in transactions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date = Field(date(2024, 1, 1), description="first day of the timeline (a later "
                        "period)")
    amount_scale: float = Field(1.0, gt=0.0, le=1000.0, description="price level / currency: "
                                "every amount x this")
    id_offset: int = Field(0, ge=0, le=10**9, description="added to user, merchant and device "
                           "ids: another market's card holders, merchants and devices (none "
                           "seen in training)")
    new_device_rate: float = Field(0.12, ge=0.0, le=1.0, description="share of card holders "
                                   "who switch to a new phone during the timeline")
    trips_per_90_days: float = Field(0.6, ge=0.0, le=10.0, description="mean trips away from "
                                     "home per card holder and 90 days (at most 3)")
    fraud_mix: FraudMix = Field(default_factory=FraudMix)

    def epoch_us(self) -> int:
        """Microseconds since 1970 of the timeline's first midnight (UTC)."""
        start = datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc)
        return int(start.timestamp()) * 1_000_000

    def is_default(self) -> bool:
        return self == Market()

    def describe(self) -> str:
        """The non-default levers, for the data source line."""
        return ", ".join(f"{k}={v}" for k, v in self.model_dump(exclude_defaults=True).items())
