"""Bad input fails loudly, with an error of the right type whose message names the problem and the file."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from conftest import SMALL_CENTER, make_small_dataset, small_response

from skyfit.dataset import BackgroundNaNWarning, BadBackgroundError, Dataset
from skyfit.hawc import read_hawc_events
from skyfit.likelihood import Likelihood
from skyfit.maps import EmptyRegionError, HealpixMaps, HealpixROI, MapFormatError
from skyfit.models import ModelError, Models, PointSpatialModel, PowerLaw, Source
from skyfit.response.hawc import HAWCFileError, read_car_cube

GARBAGE = b"SIMPLE? no: this is not a FITS file\n" * 200


def _maps(roi, values, names=("low", "high")):
    return HealpixMaps(np.broadcast_to(np.asarray(values, float), (len(names), roi.n_pix)).copy(), roi, names)


def _write_small_map(path, nest=True, nside=64):
    roi = HealpixROI.from_disc((83.6, 22.0), 3.0, nside, nest=nest)
    _maps(roi, 1.0).write(path)
    return path


# --- missing files ---------------------------------------------------------------------------------


def test_missing_map_file(tmp_path):
    path = tmp_path / "nowhere" / "counts.fits"
    with pytest.raises(FileNotFoundError, match=re.escape(f"map file {path} does not exist")):
        HealpixMaps.read(path)


def test_missing_event_list(tmp_path):
    path = tmp_path / "EventList_Crab_fHitbin5NN.fits.gz"
    with pytest.raises(HAWCFileError, match=re.escape(f"event list {path} does not exist")):
        read_hawc_events(path)


def test_missing_irf_file(tmp_path):
    path = tmp_path / "irfs" / "EffectiveAreaMap_Crab_fHitbin5NN.fits.gz"
    with pytest.raises(HAWCFileError, match=re.escape(f"{path} does not exist: check SKYFIT_DATA")):
        read_car_cube(path, "AEFF", "AEFF_BANDS")


# --- corrupt files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content", [("garbage.fits", GARBAGE), ("empty.fits", b""), ("garbage.fits.gz", gzip.compress(GARBAGE))]
)
def test_corrupt_map_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MapFormatError, match=re.escape(f"{path} is not a readable HEALPix map file")):
        HealpixMaps.read(path)


def test_truncated_compressed_map_file(tmp_path):
    raw = _write_small_map(tmp_path / "full.fits.gz").read_bytes()
    path = tmp_path / "truncated.fits.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MapFormatError, match=re.escape(f"{path} is not a readable HEALPix map file")):
        HealpixMaps.read(path)


def test_truncated_map_file_missing_its_bin_names(tmp_path):
    """Cut inside the last HDU (the bin names): the map itself is intact, but the file is not."""
    from astropy.io import fits

    full = _write_small_map(tmp_path / "full.fits")
    with fits.open(full) as hdul:
        cut = hdul.fileinfo(len(hdul) - 1)["hdrLoc"] + 1000
    path = tmp_path / "truncated.fits"
    path.write_bytes(full.read_bytes()[:cut])
    message = f"{path} lacks its ANALYSIS_BINS table: the file is truncated"
    with pytest.raises(MapFormatError, match=re.escape(message)):
        HealpixMaps.read(path)


@pytest.mark.parametrize("name, content", [("garbage.fits.gz", GARBAGE), ("garbage2.fits.gz", gzip.compress(GARBAGE))])
def test_corrupt_event_list(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(HAWCFileError, match=re.escape(f"{path} is not a readable DL3 event list")) as info:
        read_hawc_events(path)
    assert "corrupt or truncated" in str(info.value)


def test_corrupt_irf_file(tmp_path):
    path = tmp_path / "EffectiveAreaMap_Crab_fHitbin5NN.fits.gz"
    path.write_bytes(GARBAGE)
    with pytest.raises(HAWCFileError, match=re.escape(f"{path} could not be read as a HAWC map")) as info:
        read_car_cube(path, "AEFF", "AEFF_BANDS")
    assert "corrupt or truncated" in str(info.value)


def test_map_file_read_as_event_list(tmp_path):
    path = _write_small_map(tmp_path / "counts.fits")
    with pytest.raises(HAWCFileError, match=re.escape(f"{path} is not a readable DL3 event list")) as info:
        read_hawc_events(path)
    assert "EVENTS" in str(info.value)


@pytest.mark.data
def test_truncated_real_event_list(tmp_path, hawc_data):
    raw = (hawc_data / "events" / "EventList_Crab_fHitbin5GP.fits.gz").read_bytes()
    path = tmp_path / "EventList_Crab_fHitbin5GP.fits.gz"
    path.write_bytes(raw[: len(raw) // 2])  # cut inside the EVENTS table
    with pytest.raises(HAWCFileError, match=re.escape(f"{path} is not a readable DL3 event list")) as info:
        read_hawc_events(path)
    assert "corrupt or truncated: download it again" in str(info.value)


@pytest.mark.data
@pytest.mark.parametrize(
    "name, hdu, bands",
    [
        ("background/BackgroundMap_Crab_fHitbin5GP.fits.gz", 0, "PRIMARY_BANDS"),
        ("irfs/EffectiveAreaMap_Crab_fHitbin5GP.fits.gz", "AEFF", "AEFF_BANDS"),
    ],
)
def test_truncated_real_car_cube(tmp_path, hawc_data, name, hdu, bands):
    raw = (hawc_data / name).read_bytes()
    read_car_cube(hawc_data / name, hdu, bands)  # the intact file reads
    path = tmp_path / name.split("/")[1]
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(HAWCFileError, match=re.escape(f"{path} could not be read as a HAWC map")) as info:
        read_car_cube(path, hdu, bands)
    assert "corrupt or truncated: download it again" in str(info.value)


# --- bad backgrounds and mismatched maps -----------------------------------------------------------


def test_nan_background_is_masked_with_a_warning():
    ds = make_small_dataset()
    bkg = ds.background.data.copy()
    bad = [(0, 3), (0, 10), (0, 11), (1, 3), (1, 40)]
    for b, p in bad:
        bkg[b, p] = np.nan if p != 40 else np.inf
    message = r"^bkg_model\.fits: 5 background pixels are NaN/inf and were masked \(in bins \['high', 'low'\]"
    with pytest.warns(BackgroundNaNWarning, match=message) as record:
        masked = Dataset(
            "small",
            ds.counts,
            HealpixMaps(bkg, ds.roi, ds.bin_names),
            ds.response,
            meta={"background_file": "bkg_model.fits"},
        )
    assert len(record) == 1
    n_lost = int(sum(ds.counts.data[b, p] for b, p in bad))
    assert f"{n_lost} counts there are not used" in str(record[0].message)
    expected = np.ones_like(masked.mask)
    for b, p in bad:
        expected[b, p] = False
    np.testing.assert_array_equal(masked.mask, expected)
    assert np.all(np.isfinite(masked.background_filled())) and masked.background_filled()[0, 3] == 0.0


def test_nan_background_without_a_file_names_the_dataset():
    ds = make_small_dataset()
    bkg = ds.background.data.copy()
    bkg[1, :7] = np.nan
    message = r"^dataset 'small': 7 background pixels are NaN/inf.*\['high'\]"
    with pytest.warns(BackgroundNaNWarning, match=message):
        masked = Dataset("small", ds.counts, HealpixMaps(bkg, ds.roi, ds.bin_names), ds.response)
    assert (~masked.mask).sum() == 7 and not masked.mask[1, :7].any()


def test_negative_background():
    ds = make_small_dataset()
    bkg = ds.background.data.copy()
    bkg[0, 5], bkg[1, 9] = -0.5, -2.0
    with pytest.raises(BadBackgroundError, match=r"^bkg\.fits: 2 background pixels are negative \(min -2\)"):
        Dataset(
            "small",
            ds.counts,
            HealpixMaps(bkg, ds.roi, ds.bin_names),
            ds.response,
            meta={"background_file": "bkg.fits"},
        )


def test_background_with_another_nside():
    ds = make_small_dataset()
    roi64 = HealpixROI.from_disc(SMALL_CENTER, 2.0, 64)
    message = r"background of dataset 'small' has nside=64 \(NESTED\), the counts have nside=128 \(NESTED\)"
    with pytest.raises(MapFormatError, match=message):
        Dataset("small", ds.counts, _maps(roi64, 5.0), ds.response)


def test_background_with_another_ordering():
    ds = make_small_dataset()
    ring = HealpixROI.from_disc(SMALL_CENTER, 2.0, 128, nest=False)
    assert ring.n_pix == ds.roi.n_pix  # same size, only the ordering differs
    with pytest.raises(MapFormatError, match=r"has nside=128 \(RING\), the counts have nside=128 \(NESTED\)"):
        Dataset("small", ds.counts, _maps(ring, 5.0), ds.response)


def test_background_on_other_pixels_or_bins():
    ds = make_small_dataset()
    shifted = HealpixROI.from_disc((SMALL_CENTER[0] + 0.5, SMALL_CENTER[1]), 2.0, 128)
    with pytest.raises(MapFormatError, match="covers other pixels than the counts"):
        Dataset("small", ds.counts, _maps(shifted, 5.0), ds.response)
    with pytest.raises(MapFormatError, match="has 1 analysis bins, the counts have 2"):
        Dataset("small", ds.counts, _maps(ds.roi, 5.0, names=("low",)), ds.response)
    with pytest.raises(MapFormatError, match="response has 1 analysis bins, counts have 2"):
        Dataset("small", ds.counts, ds.background, small_response(n_bins=1))


@pytest.mark.parametrize(
    "file_nside, file_nest, want_nside, want_nest, message",
    [
        (64, True, 128, None, "has nside=64, but nside=128 was expected"),
        (64, True, None, False, "is in NESTED ordering, but RING was expected"),
        (64, False, None, True, "is in RING ordering, but NESTED was expected"),
    ],
)
def test_read_with_expected_nside_or_ordering(tmp_path, file_nside, file_nest, want_nside, want_nest, message):
    path = _write_small_map(tmp_path / "counts.fits", nest=file_nest, nside=file_nside)
    with pytest.raises(MapFormatError, match=re.escape(f"{path} {message}")):
        HealpixMaps.read(path, nside=want_nside, nest=want_nest)


def test_map_data_of_wrong_shape():
    roi = HealpixROI.from_disc(SMALL_CENTER, 2.0, 128)
    with pytest.raises(
        MapFormatError,
        match=rf"shape \(2, {roi.n_pix + 1}\), expected \(n_bins, n_pix\) = "
        rf"\(2, {roi.n_pix}\)",
    ):
        HealpixMaps(np.ones((2, roi.n_pix + 1)), roi, ("low", "high"))


# --- regions of interest ---------------------------------------------------------------------------


def test_empty_roi_tiny_radius():
    # nside 1 pixels are ~58 deg apart: a 0.01 deg disc holds no pixel centre
    with pytest.raises(EmptyRegionError, match="the region holds no HEALPix pixel at nside=1"):
        HealpixROI.from_disc(SMALL_CENTER, 0.01, nside=1)


@pytest.mark.parametrize("radius", [0.0, -1.0, float("nan")])
def test_empty_roi_non_positive_radius(radius):
    with pytest.raises(EmptyRegionError, match=re.escape(f"ROI radius must be positive, got {radius}")):
        HealpixROI.from_disc(SMALL_CENTER, radius, nside=128)


def test_empty_roi_from_region():
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from regions import CircleSkyRegion

    with pytest.raises(EmptyRegionError, match="no HEALPix pixel at nside=2"):
        HealpixROI.from_region(CircleSkyRegion(SkyCoord(*SMALL_CENTER, unit="deg"), 0.05 * u.deg), nside=2)


def test_invalid_nside():
    with pytest.raises(MapFormatError, match="nside=100 is not a valid HEALPix nside"):
        HealpixROI(100, True, np.arange(10))
    with pytest.raises(ValueError, match="nside"):  # healpy's own check, in query_disc
        HealpixROI.from_disc(SMALL_CENTER, 2.0, nside=100)
    with pytest.raises(MapFormatError, match=r"pixel ids outside \[0, 49152\) for nside=64"):
        HealpixROI(64, True, np.array([0, 49152]))


# --- models ----------------------------------------------------------------------------------------


def test_source_outside_every_roi(small_dataset):
    inside = Source("crab", PointSpatialModel.create(*SMALL_CENTER), PowerLaw.create())
    Likelihood(Models((inside,)), (small_dataset,))  # fine
    far = Source("far", PointSpatialModel.create(120.0, -10.0), PowerLaw.create())
    message = r"source 'far' at \(ra, dec\) = \(120\.000, -10\.000\) deg is too far from every dataset's ROI"
    with pytest.raises(ModelError, match=message):
        Likelihood(Models((inside, far)), (small_dataset,))
    # just beyond the ROI's edge (2 deg disc; the widest PSF component is 0.8 deg): its emission reaches the ROI,
    # so it is part of the model and adds counts at the edge
    near = Source("near", PointSpatialModel.create(SMALL_CENTER[0], SMALL_CENTER[1] + 2.5), PowerLaw.create())
    lk = Likelihood(Models((inside, near)), (small_dataset,))
    alone = Likelihood(Models((inside,)), (small_dataset,))
    assert float(np.sum(lk.npred()[0])) > float(np.sum(alone.npred()[0]))
    beyond = Source("beyond", PointSpatialModel.create(SMALL_CENTER[0], SMALL_CENTER[1] + 5.0), PowerLaw.create())
    with pytest.raises(ModelError, match="too far"):
        Likelihood(Models((inside, beyond)), (small_dataset,))


GOOD_SOURCE = """\
components:
- name: crab
  type: SkyModel
  spatial:
    type: PointSpatialModel
    frame: icrs
    parameters:
    - {name: lon_0, value: 83.63, unit: deg}
    - {name: lat_0, value: 22.01, unit: deg}
  spectral:
    type: LogParabolaSpectralModel
    parameters:
    - {name: amplitude, value: 2.3e-13, unit: cm-2 s-1 TeV-1, min: 0}
    - {name: alpha, value: 2.6}
    - {name: beta, value: 0.1, min: -1, max: 2}
    - {name: reference, value: 7.0, unit: TeV, frozen: true}
