"""Plants: another operating regime, climate, sensor installation and failure-mode mix.

A model trained on one plant's fleet is rolled out to another: the machines run at another
duty (higher demand, so more time in the nominal and high speed regimes), the climate is
hotter or colder (ambient temperature moves every temperature reading), the sensors are
another make or mounted elsewhere (gains, offsets, noise), and the machines fail differently
(a hot site loses more machines to cooling faults). :class:`Plant` holds these levers; its
defaults are the built-in fleet, and
:func:`~sslcore_sensor_maintenance.synthetic.generate_fleet` applies each where it acts on the
physics: demand before the regimes, ambient before the thermal model, gains, offsets and noise
on what the sensors record.

Example::

    plant_b = Plant(load_offset=0.1, ambient_offset=12.0, noise_scale=1.5,
                    sensor_gain={"vibration": 1.3}, sensor_offset={"temperature": 2.0},
                    failure_modes={"bearing_wear": 0.2, "cooling_fault": 0.45,
                                   "seal_leak": 0.2, "electrical_fault": 0.15})
    fleet = generate_fleet(30, 2000, seed=1, plant=plant_b)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

PLANT_SENSORS = ("vibration", "temperature", "pressure", "current", "speed")
PLANT_MODES = ("bearing_wear", "cooling_fault", "seal_leak", "electrical_fault")


class Plant(BaseModel):
    """One plant's operation and instrumentation; every default gives the built-in fleet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    load_offset: float = Field(0.0, ge=-0.5, le=0.5, description="added to every machine's "
                               "demand (0..1 scale): duty, and with it the speed regimes")
    ambient_offset: float = Field(0.0, ge=-40.0, le=40.0, description="climate: degC added to "
                                  "the sites' ambient temperature")
    noise_scale: float = Field(1.0, gt=0.0, le=10.0, description="every sensor's noise x this")
    sensor_gain: dict[str, float] = Field(default_factory=dict, description="sensor -> gain "
                                          "of its calibration (recorded = true x gain)")
    sensor_offset: dict[str, float] = Field(default_factory=dict, description="sensor -> "
                                            "offset added to what it records")
    failure_modes: dict[str, float] | None = Field(
        None, description="failure mode -> share (bearing_wear, cooling_fault, seal_leak, "
        "electrical_fault; normalized); None: 0.35 / 0.25 / 0.25 / 0.15")

    @field_validator("sensor_gain", "sensor_offset")
    @classmethod
    def _known_sensors(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(PLANT_SENSORS))
        if unknown:
            raise ValueError(f"unknown sensors {unknown}; the fleet has {list(PLANT_SENSORS)}")
        return v

    @field_validator("failure_modes")
    @classmethod
    def _known_modes(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        unknown = sorted(set(v) - set(PLANT_MODES))
        if unknown or min(v.values(), default=0) < 0 or sum(v.values()) <= 0:
            raise ValueError(f"failure_modes needs non-negative shares of {list(PLANT_MODES)}, "
                             f"got {v}")
        return v

    def mode_probs(self, default: list[float]) -> list[float]:
        """Shares in :data:`PLANT_MODES` order (``default`` when not set)."""
        if self.failure_modes is None:
            return default
        raw = [self.failure_modes.get(mode, 0.0) for mode in PLANT_MODES]
        return [p / sum(raw) for p in raw]

    def is_default(self) -> bool:
        return self == Plant()

    def describe(self) -> str:
        """The non-default levers, for the data source line."""
        return ", ".join(f"{k}={v}" for k, v in self.model_dump(exclude_defaults=True).items())
