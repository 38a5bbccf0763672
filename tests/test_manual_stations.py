"""Manual stations: a person does the experiment, labflow plans and records. Each experiment on a
manual station is a work order, listed by `labflow work-orders` and reported with `labflow
report-result` (values, a CSV file, or a failure), hours or days later in a real lab -- seconds here."""

from __future__ import annotations

import json
import time

import h5py
import pandas as pd
import pytest
from typer.testing import CliRunner

from labflow.cli import app
from labflow.errors import RecipeError
from labflow.lab import parse_lab_config
from labflow.store.inbox import new_act, read_inbox, work_orders_view
from labflow.store.provenance import read_campaign
from manual_helpers import write_bench, write_mixed
from people_helpers import RunningCampaign, wait_for
from reliability.helpers import child_env, cli


def _open_orders(campaign: RunningCampaign, n: int = 1) -> list[dict]:
    return wait_for(lambda: (lambda o: o if len(o) >= n else None)([o for o in work_orders_view(campaign.cdir.path) if o["state"] == "open"]),
                    60, f"{n} open work order(s)")


def _primary(path, run_uid: str) -> dict:
    with h5py.File(path, "r") as f:
        g = f["runs"][run_uid]["primary"]
        return {k: (g[k][0].decode() if isinstance(g[k][0], bytes) else float(g[k][0])) for k in g if k != "time"}


def test_a_lab_with_no_robot_plans_and_records_results_a_chemist_reports_from_the_command_line(tmp_path):
    campaign = RunningCampaign(write_bench(tmp_path, budget=2), tmp_path / "out")
    (order,) = _open_orders(campaign)
    listed = cli("work-orders", str(tmp_path / "out"), env=child_env(COLUMNS="250"))
    assert listed.returncode == 0, listed.stderr
    assert "WO-0001" in listed.stdout and "degC" in listed.stdout and "product_yield [percent]" in listed.stdout
    assert f"solvent={order['params']['solvent']}" in listed.stdout

    done = cli("report-result", str(campaign.cdir.path), "WO-0001", "--value", "product_yield=62percent", "--by", "alice",
               "--comment", "recrystallised once")
    assert done.returncode == 0 and "applied" in done.stdout, done.stdout + done.stderr
    (second,) = wait_for(lambda: [o for o in work_orders_view(campaign.cdir.path) if o["state"] == "open" and o["id"] != "WO-0001"],
                         60, "the second work order")
    failed = cli("report-result", str(campaign.cdir.path), "2", "--failed", "the flask cracked in the oil bath", "--by", "bob")
    assert failed.returncode == 0 and "applied" in failed.stdout, failed.stdout + failed.stderr
    outcome = campaign.join()

    rec = read_campaign(outcome.path)
    exp = rec.experiments.set_index("uid")
    assert exp.loc[order["uid"], "status"] == "completed" and exp.loc[order["uid"], "product_yield"] == 62.0
    assert exp.loc[second["uid"], "status"] == "failed"
    assert "work order WO-0002 reported failed by bob: the flask cracked in the oil bath" in exp.loc[second["uid"], "reason"]
    reading = _primary(outcome.path, exp.loc[order["uid"], "run_uids"])
    assert reading["bench_instrument_product_yield"] == 62.0 and reading["bench_instrument_reported_by"] == "alice"
    assert reading["bench_instrument_work_order"] == "WO-0001" and reading["bench_instrument_reported_at"].startswith("20")
    assert reading["bench_synthesis_temperature"] == pytest.approx(order["params"]["temperature"])
    acts = rec.human
    assert list(acts["act"]) == ["report", "report"] and list(acts["who"]) == ["alice", "bob"]
    assert list(acts["target"]) == ["WO-0001", "WO-0002"] and list(acts["outcome"]) == ["applied", "applied"]
    assert json.loads(acts.iloc[0]["after"]) == {"product_yield": 62.0} and acts.iloc[0]["comment"] == "recrystallised once"
    assert [o["state"] for o in work_orders_view(campaign.cdir.path)] == ["reported", "reported"]
    orders = rec.work_orders  # the orders are in the HDF5 file too, with the parameters they asked for
    assert list(orders["id"]) == ["WO-0001", "WO-0002"] and list(orders["uid"]) == [order["uid"], second["uid"]]
    assert json.loads(orders.iloc[0]["units"])["temperature"] == "degC" and list(orders["station"]) == ["bench", "bench"]

    # ...and in what people read afterwards: `labflow inspect` and the exported research-data package
    shown = cli("inspect", str(outcome.path), env=child_env(COLUMNS="250"))
    assert shown.returncode == 0 and "work orders (2" in shown.stdout and "WO-0002" in shown.stdout, shown.stdout + shown.stderr
    as_json = cli("inspect", str(outcome.path), "--json")
    assert [o["id"] for o in json.loads(as_json.stdout)["work_orders"]] == ["WO-0001", "WO-0002"]
    exported = cli("export", str(outcome.path), "-o", str(tmp_path / "package"))
    assert exported.returncode == 0, exported.stderr
    table = pd.read_csv(tmp_path / "package" / "work_orders.csv")
    assert list(table["id"]) == ["WO-0001", "WO-0002"] and list(table["station"]) == ["bench", "bench"]
    assert table["deadline"].iloc[0].endswith("Z") and "timeout_s [s]" in table.columns


