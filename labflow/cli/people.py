"""``labflow pending``, ``approve``, ``reject``, ``add``, ``annotate``, ``work-orders``, ``report-result``:
people in the loop.

Each command appends an act to the campaign's inbox (:mod:`labflow.store.inbox`) -- safe while the
campaign runs in another process -- and waits a few seconds for the campaign to ledger it, then
says whether it was applied or refused (and why). A campaign that is not running applies its
inbox when it resumes. Values are checked here first (units, the recipe's bounds) so that a typo
is an immediate error (exit 2); the campaign checks them again, with the lab's device limits.

Exit codes: 0 applied (or posted for a campaign that is not running); 1 refused by the campaign;
2 invalid input (nothing posted).
"""

from __future__ import annotations

import csv
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from labflow.cli.common import EXIT_INVALID, console, fail_message

__all__ = ["register"]

_CAMPAIGN_HELP = "the campaign: its .labflow directory, its .h5 file, or an output directory holding one unfinished campaign"


def _campaign(target: Path) -> Any:
    from labflow.errors import LabflowError
    from labflow.store.campaign_dir import find_campaign_dir

    try:
        return find_campaign_dir(target)
    except LabflowError as exc:
        fail_message(exc.message, exc.hint or "give the campaign's .labflow directory or its .h5 file", EXIT_INVALID)


def _space(cdir: Any) -> Any:
    from labflow.launch import recipe_from_header

    return recipe_from_header(cdir.history().header).space


def _running(cdir: Any) -> bool:
    return bool(cdir.status().get("holder"))


def _parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            fail_message(f"--param {pair!r}: expected NAME=VALUE", "e.g. --param temperature=250degC (a value without a unit is in the recipe's unit)",
                         EXIT_INVALID)
        out[name.strip()] = value.strip()
    return out


def _check(cdir: Any, values: dict[str, str], base: dict[str, Any] | None = None, *, where: str) -> None:
    """Units and the recipe's bounds, before anything is posted (the campaign adds the device limits)."""
    from labflow.campaign.human import RefusedAct, check_point

    try:
        check_point(_space(cdir), {}, values, base=base)
    except RefusedAct as exc:
        fail_message(f"{where}: {exc.message}", "values without a unit are in the recipe's unit; see: labflow pending CAMPAIGN", EXIT_INVALID)