"""

BAD_YAML = {
    "syntax": (GOOD_SOURCE.replace("- {name: alpha, value: 2.6}", "- {name: alpha, value: 2.6"), r"malformed YAML"),
    "unknown_spatial": (
        GOOD_SOURCE.replace("type: PointSpatialModel", "type: StarSpatialModel"),
        r"source 'crab': missing or unknown 'StarSpatialModel'",
    ),
    "unknown_component": (
        GOOD_SOURCE.replace("type: SkyModel", "type: Nebula"),
        r"component 'crab' has unknown type 'Nebula'",
    ),
    "missing_parameter": (
        GOOD_SOURCE.replace("    - {name: beta, value: 0.1, min: -1, max: 2}\n", ""),
        r"source 'crab': LogParabolaSpectralModel needs parameters .* "
        r"\(missing \['beta'\], unknown \[\]\)",
    ),
    "out_of_bounds": (
        GOOD_SOURCE.replace("{name: beta, value: 0.1,", "{name: beta, value: 3.5,"),
        r"parameter 'beta' = 3\.5 lies outside its bounds \[-1\.0, 2\.0\]",
    ),
    "no_components": ("sources: []\n", r"a model file needs a top-level 'components:' list"),
}


def test_good_yaml_reads(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(GOOD_SOURCE)
    assert Models.from_yaml(path).values()["crab.beta"] == 0.1


@pytest.mark.parametrize("case", sorted(BAD_YAML))
@pytest.mark.parametrize("as_str", [False, True])
def test_malformed_yaml_file(tmp_path, case, as_str):
    text, problem = BAD_YAML[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(ModelError, match=re.escape(f"{path}: ") + problem):
        Models.from_yaml(str(path) if as_str else path)


def test_malformed_yaml_text_says_string():
    with pytest.raises(ModelError, match=r"^<string>: source 'crab': missing or unknown 'StarSpatialModel'"):
        Models.from_yaml(BAD_YAML["unknown_spatial"][0])


def test_missing_yaml_file(tmp_path):
    path = tmp_path / "model.yaml"
    with pytest.raises(FileNotFoundError, match=re.escape(f"model file {path} does not exist")):
        Models.from_yaml(path)


# --- the real HAWC background ----------------------------------------------------------------------


@pytest.mark.data
def test_real_gp_background_with_nan_planes(hawc_data):
    from skyfit.hawc import hawc_dataset

    with pytest.warns(BackgroundNaNWarning) as record:
        ds = hawc_dataset("GP", fhit_bins=(5,), nside=256, radius_deg=2, path=hawc_data)
    assert len(record) == 1
    message = str(record[0].message)
    m = re.match(
        r"BackgroundMap_Crab_fHitbin5GP\.fits\.gz: (\d+) of (\d+) background pixels in the ROI are "
        r"NaN \(bands \[(.*)\]\)",
        message,
    )
    assert m, message
    n_nan, n_total = int(m.group(1)), int(m.group(2))
    n_pix = ds.roi.n_pix
    assert n_pix == 242 and n_total % n_pix == 0  # every band of the file, on the ROI's pixels
    # two bands of the GP release are NaN throughout
    assert n_nan == 2 * n_pix and m.group(3) == "'1-1.78 TeV', '31.6-56.2 TeV'"
    # the NaN band that the safe-threshold cut keeps is masked entirely, the others not at all
    nan_bins = [i for i, name in enumerate(ds.bin_names) if name.endswith("E31.6-56.2")]
    assert len(nan_bins) == 1
    assert not ds.mask[nan_bins[0]].any()
    assert ds.mask[np.arange(ds.n_bins) != nan_bins[0]].all()
