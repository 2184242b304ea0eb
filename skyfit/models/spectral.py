"""Spectral models: differential flux dN/dE in cm^-2 s^-1 TeV^-1 of true energy in TeV.

The formulas and parameter names are gammapy's, so that models convert one to one:
``PowerLaw``: ``amplitude (E/reference)^-index``;
``LogParabola``: ``amplitude (E/reference)^(-alpha - beta ln(E/reference))`` (natural log, as gammapy
and HAWC's Crab papers);
``ExpCutoffPowerLaw``: ``amplitude (E/reference)^-index exp(-(lambda_ E)^alpha)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from ._parameter import Parameter

__all__ = ["SpectralModel", "PowerLaw", "LogParabola", "ExpCutoffPowerLaw", "PowerLawNorm", "SPECTRAL_MODELS"]

FLUX_UNIT = "cm-2 s-1 TeV-1"


@dataclass(frozen=True)
class SpectralModel:
    """Base class: a tuple of :class:`Parameter` and a pure ``dnde(energy_tev, p)``."""

    parameters: tuple

    tag = "base"
    parameter_names: ClassVar[tuple] = ()

    @staticmethod
    def dnde(energy_tev, p: dict):
        raise NotImplementedError

    def evaluate(self, energy_tev):
        """dN/dE at the model's current parameter values (cm^-2 s^-1 TeV^-1)."""
        return self.dnde(jnp.asarray(energy_tev), {q.name: q.value for q in self.parameters})


def _amplitude(value, frozen=False):
    return Parameter("amplitude", value, FLUX_UNIT, min=0.0, frozen=frozen)


@dataclass(frozen=True)
class PowerLaw(SpectralModel):
    tag = "PowerLawSpectralModel"
    parameter_names = ("amplitude", "index", "reference")

    @classmethod
    def create(cls, amplitude=1e-12, index=2.6, reference=1.0):
        return cls(
            (
                _amplitude(amplitude),
                Parameter("index", index, "", min=0.0, max=6.0),
                Parameter("reference", reference, "TeV", frozen=True),
            )
        )

    @staticmethod
    def dnde(energy_tev, p):
        return p["amplitude"] * (energy_tev / p["reference"]) ** (-p["index"])


@dataclass(frozen=True)
class LogParabola(SpectralModel):
    tag = "LogParabolaSpectralModel"
    parameter_names = ("amplitude", "alpha", "beta", "reference")

    @classmethod
    def create(cls, amplitude=1e-12, alpha=2.6, beta=0.1, reference=7.0):
        return cls(
            (
                _amplitude(amplitude),
                Parameter("alpha", alpha, "", min=-1.0, max=6.0),
                Parameter("beta", beta, "", min=-1.0, max=2.0),
                Parameter("reference", reference, "TeV", frozen=True),
            )
        )

    @staticmethod
    def dnde(energy_tev, p):
        x = jnp.log(energy_tev / p["reference"])
        return p["amplitude"] * jnp.exp(-(p["alpha"] + p["beta"] * x) * x)


@dataclass(frozen=True)
class ExpCutoffPowerLaw(SpectralModel):
    tag = "ExpCutoffPowerLawSpectralModel"
    parameter_names = ("amplitude", "index", "lambda_", "alpha", "reference")

    @classmethod
    def create(cls, amplitude=1e-12, index=2.0, lambda_=0.01, alpha=1.0, reference=1.0):
        return cls(
            (
                _amplitude(amplitude),
                Parameter("index", index, "", min=-1.0, max=6.0),
                Parameter("lambda_", lambda_, "TeV-1", min=0.0),
                Parameter("alpha", alpha, "", frozen=True),
                Parameter("reference", reference, "TeV", frozen=True),
            )
        )

    @staticmethod
    def dnde(energy_tev, p):
        e = energy_tev
        return p["amplitude"] * (e / p["reference"]) ** (-p["index"]) * jnp.exp(-((p["lambda_"] * e) ** p["alpha"]))


@dataclass(frozen=True)
class PowerLawNorm(SpectralModel):
    """A dimensionless factor ``norm (E / reference)^-tilt`` on a template's own spectrum (gammapy's
    ``PowerLawNormSpectralModel``): the free normalisation and spectral tilt of a diffuse model."""

    tag = "PowerLawNormSpectralModel"
    parameter_names = ("norm", "tilt", "reference")

    @classmethod
    def create(cls, norm=1.0, tilt=0.0, reference=1.0):
        return cls(
            (
                Parameter("norm", norm, "", min=0.0, max=10.0),
                Parameter("tilt", tilt, "", min=-1.0, max=1.0, scale=0.1),
                Parameter("reference", reference, "TeV", frozen=True),
            )
        )

    @staticmethod
    def dnde(energy_tev, p):
        return p["norm"] * (energy_tev / p["reference"]) ** (-p["tilt"])


SPECTRAL_MODELS = {cls.tag: cls for cls in (PowerLaw, LogParabola, ExpCutoffPowerLaw, PowerLawNorm)}
SPECTRAL_MODELS.update(
    {
        "pl": PowerLaw,
        "PowerLaw": PowerLaw,
        "lp": LogParabola,
        "LogParabola": LogParabola,
        "ecpl": ExpCutoffPowerLaw,
        "ExpCutoffPowerLaw": ExpCutoffPowerLaw,
    }
)