def _resolve(cdir: Any, prefix: str, candidates: list[str], what: str) -> str:
    hits = [u for u in candidates if u.startswith(prefix)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        fail_message(f"{cdir.path.name}: no {what} with id {prefix!r}", "list them with: labflow pending " + str(cdir.path), EXIT_INVALID)
    fail_message(f"{cdir.path.name}: id {prefix!r} matches {len(hits)} experiments", "give more characters of the id", EXIT_INVALID)
    return ""


def _post(cdir: Any, act: dict[str, Any], wait: float) -> None:
    """Post ``act``; wait for the campaign to ledger it and report the outcome."""
    from labflow.errors import LabflowError
    from labflow.store.inbox import annotate_finished, people_view, post_act

    if people_view(cdir.path)["ended"] and not _running(cdir):
        if act["act"] != "annotate":
            fail_message(f"campaign {cdir.path.name} has ended: nothing more runs in it", "start a new campaign (labflow run) for more experiments", 1)
        try:
            done = annotate_finished(cdir.path, act)
        except LabflowError as exc:
            fail_message(exc.message, exc.hint, 1)
        console.print(f"annotate {act['target'][:8]}: recorded in the ended campaign's ledger and {cdir.provenance_path.name} "
                      f"(as {done['who']}, {done['when']})", highlight=False)
        return
    post_act(cdir.path, act)
    if not _running(cdir):
        console.print(f"posted {act['act']} {act['target'][:8]} as {act['who']}; the campaign is not running: it takes effect on "
                      f"labflow resume {cdir.path}", highlight=False)
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        done = next((a for a in people_view(cdir.path)["acts"] if a["id"] == act["id"]), None)
        if done is not None:
            if done["outcome"] == "applied":
                console.print(f"{act['act']} {act['target'][:8]}: applied (recorded as {done['who']}, {done['when']})", highlight=False)
                return
            fail_message(f"{act['act']} {act['target'][:8]} refused by the campaign: {done['refusal']}", None, 1)
        time.sleep(0.1)
    console.print(f"posted {act['act']} {act['target'][:8]}; the campaign has not picked it up within {wait:g} s (it reads its inbox "
                  "between experiments); check with: labflow pending " + str(cdir.path), highlight=False)


def pending(target: Path = typer.Argument(..., help=_CAMPAIGN_HELP)) -> None:
    """List the suggestions that wait for approval, and acts posted but not yet applied."""
    from labflow.store.inbox import people_view

    cdir = _campaign(target)
    view = people_view(cdir.path)
    if not view["waiting"]:
        console.print(f"{cdir.path.name}: nothing waits for approval", highlight=False)
    else:
        t = Table(title=f"{cdir.path.name}: waiting for approval ({len(view['waiting'])})")
        for col in ("id", "parameters", "why", "waiting since", "deadline"):
            t.add_column(col)
        space = _space(cdir)
        for w in view["waiting"]:
            params = ", ".join(f"{k}={_fmt(v)}{' ' + space[k].unit if k in space and getattr(space[k], 'unit', '') else ''}"
                               for k, v in w["params"].items())
            t.add_row(w["uid"][:8], params, w["why"], _when(w["requested"]), _when(w["deadline"]))
        console.print(t)
    for a in view["posted"]:
        console.print(f"posted, not applied yet: {a['act']} {a['target'][:8]} by {a['who']} at {a['when']}", highlight=False)
    orders = [o for o in _orders(cdir) if o["state"] == "open"]
    if orders:
        console.print(f"{len(orders)} work order{'s' if len(orders) != 1 else ''} of manual stations wait for a result: "
                      f"labflow work-orders {cdir.path}", highlight=False)


def approve(
    target: Path = typer.Argument(..., help=_CAMPAIGN_HELP),
    uid: str = typer.Argument(..., help="the suggestion's id (the first characters are enough)"),
    edit: list[str] = typer.Option([], "--edit", help="NAME=VALUE: run this value instead (repeatable), e.g. --edit temperature=250degC"),
    comment: str = typer.Option("", "--comment", "--why", help="why (recorded with the act)"),
    who: Optional[str] = typer.Option(None, "--as", help="who acts (default: your login name)"),
    wait: float = typer.Option(10.0, "--wait", help="seconds to wait for the running campaign to apply it"),
) -> None:
    """Approve a waiting suggestion, as it is or edited (--edit): the campaign may then run it."""
    from labflow.store.inbox import new_act, people_view

    cdir = _campaign(target)
    waiting = {w["uid"]: w for w in people_view(cdir.path)["waiting"]}
    full = _resolve(cdir, uid, list(waiting), "suggestion waiting for approval")
    if edit:
        values = _parse_params(edit)
        _check(cdir, values, waiting[full]["params"], where="--edit")
        act = new_act("edit", target=full, who=who, before=waiting[full]["params"], after=values, comment=comment)
    else:
        act = new_act("approve", target=full, who=who, before=waiting[full]["params"], comment=comment)
    _post(cdir, act, wait)


def reject(
    target: Path = typer.Argument(..., help=_CAMPAIGN_HELP),
    uid: str = typer.Argument(..., help="the suggestion's id (the first characters are enough)"),
    why: str = typer.Option(..., "--why", help="why it must not run (recorded with the act)"),
    who: Optional[str] = typer.Option(None, "--as", help="who acts (default: your login name)"),
    wait: float = typer.Option(10.0, "--wait", help="seconds to wait for the running campaign to apply it"),
) -> None:
    """Reject a waiting suggestion: it never runs, and the planner never proposes that point again."""
    from labflow.store.inbox import new_act, people_view

    cdir = _campaign(target)
    waiting = {w["uid"]: w for w in people_view(cdir.path)["waiting"]}
    full = _resolve(cdir, uid, list(waiting), "suggestion waiting for approval")
    _post(cdir, new_act("reject", target=full, who=who, before=waiting[full]["params"], comment=why), wait)


def add(
    target: Path = typer.Argument(..., help=_CAMPAIGN_HELP),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE for every parameter (repeatable), e.g. --param temperature=250degC"),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="a CSV file: one experiment per row, one column per parameter"),
    comment: str = typer.Option("", "--comment", "--why", help="why (recorded with the act)"),
    who: Optional[str] = typer.Option(None, "--as", help="who acts (default: your login name)"),
    wait: float = typer.Option(10.0, "--wait", help="seconds to wait for the running campaign to apply it"),
) -> None:
    """Add operator experiments: they run next, through the same plan and records, marked source=operator."""
    from labflow.records import new_uid
    from labflow.store.inbox import new_act

    cdir = _campaign(target)
    rows: list[dict[str, str]] = []
    if param:
        rows.append(_parse_params(param))
    if csv_file is not None:
        try:
            with open(csv_file, newline="", encoding="utf-8") as f:
                rows.extend({k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f))
        except OSError as exc:
            fail_message(f"cannot read {csv_file}: {exc.strerror}", "give a CSV file with one column per parameter", EXIT_INVALID)
    if not rows:
        fail_message("nothing to add", "give --param NAME=VALUE for every parameter, or --csv FILE", EXIT_INVALID)
    for i, row in enumerate(rows):
        _check(cdir, row, where=f"{csv_file}: row {i + 2}" if csv_file is not None and not param else "--param")
    for row in rows:
        _post(cdir, new_act("add", target=new_uid(), who=who, after=row, comment=comment), wait)


def annotate(
    target: Path = typer.Argument(..., help=_CAMPAIGN_HELP),
    uid: str = typer.Argument(..., help="the experiment's id (the first characters are enough)"),
    outlier: bool = typer.Option(False, "--outlier", help="the result is an outlier (a cracked film, a clogged line)"),
    invalid: bool = typer.Option(False, "--invalid", help="the result is invalid"),
    why: str = typer.Option(..., "--why", help="why (recorded with the act)"),
    who: Optional[str] = typer.Option(None, "--as", help="who acts (default: your login name)"),
    wait: float = typer.Option(10.0, "--wait", help="seconds to wait for the running campaign to apply it"),
) -> None:
    """Flag a finished experiment as an outlier or invalid: the planner stops learning from it; nothing is deleted."""
    from labflow.store.inbox import new_act

    if outlier == invalid:
        fail_message("give exactly one of --outlier and --invalid", None, EXIT_INVALID)
    cdir = _campaign(target)
    finished = [r["uid"] for r in cdir.history().finished]
    full = _resolve(cdir, uid, finished, "finished experiment")
    _post(cdir, new_act("annotate", target=full, who=who, after={"flag": "outlier" if outlier else "invalid"}, comment=why), wait)


# -- manual stations: work orders and their results ------------------------------------------------
def _orders(cdir: Any) -> list[dict[str, Any]]:
    from labflow.store.inbox import work_orders_view

    return work_orders_view(cdir.path)


def _campaigns_under(target: Path) -> list[Any]:
    """Every campaign under a folder of campaigns, or the one campaign ``target`` names."""
    from labflow.store.campaign_dir import CampaignDir

    if target.is_dir() and not (target / "ledger.lfl").is_file():
        found = [CampaignDir(d) for d in sorted(target.rglob("*.labflow")) if (d / "ledger.lfl").is_file()]
        if found:
            return found
    return [_campaign(target)]


def _with_units(values: dict[str, Any], units: dict[str, str]) -> str:
    return ", ".join(f"{k}={_fmt(v)}{' ' + units[k] if units.get(k) else ''}" for k, v in values.items())


def _left(deadline: float) -> str:
    s = float(deadline) - time.time()
    if s <= 0:
        return "overdue"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.1f} {unit} left"
    return f"{s:.0f} s left"


