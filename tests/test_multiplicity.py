"""The multiplicity network (issue #30): its patches, symmetries, file checks, and its step in the catalogue."""

import numpy as np
import pytest

from skyfit.detect.multiplicity import (
    PATCH_CELLS,
    SHIPPED_MULTIPLICITY,
    MultiplicityError,
    _symmetries,
    choose_threshold,
    load_multiplicity,
    multiplicity_patch,
)


def test_symmetries_move_patches_and_offsets_together():
    """A bright cell at offset (dl, db) from the patch centre is, after each of the 8 symmetries, at the
    offset the symmetry gives the targets."""
    half = (PATCH_CELLS - 1) / 2
    dl, db = 0.5, -0.3  # deg: 5 cells in l, -3 in b from the centre (cell centres at +-0.05 deg steps)
    x = np.zeros((1, 2, PATCH_CELLS, PATCH_CELLS))
    i, j = int(round(half + dl / 0.1 + 0.5)) - 1, int(round(half + db / 0.1 + 0.5)) - 1
    x[0, :, j, i] = 1.0
    t0 = np.array([[[(i - half) * 0.1, (j - half) * 0.1]]])
    for which in range(8):
        y, t = _symmetries(x, t0, which)
        jj, ii = np.argwhere(y[0, 0] == 1.0)[0]
        assert np.allclose(t[0, 0], [(ii - half) * 0.1, (jj - half) * 0.1]), which


def test_patch_is_centred_on_the_source():
    """A bright point source at the patch centre: the largest residual is within a pixel (0.11 deg at nside
    512) of the patch's centre (between cells 11 and 12)."""
    from skyfit import Models, PointSpatialModel, PowerLaw, Source
    from skyfit.catalog import Region
    from skyfit.simulate import lhaaso_dataset, npred, simulate_dataset

    roi = Region(40, 42, -1, 1).roi(512)
    from astropy.coordinates import SkyCoord

    c = SkyCoord(41.03, 0.02, unit="deg", frame="galactic").icrs
    truth = Models([Source("p", PointSpatialModel.create(c.ra.deg, c.dec.deg), PowerLaw.create(5e-13, 2.6, 3.0),
                           datasets=("WCDA",))])  # fmt: skip
    ds = simulate_dataset(truth, lhaaso_dataset("WCDA", roi=roi, livetime_days=365), seed=1)
    img = multiplicity_patch(ds, np.asarray(npred(Models([]), ds)), c.ra.deg, c.dec.deg)
    assert img.shape[1:] == (PATCH_CELLS, PATCH_CELLS) and img.dtype == np.float32
    assert np.all(img[5:9] == 0.0)  # KM2A's channels: not this detector
    j, i = np.unravel_index(np.argmax(img[:5].sum(axis=0)), img.shape[1:])
    assert abs(j - (PATCH_CELLS - 1) / 2) <= 1.5 and abs(i - (PATCH_CELLS - 1) / 2) <= 1.5


def test_threshold_is_the_lowest_that_flags_few_singles():
    p = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.45, 0.55, 0.75, 0.9, 0.4])
    n = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3])
    thr, table = choose_threshold(p, n)
    assert thr == 0.6 and table["0.6"]["singles_flagged"] == pytest.approx(0.1)
    assert table["0.5"]["singles_flagged"] == pytest.approx(0.2) and table["0.6"]["blends_flagged"] == 0.5
    assert choose_threshold(np.ones(4), np.ones(4, int))[0] == 0.9  # none flags few enough: the highest


def test_bad_multiplicity_files_are_named(tmp_path):
    with pytest.raises(MultiplicityError, match="no such multiplicity network file"):
        load_multiplicity(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MultiplicityError, match="bad.npz"):
        load_multiplicity(bad)
    from skyfit.detect.prior import SHIPPED_WEIGHTS

    with pytest.raises(MultiplicityError, match="format 'skyfit-prior'"):
        load_multiplicity(SHIPPED_WEIGHTS)
    assert SHIPPED_MULTIPLICITY.name == "multiplicity_weights.npz"


def test_the_shipped_network_flags_a_point_on_an_extended_source_and_the_fit_decides():
    """A WCDA Gaussian (r39 0.4 deg) with a point source 0.2 deg from its centre, which the finders fit as
    one component: the shipped network calls it a blend (P(>= 2) above its threshold), the trial of two
    improves the fit by more than 25 and replaces it (the TS tests afterwards decide what stays). Above
    any probability (threshold 1.01) nothing is tried and the result is the network's proposer alone."""
    from astropy.coordinates import SkyCoord

    from skyfit import Models, PointSpatialModel, PowerLaw, Source
    from skyfit.catalog import DetectionConfig, Region, detect_and_fit
    from skyfit.models import GaussianSpatialModel
    from skyfit.simulate import lhaaso_dataset, simulate_dataset
    from skyfit.skies import galactic_diffuse

    a, b = (SkyCoord(lon, 0.1, unit="deg", frame="galactic").icrs for lon in (41.0, 41.2))
    truth = Models([
        Source("ext", GaussianSpatialModel.create(a.ra.deg, a.dec.deg, sigma=0.4), PowerLaw.create(1e-13, 2.6, 3.0),
               datasets=("WCDA",)),
        Source("pt", PointSpatialModel.create(b.ra.deg, b.dec.deg), PowerLaw.create(4e-14, 2.6, 3.0),
               datasets=("WCDA",)),
        galactic_diffuse(),
    ])  # fmt: skip
    ds = simulate_dataset(truth, lhaaso_dataset("WCDA", roi=Region(39.0, 43.0, -1.9, 2.1).roi(512)), seed=11)
    quiet = {"log": lambda *x: None}
    model = load_multiplicity()
    out = detect_and_fit([ds], DetectionConfig(proposer="nn", multiplicity=True), **quiet)
    trials = [h for h in out.history if h.get("proposer") == "multiplicity"]
    assert len(trials) == 1 and trials[0]["p_blend"] >= model.threshold and trials[0]["gain"] > 25.0
    off = detect_and_fit([ds], DetectionConfig(proposer="nn", multiplicity=True, multiplicity_threshold=1.01), **quiet)
    plain = detect_and_fit([ds], DetectionConfig(proposer="nn"), **quiet)
    assert not [h for h in off.history if h.get("proposer") == "multiplicity"]
    assert off.ts == plain.ts and len(plain.ts) == 1


def test_train_multiplicity_command_writes_a_network_that_loads(tmp_path, capsys):
    """`skyfit prior train-multiplicity` end to end on a few blends and steps: the file loads, its threshold
    is one of the candidates, its record says what it was trained on; with --replace-shipped and --outdir
    it refuses (exit 2) and names the conflict."""
    import json

    from skyfit.cli import main
    from skyfit.detect.multiplicity import THRESHOLDS

    args = ["prior", "train-multiplicity", "--n-train", "8", "--n-validation", "6", "--steps", "3"]
    assert main([*args, "--outdir", str(tmp_path)]) == 0
    model = load_multiplicity(tmp_path / "multiplicity_weights.npz")
    record = json.loads((tmp_path / "multiplicity_weights.json").read_text())
    assert model.threshold in THRESHOLDS and record["n_train"] == 8 and record["n_validation"] == 6
    assert record["validation_flag_rates"].keys() == {str(t) for t in THRESHOLDS}
    p, pos2, pos3 = model.predict(np.zeros((2, 10, PATCH_CELLS, PATCH_CELLS), np.float32))
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1.0) and pos2.shape == (2, 2, 2) and pos3.shape == (2, 3, 2)
    capsys.readouterr()
    assert main([*args, "--replace-shipped", "--outdir", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