def test_results_from_a_csv_file_and_every_mistake_is_exit_2_naming_what_was_expected(tmp_path):
    runner = CliRunner()
    campaign = RunningCampaign(write_bench(tmp_path, budget=2, stations="[{name: bench}, {name: hood}]"), tmp_path / "out")
    orders = _open_orders(campaign, 2)
    assert sorted(o["station"] for o in orders) == ["bench", "hood"]
    where = str(campaign.cdir.path)

    def refused(*args: str) -> str:
        result = runner.invoke(app, ["report-result", where, *args], terminal_width=200)
        assert result.exit_code == 2, result.output
        assert "hint:" in result.output
        return result.output

    assert "expects no output(s) ['purity']" in refused("WO-0001", "--value", "product_yield=50", "--value", "purity=90percent")
    empty = tmp_path / "empty.csv"
    empty.write_text("work_order,product_yield\nWO-0001,\n")
    assert "row 2: work order WO-0001: missing value(s) for ['product_yield']" in refused("--csv", str(empty))
    wrong_unit = refused("WO-0001", "--value", "product_yield=3 kg")
    assert "product_yield = '3 kg'" in wrong_unit and "expected a value in percent" in wrong_unit
    assert "outside the range it can physically take, [0, 100] percent" in refused("WO-0001", "--value", "product_yield=120percent")
    assert "no work order 'WO-0009'" in refused("WO-0009", "--value", "product_yield=50")
    assert "expected NAME=VALUE" in refused("WO-0001", "--value", "product_yield")
    assert "no result for work order WO-0001" in refused("WO-0001")
    bad = tmp_path / "bad.csv"
    bad.write_text("work_order,product_yield\nWO-0001,55\nWO-0002,55 kelvin\n")
    out = refused("--csv", str(bad))
    assert "bad.csv: row 3" in out and "55 kelvin" in out
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("order,product_yield\nWO-0001,55\n")
    assert "no column 'work_order'" in refused("--csv", str(nocol))
    assert read_inbox(campaign.cdir.path) == []  # nothing was posted

    good = tmp_path / "results.csv"
    good.write_text("work_order,product_yield,by,comment\nWO-0001,55 percent,carol,\nwo-2,0.31,,second plate\n")
    result = runner.invoke(app, ["report-result", where, "--csv", str(good), "--by", "dave"], terminal_width=200)
    assert result.exit_code == 0 and result.output.count("applied") == 2, result.output
    outcome = campaign.join()
    rec = read_campaign(outcome.path)
    by_station = dict(zip(rec.experiments["station"], rec.experiments["product_yield"]))
    first = next(o for o in orders if o["id"] == "WO-0001")
    assert by_station[first["station"]] == 55.0 and sorted(by_station.values()) == [0.31, 55.0]
    assert list(rec.human["who"]) == ["carol", "dave"] and list(rec.human["comment"]) == ["", "second plate"]
    again = runner.invoke(app, ["report-result", where, "WO-0001", "--value", "product_yield=1"], terminal_width=200)
    assert again.exit_code == 2 and "was reported already by carol" in again.output


def test_a_work_order_never_reported_times_out_into_a_recorded_failure_and_the_campaign_goes_on(tmp_path, prefect_server):
    # on the Prefect executor (each experiment a task run); the bench's orders time out after 1 s, the hood's after 2 min
    recipe = write_bench(tmp_path, budget=2, stations="[{name: bench, timeout: 1 s}, {name: hood, timeout: 2 min}]", executor="prefect")
    campaign = RunningCampaign(recipe, tmp_path / "out")
    orders = wait_for(lambda: (lambda o: o if len(o) == 2 else None)(work_orders_view(campaign.cdir.path)), 60, "an order on each station")
    bench, hood = sorted(orders, key=lambda o: o["station"])
    wait_for(lambda: [o for o in work_orders_view(campaign.cdir.path) if o["id"] == bench["id"] and o["state"] == "timed out"], 30,
             "the bench's order to time out")
    late = CliRunner().invoke(app, ["report-result", str(campaign.cdir.path), bench["id"], "--value", "product_yield=40"], terminal_width=200)
    assert late.exit_code == 2 and "timed out" in late.output
    campaign.act(new_act("report", target=hood["id"], who="erin", after={"product_yield": "71 %"}))
    outcome = campaign.join()
    rec = read_campaign(outcome.path)
    exp = rec.experiments.set_index("uid")
    assert exp.loc[bench["uid"], "status"] == "failed"
    assert f"work order {bench['id']} on bench was not reported within its timeout of 1 s" in exp.loc[bench["uid"], "reason"]
    assert exp.loc[hood["uid"], "status"] == "completed" and exp.loc[hood["uid"], "product_yield"] == 71.0
    assert {o["id"]: o["state"] for o in work_orders_view(campaign.cdir.path)} == {bench["id"]: "timed out", hood["id"]: "reported"}


