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

from .._units import to_value
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
    return Parameter("amplitude", to_value(value, FLUX_UNIT, "amplitude"), FLUX_UNIT, min=0.0, frozen=frozen)


def _reference(value):
    return Parameter("reference", to_value(value, "TeV", "reference"), "TeV", frozen=True)


def _number(value, name):
    return to_value(value, "", name)


@dataclass(frozen=True)
class PowerLaw(SpectralModel):
    tag = "PowerLawSpectralModel"
    parameter_names = ("amplitude", "index", "reference")

    @classmethod
    def create(cls, amplitude=1e-12, index=2.6, reference=1.0):
        """``amplitude (E / reference)^-index``.

        Parameters
        ----------
        amplitude : float or Quantity
            Differential flux at ``reference``: cm-2 s-1 TeV-1 (``FLUX_UNIT``), or a Quantity in any
            differential-flux unit (e.g. ``u.Unit("1 / (m2 s GeV)")``). On a diffuse or isotropic spatial
            model it is an intensity per sr: give it as a plain number (cm-2 s-1 TeV-1 sr-1).
        index : float or dimensionless Quantity
            Spectral index.
        reference : float or Quantity
            Reference energy (frozen): TeV, or any energy Quantity (``7000 * u.GeV`` is ``7.0``).

        Raises
        ------
        ValueError
            A Quantity in a unit that does not convert to the parameter's (the message names the argument,
            the unit given and the unit expected).
        """
        return cls(
            (
                _amplitude(amplitude),
                Parameter("index", _number(index, "index"), "", min=0.0, max=6.0),
                _reference(reference),
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
        """``amplitude (E / reference)^(-alpha - beta ln(E / reference))``.

        Parameters
        ----------
        amplitude : float or Quantity
            Differential flux at ``reference``: cm-2 s-1 TeV-1 (``FLUX_UNIT``), or a Quantity in any
            differential-flux unit (e.g. ``u.Unit("1 / (m2 s GeV)")``). On a diffuse or isotropic spatial
            model it is an intensity per sr: give it as a plain number (cm-2 s-1 TeV-1 sr-1).
        alpha, beta : float or dimensionless Quantity
            Index at ``reference`` and curvature (natural logarithm).
        reference : float or Quantity
            Reference energy (frozen): TeV, or any energy Quantity (``7000 * u.GeV`` is ``7.0``).

        Raises
        ------
        ValueError
            A Quantity in a unit that does not convert to the parameter's (the message names the argument,
            the unit given and the unit expected).
        """
        return cls(
            (
                _amplitude(amplitude),
                Parameter("alpha", _number(alpha, "alpha"), "", min=-1.0, max=6.0),
                Parameter("beta", _number(beta, "beta"), "", min=-1.0, max=2.0),
                _reference(reference),
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
        """``amplitude (E / reference)^-index exp(-(lambda_ E)^alpha)``.

        Parameters
        ----------
        amplitude : float or Quantity
            Differential flux at ``reference``: cm-2 s-1 TeV-1 (``FLUX_UNIT``), or a Quantity in any
            differential-flux unit (e.g. ``u.Unit("1 / (m2 s GeV)")``). On a diffuse or isotropic spatial
            model it is an intensity per sr: give it as a plain number (cm-2 s-1 TeV-1 sr-1).
        index : float or dimensionless Quantity
            Spectral index.
        lambda_ : float or Quantity
            Inverse cutoff energy: TeV-1, or any inverse-energy Quantity (``1 / (50 * u.TeV)`` is ``0.02``).
        alpha : float or dimensionless Quantity
            Sharpness of the cutoff (frozen).
        reference : float or Quantity
            Reference energy (frozen): TeV, or any energy Quantity (``7000 * u.GeV`` is ``7.0``).

        Raises
        ------
        ValueError
            A Quantity in a unit that does not convert to the parameter's (the message names the argument,
            the unit given and the unit expected).
        """
        return cls(
            (
                _amplitude(amplitude),
                Parameter("index", _number(index, "index"), "", min=-1.0, max=6.0),
                Parameter("lambda_", to_value(lambda_, "TeV-1", "lambda_"), "TeV-1", min=0.0),
                Parameter("alpha", _number(alpha, "alpha"), "", frozen=True),
                _reference(reference),
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
        """``norm (E / reference)^-tilt``, a factor on a template's spectrum.

        Parameters
        ----------
        norm, tilt : float or dimensionless Quantity
            Normalisation and spectral tilt.
        reference : float or Quantity
            Reference energy (frozen): TeV, or any energy Quantity (``7000 * u.GeV`` is ``7.0``).

        Raises
        ------
        ValueError
            A Quantity in a unit that does not convert to the parameter's (the message names the argument,
            the unit given and the unit expected).
        """
        return cls(
            (
                Parameter("norm", _number(norm, "norm"), "", min=0.0, max=10.0),
                Parameter("tilt", _number(tilt, "tilt"), "", min=-1.0, max=1.0, scale=0.1),
                _reference(reference),
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
