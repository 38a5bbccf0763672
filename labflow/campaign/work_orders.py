"""Work orders of manual stations, the campaign's side: issued into the ledger, reported by people.

A manual station (:mod:`labflow.manual`) turns each experiment into a work order. Its devices call
the campaign's :class:`WorkOrderBoard` (their *desk*):

* ``issue`` -- the synthesis was triggered: the board ledgers a ``work_order`` record (fsynced:
  id ``WO-0001``, the experiment's uid and attempt, the station, the parameters in device units with
  their units, the outputs expected with their units and physical range, when it was issued, its
  timeout and deadline) and only then returns; an order the station has not finished with for the
  same experiment (a campaign resumed after a crash or a stop) is returned instead, with its
  deadline, so nothing is issued twice (and an order whose deadline passed while the campaign was
  down fails the experiment at once);
* ``wait`` -- the instrument was triggered: its Status completes when the order's report is recorded
  (at once if it already is: a report given while the campaign was down counts);
* ``consumed`` -- the Status settled (a result, or the deadline passed): a retry of the experiment
  gets a new order.

People report through the campaign's inbox, as they approve or annotate: a ``report`` act whose
``target`` is the order id and whose ``after`` holds the values (text with units, or numbers in the
output's unit) or ``{"failed": reason}``. :class:`~labflow.campaign.human.PeopleInTheLoop` checks it
here (:meth:`WorkOrderBoard.check`: the order exists and is open, every expected output is given,
nothing else, units convert, values inside the physical range, posted before the deadline), ledgers
it as a ``human`` record, applied or refused with the reason, and then applies it
(:meth:`WorkOrderBoard.apply`). On resume the ledger's orders and applied reports are replayed first.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labflow.campaign.human import RefusedAct
from labflow.errors import LabflowError, UnitError
from labflow.units import convert

__all__ = ["CSV_COLUMNS", "WorkOrderBoard", "check_report_values", "find_order", "normalize_order_id", "reports_from_csv"]

_ORDER_ID = re.compile(r"^(?:wo-?)?0*(\d{1,9})$", re.IGNORECASE)


def normalize_order_id(text: str) -> str | None:
    """'WO-0003', 'wo3' or '3' -> 'WO-0003'; None when ``text`` is not a work-order id."""
    m = _ORDER_ID.match(str(text).strip())
    return f"WO-{int(m.group(1)):04d}" if m else None


def _epoch(when: Any) -> float:
    try:
        return _dt.datetime.fromisoformat(str(when)).timestamp()
    except ValueError:
        return math.inf


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(float(epoch), _dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def check_report_values(order: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, float]:
    """The reported ``values`` (output name -> text with a unit such as '62 percent', or a number in
    the output's unit) checked against ``order``'s expected outputs and converted to their units.
    Raises :class:`~labflow.campaign.human.RefusedAct` naming the output, the value and what was expected."""
    outputs = {o["name"]: o for o in order.get("outputs", [])}
    expected = ", ".join(f"{n} [{o['unit'] or 'dimensionless'}]" for n, o in outputs.items())
    unknown = [k for k in values if k not in outputs]
    if unknown:
        raise RefusedAct(f"work order {order['id']} expects no output(s) {unknown}; it expects {expected}")
    missing = [n for n in outputs if n not in values]
    if missing:
        raise RefusedAct(f"work order {order['id']}: missing value(s) for {missing}; a report gives every output: {expected}")
    out: dict[str, float] = {}
    for name, raw in values.items():
        o = outputs[name]
        unit = o["unit"] or ""
        if isinstance(raw, bool):
            raise RefusedAct(f"{name} = {raw!r} is not a number (expected a value in {unit or 'dimensionless'})")
        try:
            v = convert(raw, unit) if isinstance(raw, str) else float(raw)
        except UnitError as exc:
            raise RefusedAct(f"{name} = {raw!r}: {exc.message} (expected a value in {unit or 'dimensionless'})") from None
        except (ValueError, TypeError):
            raise RefusedAct(f"{name} = {raw!r} is not a number (expected a value in {unit or 'dimensionless'})") from None
        if not math.isfinite(v):
            raise RefusedAct(f"{name} = {raw!r} is not a finite value")
        lo, hi = o.get("low"), o.get("high")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
            raise RefusedAct(f"{name} = {raw!r} ({v:g} {unit}) is outside the range it can physically take, {rng} {unit}".rstrip())
        out[name] = v
    return out


class WorkOrderBoard:
    """The campaign's work orders (module docstring): the desk of its manual stations, and where
    people's reports are checked and applied. Thread-safe: stations issue and wait from their
    executor's threads, the loop applies reports from its own."""

    def __init__(self, journal: Any, *, clock: Callable[[], float] = time.time) -> None:
        if not hasattr(journal, "work_order"):
            raise LabflowError("a manual station needs a campaign ledger to record its work orders",
                               hint="run the recipe with labflow run (or labflow.launch.run_recipe)")
        self.journal = journal
        self.clock = clock
        self.orders: dict[str, dict[str, Any]] = {}  # id -> its work_order record, in issue order
        self.reports: dict[str, dict[str, Any]] = {}  # id -> the applied report act
        self.consumed_ids: set[str] = set()
        self._waiters: dict[str, Callable[[Mapping[str, Any]], None]] = {}
        self._lock = threading.RLock()

    @classmethod
    def for_lab(cls, lab: Any, journal: Any) -> WorkOrderBoard | None:
        """A board connected to ``lab``'s manual stations (those with ``connect_desk``); None when it has none."""
        manual = [s for s in getattr(lab, "stations", []) if hasattr(s, "connect_desk")]
        if not manual:
            return None
        board = cls(journal)
        for s in manual:
            s.connect_desk(board)
        return board

    def replay(self, history: Any) -> None:
        """Take the ledger's work orders back (on resume; reports come back through the people's acts).
        An order whose experiment's result is recorded is done."""
        finished = set(history.finished_uids)
        with self._lock:
            for r in history.work_orders:
                order = {k: v for k, v in r.items() if k != "k"}
                self.orders[order["id"]] = order
                if order["uid"] in finished:
                    self.consumed_ids.add(order["id"])

    # -- the desk (called by the manual stations' devices) -------------------------------------
    def issue(self, *, uid: str, attempt: int, station: str, params: Mapping[str, Any], units: Mapping[str, str],
              outputs: Sequence[Mapping[str, Any]], timeout_s: float) -> Mapping[str, Any]:
        """The open work order for experiment ``uid``, or a new one, ledgered before this returns."""
        with self._lock:
            now = self.clock()
            for order in reversed(list(self.orders.values())):
                if order["uid"] == uid and order["id"] not in self.consumed_ids:
                    # issued before a crash or a stop: the same order -- its report counts, and one whose
                    # deadline passed meanwhile fails the experiment now (a retry gets a new order)
                    return dict(order)
            order = {"id": f"WO-{len(self.orders) + 1:04d}", "uid": uid, "attempt": int(attempt), "station": station,
                     "params": dict(params), "units": dict(units), "outputs": [dict(o) for o in outputs],
                     "issued": now, "timeout_s": float(timeout_s), "deadline": now + float(timeout_s)}
            self.journal.work_order(order)
            self.orders[order["id"]] = order
            return dict(order)

    def wait(self, order_id: str, on_report: Callable[[Mapping[str, Any]], None]) -> None:
        """Call ``on_report`` with the order's report, now or when it is applied."""
        with self._lock:
            report = self.reports.get(order_id)
            if report is None:
                self._waiters[order_id] = on_report
                return
        on_report(report)

    def consumed(self, order_id: str) -> None:
        with self._lock:
            self.consumed_ids.add(order_id)
            self._waiters.pop(order_id, None)

    # -- people's reports --------------------------------------------------------------------
    def open_orders(self) -> list[dict[str, Any]]:
        """Orders issued, not reported, not past their deadline, not done."""
        now = self.clock()
        with self._lock:
            return [dict(o) for o in self.orders.values()
                    if o["id"] not in self.reports and o["id"] not in self.consumed_ids and now < float(o["deadline"])]

    def awaits_reports(self) -> bool:
        """True while a station waits for a person's report (the loop then keeps reading the inbox)."""
        with self._lock:
            return bool(self._waiters)

    def check(self, act: Mapping[str, Any]) -> dict[str, Any]:
        """Refuse a report that cannot be applied; returns the record's ``before`` (the order's
        parameters) and ``after`` (the values in the outputs' units, or ``failed``)."""
        oid = str(act.get("target", ""))
        with self._lock:
            order = self.orders.get(oid)
            if order is None:
                known = [o["id"] for o in self.orders.values()]
                raise RefusedAct(f"no work order {oid!r} in this campaign" + (f"; its orders are {known}" if known else "; it has issued none"))
            done = self.reports.get(oid)
            if done is not None:
                raise RefusedAct(f"work order {oid} was already reported by {done.get('who')} at {done.get('when')}")
            closed = oid in self.consumed_ids
        late = _epoch(act.get("when")) > float(order["deadline"])
        if closed and not late:
            raise RefusedAct(f"work order {oid} is closed: its experiment's result is recorded")
        if late or closed:
            raise RefusedAct(f"work order {oid} timed out at {_iso(order['deadline'])} (timeout {order['timeout_s']:g} s) before this "
                             f"report ({act.get('when')}); the experiment is recorded as failed")
        after = dict(act.get("after") or {})
        if "failed" in after:
            reason = str(after["failed"]).strip()
            if not reason or len(after) > 1:
                raise RefusedAct("a failed report gives only the reason: {'failed': 'why'}")
            return {"before": dict(order["params"]), "after": {"failed": reason}}
        return {"before": dict(order["params"]), "after": check_report_values(order, after)}

    def apply(self, act: Mapping[str, Any]) -> None:
        """A checked, ledgered report: hand it to the station that waits for it (or keep it for later)."""
        oid = str(act.get("target", ""))
        with self._lock:
            self.reports[oid] = dict(act)
            waiter = self._waiters.pop(oid, None)
        if waiter is not None:
            waiter(act)


# -- for the tools people report with (CLI, dashboard): the orders as the ledger shows them ---------
def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


def find_order(orders: Sequence[Mapping[str, Any]], text: str) -> dict[str, Any]:
    """The order ``text`` names among ``orders`` (:func:`labflow.store.inbox.work_orders_view`): its id
    (``WO-0003``, ``wo3``, ``3``) or the first characters of its experiment's uid. It must wait for a
    result; else :class:`~labflow.campaign.human.RefusedAct` says why not (unknown, reported already,
    timed out, closed)."""
    text = str(text).strip()
    if not text:
        raise RefusedAct("no work order given")
    oid = normalize_order_id(text)
    hits = [o for o in orders if o["id"] == oid] if oid else [o for o in orders if o["uid"].startswith(text)]
    if not hits:
        raise RefusedAct(f"no work order {text!r}")
    order = dict(([o for o in hits if o["state"] in ("open", "posted")] or hits)[-1])
    report = order.get("report") or {}
    if order["state"] == "posted":
        raise RefusedAct(f"work order {order['id']} was reported already by {report.get('who')} at {report.get('when')} "
                         "(the campaign records it when it next reads its inbox)")
    if order["state"] == "reported":
        raise RefusedAct(f"work order {order['id']} was reported already by {report.get('who')} at {report.get('when')}")
    if order["state"] == "timed out":
        raise RefusedAct(f"work order {order['id']} timed out at {_clock(order['deadline'])}; its experiment is recorded as failed")
    if order["state"] == "closed":
        raise RefusedAct(f"work order {order['id']} is closed (its experiment's result is recorded)")
    return order


CSV_COLUMNS = ("work_order", "by", "comment", "failed")
"""The columns of a results CSV beside one column per output."""


def reports_from_csv(text: str, orders: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The reports a results CSV holds: one row per work order, the columns ``work_order``, one per
    output (a value with or without its unit), and optionally ``by``, ``comment``, ``failed`` (a
    reason instead of values). Every row is checked (:func:`find_order`, :func:`check_report_values`)
    before any is returned; a problem is a :class:`~labflow.campaign.human.RefusedAct` naming the row
    (counting the header as row 1), the column and the value. Returns ``{"order", "after", "by",
    "comment"}`` per row."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or []) if h]
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if "work_order" not in header:
        raise RefusedAct(f"no column 'work_order' (its columns: {header}); the header row names work_order, one column per output, "
                         "and optionally by, comment, failed")
    if not rows:
        raise RefusedAct("no rows under the header: one row per work order")
    out, seen = [], set()
    for i, row in enumerate(rows, start=2):
        try:
            order = find_order(orders, row.get("work_order", ""))
            if order["id"] in seen:
                raise RefusedAct(f"work order {order['id']} appears twice in the file")
            seen.add(order["id"])
            values = {k: v for k, v in row.items() if k not in CSV_COLUMNS and v != ""}
            if row.get("failed"):
                if values:
                    raise RefusedAct(f"a row with 'failed' gives no values (got {sorted(values)}): leave the output columns empty")
                after: dict[str, Any] = {"failed": row["failed"]}
            else:
                check_report_values(order, values)
                after = values
        except RefusedAct as exc:
            raise RefusedAct(f"row {i}: {exc.message}") from None
        out.append({"order": order, "after": after, "by": row.get("by", ""), "comment": row.get("comment", "")})
    return out