def test_the_robot_keeps_working_while_the_bench_holds_an_open_work_order(tmp_path):
    campaign = RunningCampaign(write_mixed(tmp_path, budget=5), tmp_path / "out")
    (order,) = _open_orders(campaign)
    robot = wait_for(lambda: (lambda f: f if len(f) >= 4 else None)([r for r in campaign.records("finished") if r["row"]["station"] == "station1"]),
                     60, "four experiments on the robot while the bench works")
    assert [o["state"] for o in work_orders_view(campaign.cdir.path)] == ["open"]  # the bench has not reported yet
    campaign.act(new_act("report", target=order["id"], who="frank", after={"y": 12.5}))
    outcome = campaign.join()
    rec = read_campaign(outcome.path)
    assert sorted(rec.experiments["station"]) == ["bench", "station1", "station1", "station1", "station1"]
    bench = rec.experiments.set_index("station").loc["bench"]
    assert bench["y"] == 12.5 and bench["uid"] == order["uid"]
    assert {r["row"]["station"] for r in robot} == {"station1"}


def test_a_manual_lab_is_refused_in_virtual_time_before_anything_is_written(tmp_path):
    recipe = write_bench(tmp_path, executor="virtual")
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert "runs in virtual time" in result.output and "execution.executor" in result.output
    assert not (tmp_path / "out").exists()  # refused before any campaign directory was made


@pytest.mark.parametrize(("lab", "path", "message"), [
    ({"stations": [{"name": "bench"}], "outputs": [{"name": "y"}]}, "parameters", "declares the parameters"),
    ({"stations": [{"name": "bench"}], "parameters": [{"name": "t", "unit": "degC", "low": 0, "high": 1}]}, "outputs", "declares what its people report"),
    ({"stations": [{"name": "bench"}], "timeout": "3 kg", "parameters": [{"name": "t", "low": 0, "high": 1}], "outputs": [{"name": "y"}]},
     "timeout", "not a duration"),
    ({"stations": [{"name": "bench"}], "parameters": [{"name": "t", "low": 0, "high": 1}], "outputs": [{"name": "reported_by"}]},
     "outputs.0.name", "reserved"),
    ({"stations": [{"name": "bench"}], "automated": {"name": "r", "kind": "simulated", "landscape": {"name": "branin"}},
      "outputs": [{"name": "y"}]}, "outputs", "taken from the automated lab"),
    ({"stations": [{"name": "bench"}], "automated": {"name": "r", "kind": "simulated", "landscape": {"name": "nowhere"}}},
     "automated.landscape.name", "unknown landscape"),
])
def test_a_bad_manual_lab_config_names_the_field(lab, path, message):
    with pytest.raises(RecipeError) as err:
        parse_lab_config({"name": "bench-lab", "kind": "manual", **lab})
    assert any(p.path == path and message in p.message for p in err.value.problems), err.value.problems


class InstantChemist:
    """A work-order desk whose person reports every order at once (a yield of 50 %): the station's
    devices can then be put through the conformance checks every device driver passes."""

    def __init__(self) -> None:
        self.orders: list[dict] = []

    def issue(self, *, uid, attempt, station, params, units, outputs, timeout_s):
        order = {"id": f"WO-{len(self.orders) + 1:04d}", "uid": uid, "attempt": attempt, "station": station, "params": dict(params),
                 "units": dict(units), "outputs": list(outputs), "timeout_s": timeout_s, "deadline": time.time() + timeout_s}
        self.orders.append(order)
        return order

    def wait(self, order_id, on_report):
        on_report({"who": "instant chemist", "when": "2026-01-01T00:00:00+00:00", "after": {"product_yield": 50.0}})

    def consumed(self, order_id):
        pass


def test_a_manual_station_passes_the_device_conformance_checks():
    from labflow.testing import check_device

    lab = parse_lab_config({"name": "bench-lab", "kind": "manual", "stations": [{"name": "bench"}],
                            "parameters": [{"name": "temperature", "unit": "degC", "low": 20, "high": 300}],
                            "outputs": [{"name": "product_yield", "unit": "percent", "low": 0, "high": 100}]}).build()
    try:
        (station,) = lab.stations
        chemist = InstantChemist()
        station.connect_desk(chemist)
        for callback in station.subscribers():  # what the station's RunEngine tells it when a run opens
            callback("start", {"uid": "run-1", "experiment_uid": "experiment-1", "attempt": 1})
        check_device(station)
        assert chemist.orders and {o["uid"] for o in chemist.orders} == {"experiment-1"}
        assert station.instrument.read()["bench_instrument_reported_by"]["value"] == "instant chemist"
    finally:
        lab.close()