def work_orders(
    target: Path = typer.Argument(..., help="a campaign (its .labflow directory or .h5 file), or a folder of campaigns"),
    every: bool = typer.Option(False, "--all", help="also the orders reported, timed out or closed"),
) -> None:
    """List the work orders of manual stations that wait for a person's result, with their parameters in units."""
    shown = 0
    for cdir in _campaigns_under(target):
        orders = [o for o in _orders(cdir) if every or o["state"] in ("open", "posted")]
        if not orders:
            continue
        shown += len(orders)
        console.print(f"{cdir.path.name}: {len(orders)} work order{'s' if len(orders) != 1 else ''}"
                      + ("" if every else f" wait{'s' if len(orders) == 1 else ''} for a result"), highlight=False, soft_wrap=True)
        for o in orders:
            expects = ", ".join(f"{x['name']} [{x['unit'] or 'dimensionless'}]" for x in o["outputs"])
            state = o["state"] if o["state"] != "open" else _left(o["deadline"])
            if o["report"] is not None:
                state += f", by {o['report']['who']} at {o['report']['when']}"
            lines = [f"  {o['id']}  station {o['station']}  experiment {o['uid'][:8]}  issued {_when(o['issued'])}  "
                     f"due {_when(o['deadline'])}  ({state})",
                     f"      parameters: {_with_units(o['params'], o['units'])}",
                     f"      report: {expects}"]
            console.print("\n".join(lines), highlight=False, soft_wrap=True, markup=False)
    if not shown:
        console.print(f"{target}: no work order waits for a result", highlight=False)


def _find_order(cdir: Any, orders: list[dict[str, Any]], text: str, where: str) -> dict[str, Any]:
    """The order ``text`` names (WO-0003, wo3, 3, or the first characters of its experiment's uid); it must wait for a result."""
    from labflow.campaign.human import RefusedAct
    from labflow.campaign.work_orders import find_order

    try:
        return find_order(orders, text)
    except RefusedAct as exc:
        hint = (f"report results before the deadline; the lab config's manual station sets the timeout" if "timed out" in exc.message
                else f"list the open ones with: labflow work-orders {cdir.path}")
        fail_message(f"{where}: {cdir.path.name}: {exc.message}", hint, EXIT_INVALID)


