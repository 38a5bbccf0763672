"""The campaign file opens as NeXus (h5web and silx plot the best so far on open), and every kind
of bluesky document reaches it through event_model's DocumentRouter."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import bluesky.plan_stubs as bps
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from ophyd.sim import det

from labflow import Objective, Real, Space
from labflow.launch import run_recipe
from labflow.recipe import load_recipe
from labflow.store.provenance import ProvenanceWriter, read_campaign

nexus = pytest.importorskip("nexusformat.nexus", reason="nexusformat is a dev dependency")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml").replace(planner={"kind": "sobol"})
    return run_recipe(recipe, tmp_path_factory.mktemp("runs"), budget=5, seed=2, executor="virtual").path


def test_the_file_opens_on_a_plot_of_the_best_so_far_against_experiment_number(campaign):
    root = nexus.nxload(str(campaign), "r")
    plotted = root.plottable_data  # what NeXus viewers draw on open: root default -> entry default
    assert root.attrs["default"] == "entry" and root.entry.nxclass == "NXentry"
    assert plotted.nxpath == "/entry/best_product_yield" and plotted.nxclass == "NXdata"
    assert plotted.nxsignal.nxname == "best_product_yield" and [a.nxname for a in plotted.nxaxes] == ["experiment_number"]
    rec = read_campaign(campaign)
    measured = np.where(rec.experiments["status"] == "completed", rec.experiments["product_yield"], np.nan)
    np.testing.assert_array_equal(plotted.nxaxes[0].nxdata, np.arange(1, len(rec.experiments) + 1))
    np.testing.assert_allclose(plotted.nxsignal.nxdata, np.fmax.accumulate(measured))  # maximize: the running best
    np.testing.assert_allclose(plotted["product_yield"].nxdata, measured)
    assert plotted.nxsignal.attrs["units"] == "percent"
    # units on every field of every NXdata the entry holds
    for group in root.entry.walk():
        if group.nxclass == "NXdata":
            for field in group.values():
                assert "units" in field.attrs, field.nxpath
    # the tables are there too (hard links), and the readers of the old paths still work
    assert root.entry.experiments.product_yield.attrs["units"] == "percent"
    assert list(rec.experiments["uid"]) == [u.decode() if isinstance(u, bytes) else u for u in root.experiments.uid.nxdata]


def test_runs_are_collections_whose_streams_plot_a_reading_against_time(campaign):
    with h5py.File(campaign, "r") as f:
        run = next(iter(f["runs"].values()))
        assert f["runs"].attrs["NX_class"] == "NXcollection" and run.attrs["NX_class"] == "NXcollection"
        primary = run["primary"]
        assert primary.attrs["NX_class"] == "NXdata" and primary.attrs["signal"].endswith("_instrument_product_yield")
        assert list(primary.attrs["axes"]) == ["time"] and primary["time"].attrs["units"] == "s"


# -- every document kind -----------------------------------------------------------------------------
class ExternalImage:
    """A readable detector whose frame lives in a file: each read yields a resource (once) and a datum."""

    parent = None

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.folder, self._n = name, folder, 0
        self._resource: dict | None = None

    def describe(self):
        return {f"{self.name}_image": {"source": "file", "dtype": "array", "shape": [4, 4], "external": "FILESTORE:"}}

    def read(self):
        self._n += 1
        np.save(self.folder / f"frame{self._n}.npy", np.full((4, 4), self._n))
        return {f"{self.name}_image": {"value": f"image-resource/{self._n}", "timestamp": 1.0}}

    def collect_asset_docs(self):
        if self._resource is None:
            self._resource = {"uid": "image-resource", "spec": "NPY_SEQ", "root": str(self.folder), "resource_path": "",
                              "resource_kwargs": {"filename_template": "frame{index}.npy"}, "path_semantics": "posix"}
            yield "resource", self._resource
        yield "datum", {"datum_id": f"image-resource/{self._n}", "resource": "image-resource", "datum_kwargs": {"index": self._n}}


class PagedCounter:
    """A collectable that hands its readings over as one event page of three rows."""

    parent = None

    def __init__(self, name: str) -> None:
        self.name = name

    def describe_collect(self):
        return {f"{self.name}_count": {"source": "sim", "dtype": "number", "shape": [], "units": "counts"}}

    def collect_pages(self):
        yield {"data": {f"{self.name}_count": [1.0, 2.0, 3.0]}, "timestamps": {f"{self.name}_count": [10.0, 11.0, 12.0]},
               "time": [10.0, 11.0, 12.0]}


class StreamingDetector:
    """An ophyd-async style detector: its frames are announced by stream_resource / stream_datum."""

    parent = None

    def __init__(self, name: str, folder: Path) -> None:
        self.name, self.folder = name, folder

    def describe_collect(self):
        return {f"{self.name}_frames": {"source": "file", "dtype": "array", "shape": [2, 2], "external": "STREAM:"}}

    def get_index(self) -> int:
        return 2

    def collect_asset_docs(self, index: int | None = None):
        key = f"{self.name}_frames"
        yield "stream_resource", {"uid": "frames-resource", "data_key": key, "mimetype": "application/x-hdf5",
                                  "uri": f"file://localhost{self.folder}/frames.h5", "parameters": {"dataset": "/frames"}}
        yield "stream_datum", {"uid": "frames-resource/0", "stream_resource": "frames-resource", "descriptor": "",
                               "indices": {"start": 0, "stop": 2}, "seq_nums": {"start": 0, "stop": 0}}  # the RunEngine fills seq_nums


def every_kind_of_document(image, paged, streaming):
    yield from bps.open_run(md={"experiment_uid": "exp-1"})
    yield from bps.trigger_and_read([det, image])  # event, resource, datum
    yield from bps.declare_stream(paged, name="pages", collect=True)
    yield from bps.collect(paged, name="pages")  # event_page
    yield from bps.declare_stream(streaming, name="frames", collect=True)
    yield from bps.collect(streaming, name="frames")  # stream_resource, stream_datum
    yield from bps.close_run()


def test_every_bluesky_document_kind_reaches_the_record(tmp_path):
    with h5py.File(tmp_path / "frames.h5", "w") as h:
        h["frames"] = np.arange(8.0).reshape(2, 2, 2)
    emitted: Counter = Counter()
    path = tmp_path / "docs.h5"
    writer = ProvenanceWriter(path, campaign="docs", space=Space([Real("x", 0, 1)]), objectives=[Objective("y")])
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(lambda name, doc: emitted.update([name]))
    RE.subscribe(writer)
    (run_uid,) = RE(every_kind_of_document(ExternalImage("cam", tmp_path), PagedCounter("ctr"), StreamingDetector("fast", tmp_path)))
    writer.close()
    assert {"event", "event_page", "resource", "datum", "stream_resource", "stream_datum"} <= set(emitted), emitted

    with h5py.File(path, "r") as f:
        stored = Counter(f["documents/name"].asstr()[()])
        assert stored == emitted  # /documents: every document, as emitted
        run = f[f"runs/{run_uid}"]
        assert run.attrs["experiment_uid"] == "exp-1"
        primary = run["primary"]
        assert primary["det"].shape == (1,) and np.isfinite(primary["det"][0]) and primary["cam_image"].asstr()[0] == "image-resource/1"
        assert primary["cam_image"].attrs["external"] == "FILESTORE:"
        pages = run["pages"]  # the event page, unpacked into its three rows
        assert pages["ctr_count"][()].tolist() == [1.0, 2.0, 3.0] and pages["ctr_count"].attrs["units"] == "counts"
        assert pages["time"].shape == (3,) and pages.attrs["signal"] == "ctr_count"
        (resource,) = [json.loads(r) for r in run["resources"].asstr()[()]]
        (datum,) = [json.loads(d) for d in run["datums"].asstr()[()]]
        assert resource["spec"] == "NPY_SEQ" and datum["resource"] == resource["uid"] and datum["datum_kwargs"] == {"index": 1}
        assert np.load(Path(resource["root"]) / resource["resource_kwargs"]["filename_template"].format(**datum["datum_kwargs"]))[0, 0] == 1
        (stream_resource,) = [json.loads(r) for r in run["stream_resources"].asstr()[()]]
        (stream_datum,) = [json.loads(d) for d in run["stream_datums"].asstr()[()]]
        assert stream_resource["data_key"] == "fast_frames" and stream_datum["stream_resource"] == stream_resource["uid"]
        assert stream_datum["indices"] == {"start": 0, "stop": 2} and stream_resource["run_start"] == run_uid
