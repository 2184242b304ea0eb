"""Sources, background normalisations and :class:`Models`, the collection of them (gammapy's name; a
:class:`Source` is what gammapy calls a ``SkyModel``); tagged-YAML round trip; gammapy export.

The YAML layout follows gammapy's::

    components:
    - name: crab
      type: SkyModel
      spatial: {type: PointSpatialModel, frame: icrs, parameters: [{name: lon_0, value: 83.63, unit: deg}, ...]}
      spectral: {type: LogParabolaSpectralModel, parameters: [...]}
    - name: hawc-bkg
      type: BackgroundNorm
      dataset: hawc
      parameters: [{name: norm_0, value: 1.0, frozen: true}, ...]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from ._parameter import ModelError, Parameter
from .spatial import SPATIAL_MODELS, SpatialModel
from .spectral import SPECTRAL_MODELS, SpectralModel

__all__ = ["Source", "BackgroundNorm", "Models"]


def __getattr__(name: str):
    if name == "SkyModel":
        return deprecated_sky_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def deprecated_sky_model(stacklevel: int = 3):
    """``Models`` under its old name, with a FutureWarning (the alias goes in the next release)."""
    import warnings

    warnings.warn(
        "skyfit's SkyModel is renamed Models (gammapy's name for a collection of sources and background "
        "norms; a skyfit Source is what gammapy calls a SkyModel); the old name goes in the next release",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return Models


def _replace_parameters(model, values: dict, prefix: str):
    params = tuple(
        q.with_value(values[f"{prefix}.{q.name}"]) if f"{prefix}.{q.name}" in values else q for q in model.parameters
    )
    return replace(model, parameters=params)


@dataclass(frozen=True)
class Source:
    """A gamma-ray source: a spatial model times a spectral model.

    ``datasets`` (names) restricts the source to some datasets, e.g. the WCDA and KM2A components
    of one 1LHAASO source, each fitted with its own spectrum; ``None`` means every dataset.
    """

    name: str
    spatial: SpatialModel
    spectral: SpectralModel
    datasets: tuple | None = None

    def __post_init__(self):
        if self.datasets is not None:
            if isinstance(self.datasets, str) or not all(isinstance(d, str) for d in self.datasets):
                raise ModelError(f"source {self.name!r}: datasets must be a list of names, got {self.datasets!r}")
            object.__setattr__(self, "datasets", tuple(self.datasets))

    @property
    def parameters(self) -> tuple:
        return self.spatial.parameters + self.spectral.parameters

    def applies_to(self, dataset_name: str) -> bool:
        return self.datasets is None or dataset_name in self.datasets

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "type": "SkyModel",
            "spatial": {
                "type": self.spatial.tag,
                "frame": self.spatial.frame,
                "parameters": [q.to_dict() for q in self.spatial.parameters],
                **self.spatial.extra_dict(),
            },
            "spectral": {"type": self.spectral.tag, "parameters": [q.to_dict() for q in self.spectral.parameters]},
        }
        if self.datasets is not None:
            d["datasets_names"] = list(self.datasets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        name = d.get("name")
        try:
            spatial_d, spectral_d = d["spatial"], d["spectral"]
            spatial_cls = SPATIAL_MODELS[spatial_d["type"]]
            spectral_cls = SPECTRAL_MODELS[spectral_d["type"]]
        except KeyError as exc:
            raise ModelError(
                f"source {name!r}: missing or unknown {exc} (spatial types: "
                f"{sorted(SPATIAL_MODELS)}, spectral types: {sorted(SPECTRAL_MODELS)})"
            ) from None
        spatial = spatial_cls.from_parts(_parameters_from(spatial_d, spatial_cls, name), spatial_d)
        spectral = spectral_cls(_parameters_from(spectral_d, spectral_cls, name))
        datasets = d.get("datasets_names")
        return cls(str(name), spatial, spectral, tuple(datasets) if datasets is not None else None)


# the units a parameter written without one has (skyfit's values are in these units; gammapy needs them)
_DEFAULT_UNITS = {"lon_0": "deg", "lat_0": "deg", "sigma": "deg", "r_0": "deg", "b_0": "deg", "sigma_b": "deg",
                  "reference": "TeV", "lambda_": "TeV-1", "amplitude": "cm-2 s-1 TeV-1"}  # fmt: skip


def _default_unit(p):
    if isinstance(p, dict) and "unit" not in p and p.get("name") in _DEFAULT_UNITS:
        return {**p, "unit": _DEFAULT_UNITS[p["name"]]}
    return p


def _parameters_from(d: dict, model_cls, source_name) -> tuple:
    plist = d.get("parameters")
    if not isinstance(plist, list):
        raise ModelError(f"source {source_name!r}: 'parameters' of {model_cls.tag} must be a list")
    params = {p.name: p for p in (Parameter.from_dict(_default_unit(x)) for x in plist)}
    missing = set(model_cls.parameter_names) - set(params)
    extra = set(params) - set(model_cls.parameter_names)
    if missing or extra:
        raise ModelError(
            f"source {source_name!r}: {model_cls.tag} needs parameters {list(model_cls.parameter_names)}"
            f" (missing {sorted(missing)}, unknown {sorted(extra)})"
        )
    return tuple(params[n] for n in model_cls.parameter_names)


@dataclass(frozen=True)
class BackgroundNorm:
    """Background normalisation of one dataset: one ``norm_<i>`` per analysis bin.

    ``mode="per_bin"`` fits each bin's norm; ``"global"`` ties them to one ``norm``; ``"fixed"``
    keeps them at their values (the default, as the HAWC background maps are fitted upstream).
    """

    dataset: str
    parameters: tuple
    mode: str = "fixed"

    def __post_init__(self):
        if self.mode not in ("fixed", "global", "per_bin"):
            raise ModelError(f"background mode must be fixed, global or per_bin, got {self.mode!r}")

    @classmethod
    def create(cls, dataset: str, n_bins: int, mode: str = "fixed"):
        if mode == "global":
            params = (Parameter("norm", 1.0, "", min=0.0, max=10.0),)
        else:
            params = tuple(
                Parameter(f"norm_{i}", 1.0, "", min=0.0, max=10.0, frozen=mode == "fixed") for i in range(n_bins)
            )
        return cls(dataset, params, mode)

    @property
    def name(self) -> str:
        return f"{self.dataset}-bkg"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": "BackgroundNorm",
            "dataset": self.dataset,
            "mode": self.mode,
            "parameters": [q.to_dict() for q in self.parameters],
        }

    @classmethod
    def from_dict(cls, d: dict) -> BackgroundNorm:
        if "dataset" not in d or not isinstance(d.get("parameters"), list):
            raise ModelError(f"BackgroundNorm {d.get('name')!r} needs 'dataset' and a 'parameters' list")
        return cls(str(d["dataset"]), tuple(Parameter.from_dict(x) for x in d["parameters"]), d.get("mode", "fixed"))


@dataclass(frozen=True)
class Models:
    """All model components of a fit: sources and per-dataset background normalisations."""

    sources: tuple = ()
    backgrounds: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "backgrounds", tuple(self.backgrounds))
        names = [s.name for s in self.sources] + [b.name for b in self.backgrounds]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ModelError(f"component names must be unique; repeated: {sorted(dupes)}")

    # --- the parameter vocabulary -------------------------------------------------------------
    def components(self):
        for s in self.sources:
            yield s.name, s.parameters
        for b in self.backgrounds:
            yield b.name, b.parameters

    def parameters(self) -> dict:
        """All parameters keyed ``"component.name"``, in a fixed order."""
        return {f"{c}.{q.name}": q for c, params in self.components() for q in params}

    def values(self) -> dict:
        return {k: q.value for k, q in self.parameters().items()}

    def with_values(self, values: dict) -> Models:
        """A copy with parameter values replaced (keys ``"component.name"``)."""
        unknown = set(values) - set(self.parameters())
        if unknown:
            raise ModelError(f"unknown parameters {sorted(unknown)}")
        sources = tuple(
            replace(
                s,
                spatial=_replace_parameters(s.spatial, values, s.name),
                spectral=_replace_parameters(s.spectral, values, s.name),
            )
            for s in self.sources
        )
        backgrounds = tuple(_replace_parameters(b, values, b.name) for b in self.backgrounds)
        return Models(sources, backgrounds)

    def with_frozen(self, keys, frozen: bool = True) -> Models:
        keys = set(keys)
        unknown = keys - set(self.parameters())
        if unknown:
            raise ModelError(f"unknown parameters {sorted(unknown)}")

        def upd(model, prefix):
            return replace(
                model,
                parameters=tuple(
                    replace(q, frozen=frozen) if f"{prefix}.{q.name}" in keys else q for q in model.parameters
                ),
            )

        sources = tuple(
            replace(s, spatial=upd(s.spatial, s.name), spectral=upd(s.spectral, s.name)) for s in self.sources
        )
        return Models(sources, tuple(upd(b, b.name) for b in self.backgrounds))

    def without(self, name: str) -> Models:
        if name not in [s.name for s in self.sources]:
            raise ModelError(f"no source named {name!r}; sources: {[s.name for s in self.sources]}")
        return Models(tuple(s for s in self.sources if s.name != name), self.backgrounds)

    def for_datasets(self, names) -> Models:
        """The model without the sources and background norms that apply to none of ``names``."""
        names = set(names)
        sources = tuple(s for s in self.sources if s.datasets is None or names & set(s.datasets))
        return Models(sources, tuple(b for b in self.backgrounds if b.dataset in names))

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise ModelError(f"no source named {name!r}; sources: {[s.name for s in self.sources]}")

    def background(self, dataset: str) -> BackgroundNorm | None:
        for b in self.backgrounds:
            if b.dataset == dataset:
                return b
        return None

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self, errors: dict | None = None) -> dict:
        """The tagged mapping of :meth:`to_yaml`; ``errors`` (``{"component.parameter": error}``, e.g.
        ``FitResult.errors``) are written as each parameter's ``error``, as gammapy writes them."""
        comps = [s.to_dict() for s in self.sources] + [b.to_dict() for b in self.backgrounds]
        for comp in comps if errors else ():
            parts = [comp] if comp.get("type") == "BackgroundNorm" else [comp["spatial"], comp["spectral"]]
            for part in parts:
                for q in part["parameters"]:
                    error = errors.get(f"{comp['name']}.{q['name']}")
                    if error is not None and np.isfinite(error):
                        q["error"] = float(error)
        return {"components": comps}

    def to_yaml(self, path=None, errors: dict | None = None) -> str:
        """The model as gammapy-style YAML (written to ``path`` when given); ``errors`` as in
        :meth:`to_dict` (gammapy's ``Models.read`` shows them)."""
        text = yaml.safe_dump(self.to_dict(errors), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d: dict) -> Models:
        if not isinstance(d, dict) or not isinstance(d.get("components"), list):
            raise ModelError("a model file needs a top-level 'components:' list")
        sources, backgrounds = [], []
        for comp in d["components"]:
            if not isinstance(comp, dict):
                raise ModelError(f"each component must be a mapping, got {comp!r}")
            kind = comp.get("type", "SkyModel")
            if kind == "SkyModel":
                sources.append(Source.from_dict(comp))
            elif kind == "BackgroundNorm":
                backgrounds.append(BackgroundNorm.from_dict(comp))
            else:
                raise ModelError(f"component {comp.get('name')!r} has unknown type {kind!r} (SkyModel, BackgroundNorm)")
        return cls(tuple(sources), tuple(backgrounds))

    @classmethod
    def from_yaml(cls, text_or_path) -> Models:
        """Read a model from YAML text or a file; errors name the file and the problem."""
        where = "<string>"
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or (("\n" not in text) and text.endswith((".yaml", ".yml"))):
            where = str(text_or_path)
            if not Path(where).exists():
                raise FileNotFoundError(f"model file {where} does not exist")
            text = Path(where).read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"{where}: malformed YAML: {exc}") from None
        try:
            return cls.from_dict(data)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None

    def to_gammapy(self, errors: dict | None = None):
        """The sources as gammapy ``Models`` (background norms are dataset-specific and left out).

        ``errors``: ``{"source.parameter": error}`` in the parameters' units (``FitResult.errors``), set as
        the gammapy parameters' errors: ``result.model.to_gammapy(errors=result.errors)``.
        """
        import astropy.units as u
        from gammapy.modeling import models as gm

        spectral_map = {
            "PowerLawSpectralModel": gm.PowerLawSpectralModel,
            "LogParabolaSpectralModel": gm.LogParabolaSpectralModel,
            "ExpCutoffPowerLawSpectralModel": gm.ExpCutoffPowerLawSpectralModel,
        }
        spatial_map = {
            "PointSpatialModel": gm.PointSpatialModel,
            "GaussianSpatialModel": gm.GaussianSpatialModel,
            "DiskSpatialModel": gm.DiskSpatialModel,
        }
        out = []
        for s in self.sources:
            if s.spatial.tag not in spatial_map:
                raise ModelError(f"source {s.name!r}: {s.spatial.tag} has no gammapy counterpart here")
            spec = spectral_map[s.spectral.tag](**{q.name: q.value * u.Unit(q.unit) for q in s.spectral.parameters})
            spat = spatial_map[s.spatial.tag](
                frame=s.spatial.frame, **{q.name: q.value * u.Unit(q.unit) for q in s.spatial.parameters}
            )
            for model in (spec, spat):
                for q in s.spectral.parameters + s.spatial.parameters:
                    if q.name in model.parameters.names:
                        model.parameters[q.name].frozen = q.frozen
                        error = (errors or {}).get(f"{s.name}.{q.name}")
                        if error is not None and np.isfinite(error):
                            model.parameters[q.name].error = float(error)
            out.append(gm.SkyModel(spectral_model=spec, spatial_model=spat, name=s.name))
        return gm.Models(out)