def _checked_values(order: dict[str, Any], values: dict[str, str], where: str) -> None:
    from labflow.campaign.human import RefusedAct
    from labflow.campaign.work_orders import check_report_values

    try:
        check_report_values(order, values)
    except RefusedAct as exc:
        expects = ", ".join(f"{x['name']} in {x['unit'] or 'dimensionless'}" for x in order["outputs"])
        fail_message(f"{where}: {exc.message}", f"give every output with its unit, e.g. --value {order['outputs'][0]['name']}=62"
                     f"{order['outputs'][0]['unit'] or ''} (a value without a unit is in the output's unit); work order "
                     f"{order['id']} expects {expects}", EXIT_INVALID)


def _parse_values(pairs: list[str], where: str = "--value") -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            fail_message(f"{where} {pair!r}: expected NAME=VALUE", "e.g. --value product_yield=62percent", EXIT_INVALID)
        out[name.strip()] = value.strip()
    return out


def _csv_reports(cdir: Any, orders: list[dict[str, Any]], path: Path, by: str | None, comment: str) -> list[dict[str, Any]]:
    """One report act per row of ``path``, every row checked before anything is posted."""
    from labflow.campaign.human import RefusedAct
    from labflow.campaign.work_orders import reports_from_csv
    from labflow.store.inbox import new_act

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail_message(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", "give a CSV text file, one row per work order", EXIT_INVALID)
    try:
        rows = reports_from_csv(text, orders)
    except RefusedAct as exc:
        fail_message(f"{path}: {exc.message}", "columns: work_order, one per output (a value with its unit, or in the output's unit), "
                     f"and optionally by, comment, failed; the open orders: labflow work-orders {cdir.path}", EXIT_INVALID)
    return [new_act("report", target=r["order"]["id"], who=r["by"] or by, before=r["order"]["params"], after=r["after"],
                    comment=r["comment"] or comment) for r in rows]


def report_result(
    target: Path = typer.Argument(..., help=_CAMPAIGN_HELP),
    order: Optional[str] = typer.Argument(None, help="the work order (WO-0003, or 3); leave out with --csv"),
    value: list[str] = typer.Option([], "--value", help="NAME=VALUE for every output (repeatable), e.g. --value product_yield=62percent"),
    failed: Optional[str] = typer.Option(None, "--failed", help="the experiment failed (the reason): recorded as a failure"),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="a CSV file: one row per work order (work_order, one column per output; by, comment, failed optional)"),
    by: Optional[str] = typer.Option(None, "--by", "--as", help="who did the work (default: your login name)"),
    comment: str = typer.Option("", "--comment", help="a note recorded with the result"),
    wait: float = typer.Option(10.0, "--wait", help="seconds to wait for the running campaign to record it"),
) -> None:
    """Report the result of a manual station's work order: the campaign records it like an automated reading, with who and when."""
    from labflow.store.inbox import new_act

    cdir = _campaign(target)
    if (order is None) == (csv_file is None):
        fail_message("give a work order with --value (or --failed), or --csv FILE, not both", "see the open orders: labflow work-orders "
                     + str(cdir.path), EXIT_INVALID)
    orders = _orders(cdir)
    if csv_file is not None:
        if value or failed:
            fail_message("--csv takes the values from the file: leave out --value and --failed", None, EXIT_INVALID)
        acts = _csv_reports(cdir, orders, csv_file, by, comment)
    else:
        found = _find_order(cdir, orders, str(order), "ORDER")
        if failed is not None:
            if value or not failed.strip():
                fail_message("--failed takes the reason, and no --value", "e.g. --failed 'the film cracked'", EXIT_INVALID)
            after: dict[str, Any] = {"failed": failed.strip()}
        else:
            if not value:
                fail_message(f"no result for work order {found['id']}", "give --value NAME=VALUE for every output: "
                             + ", ".join(f"{x['name']} [{x['unit'] or 'dimensionless'}]" for x in found["outputs"]), EXIT_INVALID)
            after = _parse_values(value)
            _checked_values(found, after, "--value")
        acts = [new_act("report", target=found["id"], who=by, before=found["params"], after=after, comment=comment)]
    for act in acts:
        _post(cdir, act, wait)


def _reported(command: Callable[..., None]) -> Callable[..., None]:
    """Run ``command``; a labflow error (a damaged ledger, a campaign still starting) is printed
    with its hint and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from labflow.errors import LabflowError

        try:
            command(*args, **kwargs)
        except LabflowError as exc:
            fail_message(exc.message, exc.hint, 1)

    return wrapper


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


def register(app: typer.Typer) -> None:
    """Add ``pending``, ``approve``, ``reject``, ``add``, ``annotate``, ``work-orders`` and ``report-result``."""
    for command in (pending, approve, reject, add, annotate):
        app.command()(_reported(command))
    app.command("work-orders")(_reported(work_orders))
    app.command("report-result")(_reported(report_result))
