"""The errors of one ROI's components (:mod:`skyfit.catalog._errors`): the sandwich scaling of position errors."""

from skyfit.catalog import DetectionConfig, Region, galactic_diffuse
from skyfit.catalog._errors import _sandwich_scale
from skyfit.detect.components import RoiFitter, seed_component, to_point
from skyfit.models import GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source
from skyfit.simulate import lhaaso_dataset, simulate_dataset


def test_a_point_fit_to_an_extended_source_quotes_a_wider_position_error():
    """The sandwich factor: an extended source (r39 0.3 deg) fitted as a point scatters more than the Hessian says
    (20 realisations at nside 512: 40 % inside the Hessian's pos_err95, 90 % inside the scaled one), so its
    factor is well above 1; a point source fitted as a point keeps its Hessian error."""
    from astropy.coordinates import SkyCoord

    c = SkyCoord(41, 0.0, unit="deg", frame="galactic").icrs
    base = lhaaso_dataset("WCDA", roi=Region(40, 42, -1, 1).roi(512), livetime_days=365)
    seed = to_point(seed_component("c", c.ra.deg, c.dec.deg, "WCDA", "WCDA", 1e-13, DetectionConfig()))
    model = Models([seed, galactic_diffuse()])
    scales = {}
    for shape in ("gaussian", "point"):
        spatial = (GaussianSpatialModel.create(c.ra.deg, c.dec.deg, sigma=0.3) if shape == "gaussian"
                   else PointSpatialModel.create(c.ra.deg, c.dec.deg))  # fmt: skip
        truth = Models([Source("src", spatial, PowerLaw.create(2e-13, 2.6, 3.0), datasets=("WCDA",)),
                          galactic_diffuse()])  # fmt: skip
        ds = simulate_dataset(truth, base, seed=101)
        fitter = RoiFitter(model, [ds])
        res = fitter.run(model, hesse=True)
        scales[shape] = _sandwich_scale(fitter, res, res.model.source("c"))
    assert scales["gaussian"] > 1.5
    assert scales["point"] < 1.25
