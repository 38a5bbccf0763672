"""The Prefect UI as a way to act: a form per suggestion that waits for approval.

While a campaign runs as a Prefect flow run, each suggestion that waits for a person's approval
gets a flow run of its own, ``approve-<campaign>-<uid8>`` of the flow ``labflow-approval``, in the
*Paused* state with an input form -- Prefect's interactive workflows: the UI shows a **Resume**
button that opens the form (decision, the suggestion's values with their units, comment, your
name), above it a description of the suggestion and why it waits. Submitting the form resumes
the run with the form's values (Prefect validates them against the form's schema); labflow reads
them and posts the act to the campaign's inbox (:mod:`labflow.store.inbox`), ``via="prefect-ui"``
and ``who`` the name given, so the campaign checks and ledgers it exactly like an act from
``labflow approve`` or the dashboard. The form run then completes with the act in its message.

Why not ``pause_flow_run(wait_for_input=...)`` in the campaign's own flow run: it blocks that flow
run's code, so stations with approved work would stop too. Why not ``pause_flow_run`` in a flow
run of its own on a thread: that works while nothing else happens (the campaign's tasks run on),
but such a pause cannot be ended from outside -- a run set to Cancelled keeps its thread polling
until the pause times out, and then the engine marks it Failed -- and after a crash its thread
is gone, so a resumed campaign could not take the form over. Here labflow drives the form run's
states through the Prefect API itself (decision 0010): *Running* -> *Paused* with the form's
input keys (what ``pause_flow_run`` sets) -> *Running* when a person submits (Prefect's resume)
-> *Completed*; a suggestion settled another way (the CLI, the dashboard, a timeout, the campaign
stopping) has its form run set *Cancelled* with the reason, so no paused run is left behind, and
a person who submits it after that is told by Prefect that the run is no longer paused. A campaign
resumed after a crash takes over its open forms (found by the tag ``labflow-campaign:<id>``): an
answer given while it was down is posted, a form whose suggestion no longer waits is cancelled,
and no suggestion ever has two open forms.

:class:`ApprovalForms` is a campaign listener; one thread of its own talks to the Prefect API
(about one request a second while forms are open), so the campaign's loop never waits on it.
Outside a Prefect flow run, or for a recipe without ``approval``, it does nothing.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from labflow.space import Categorical, Integer, Space
from labflow.store.inbox import new_act, post_act
from labflow.store.ledger import TornTailWarning, read_records

if TYPE_CHECKING:
    from labflow.campaign.human import PeopleInTheLoop
    from labflow.campaign.state import CampaignState

__all__ = ["FORM_FLOW", "FORM_TAG", "ApprovalForms", "campaign_tag", "form_model", "form_run_name", "shown_values"]

log = logging.getLogger("labflow.prefect_forms")

FORM_FLOW = "labflow-approval"
"""The Prefect flow whose runs are the approval forms."""
FORM_TAG = "labflow-approval"
"""Every form run carries this tag (filter the UI's flow runs by it to see what waits)."""
PAUSE_KEY = "approval"
"""The pause key of a form run: its input keys are ``paused-approval-schema|description|response``."""
VIA = "prefect-ui"
"""The ``via`` of an act given in the Prefect UI."""
CONTROL_FIELDS = ("decision", "your_name", "comment")
EXPIRY_MARGIN_S = 60.0
"""Seconds after a suggestion's deadline (``on_timeout: skip``) at which Prefect fails its form run
if nobody ended it: the campaign ends it first, unless the campaign died."""


def campaign_tag(campaign_id: str) -> str:
    """The tag that names a campaign's form runs (``labflow-campaign:<campaign id>``)."""
    return f"labflow-campaign:{campaign_id}"


def form_run_name(campaign: str, uid: str) -> str:
    """``approve-<campaign>-<first 8 characters of the experiment id>``."""
    return f"approve-{campaign}-{uid[:8]}"


@functools.cache
def _form_flow() -> Any:
    """The ``labflow-approval`` Prefect flow: a name the form runs are filed under.

    Its runs are opened and ended by :class:`ApprovalForms` through the API; none runs this code."""
    from prefect import Flow

    def labflow_approval(campaign: str, experiment: str, values: dict[str, Any]) -> None:
        """A suggestion of ``campaign`` waiting for a person's decision (labflow drives these runs)."""
        raise RuntimeError("labflow-approval runs are opened by a running campaign (labflow.executors.prefect_forms), not called")

    return Flow(fn=labflow_approval, name=FORM_FLOW, description="A campaign's suggestion waiting for a person's approval")


@functools.cache
def _tracking_task() -> Any:
    """The task whose runs stand for form runs in the campaign's flow run (as Prefect tracks a subflow)."""
    from prefect import Task

    flow = _form_flow()
    return Task(fn=flow.fn, name=FORM_FLOW)


def _text(value: Any, unit: str) -> str:
    """A value as the form shows it: ``250 degC``, ``0.3``, ``3`` or a category."""
    if isinstance(value, str):
        return value
    number = f"{int(value)}" if float(value) == int(value) and abs(value) < 1e15 else f"{float(value):.10g}"
    return f"{number} {unit}" if unit else number


def _param_field(name: str) -> str:
    """The form field of parameter ``name`` (``<name>_value`` where the name is a control field's)."""
    return f"{name}_value" if name in CONTROL_FIELDS else name


def shown_values(space: Space, params: Mapping[str, Any]) -> dict[str, str]:
    """The text a form shows for each parameter of ``params``: ``250 degC``, ``0.3``, a category."""
    return {p.name: str(params.get(p.name)) if isinstance(p, Categorical) else _text(params.get(p.name), p.unit or "") for p in space.parameters}


def form_model(space: Space, shown: Mapping[str, str], *, description: str) -> type[Any]:
    """The form of one waiting suggestion, a :class:`prefect.input.RunInput` class: a required
    ``decision`` (approve, edit, reject) and ``your_name``, a ``comment``, and one text field per
    parameter prefilled with ``shown`` (:func:`shown_values`: the suggestion's value and unit; an
    edit may give another unit: the campaign converts it and checks it against the recipe's bounds
    and the lab's limits). ``description`` (markdown) is shown above the form."""
    import pydantic
    from prefect.input import RunInput

    fields: dict[str, Any] = {
        "decision": (Literal["approve", "edit", "reject"], pydantic.Field(
            title="Decision",
            description="approve: run the suggestion as shown. edit: run the values below instead (approve with changed values "
                        "is an edit too). reject: never run it; the planner will not propose it again (give the reason below).")),
        "your_name": (str, pydantic.Field(min_length=1, title="Your name", description="recorded as who acted")),
        "comment": (str, pydantic.Field("", title="Comment", description="why (required to reject)")),
    }
    for p in space.parameters:
        if isinstance(p, Categorical):
            fields[_param_field(p.name)] = (Literal[tuple(p.choices)], pydantic.Field(  # type: ignore[misc]
                shown[p.name], title=p.name, description=f"one of {list(p.choices)}"))
            continue
        unit = p.unit or ""
        kind = "a whole number" if isinstance(p, Integer) else "a number"
        bounds = f"[{p.low:g}, {p.high:g}]" + (f" {unit}" if unit else "")
        hint = f"{kind} in {unit}, or with another unit of the same dimension" if unit else kind
        fields[_param_field(p.name)] = (str, pydantic.Field(
            shown[p.name], title=f"{p.name} [{unit}]" if unit else p.name, description=f"{hint}; the recipe's bounds are {bounds}"))
    model = pydantic.create_model("ApprovalForm", __base__=RunInput, **fields)
    return model.with_initial_data(description=description)


@dataclass
class _Form:
    """An open form run: which suggestion, its Prefect flow run, its input keys, the prefilled values."""

    uid: str
    run_id: UUID
    keyset: dict[str, str]
    shown: dict[str, str]  # parameter -> prefilled text
    model: type[Any] | None = None
    task_run_id: UUID | None = None  # its task run in the campaign's flow run (the UI lists it there as a subflow run)


@dataclass
class _Posted:
    """An act posted from a form, until the campaign has ledgered it."""

    act_id: str
    summary: str
    run_id: UUID


class ApprovalForms:
    """A campaign listener that keeps one Prefect form run open per suggestion waiting for
    approval, and posts what people submit to the campaign's inbox (see the module docstring).

    Parameters
    ----------
    campaign:
        The campaign's name (in form run names).
    campaign_id:
        The campaign's id (in the tag that finds its forms again on resume).
    cdir:
        The campaign directory, whose inbox acts are posted to.
    people:
        The campaign's :class:`~labflow.campaign.human.PeopleInTheLoop`: what waits (``waiting``),
        which acts it has ledgered (``applied``), who approved what (``approved_by``), and the
        space whose parameters, units and bounds the form shows (``space``).
    poll_interval:
        Seconds between two looks at the open forms.
    """

    def __init__(self, *, campaign: str, campaign_id: str, cdir: str | Path, people: PeopleInTheLoop, poll_interval: float = 1.0) -> None:
        self.campaign = campaign
        self.campaign_id = campaign_id
        self.cdir = Path(cdir)
        self.space: Space = people.space
        self.people = people
        self.poll_interval = float(poll_interval)
        self.forms: dict[str, _Form] = {}  # uid -> its open form (the watcher thread's)
        self.posted: dict[str, _Posted] = {}  # uid -> the act its form posted, until ledgered
        self.notes: dict[str, str] = {}  # uid -> why its last answer was not posted (shown on its next form)
        self.opened = 0  # form runs opened by this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parent: UUID | None = None

    # -- the listener ----------------------------------------------------------------------------
    def __call__(self, event: str, state: CampaignState) -> None:
        if event == "start":
            self.start()
        elif event == "end":
            self.close()

    def start(self) -> bool:
        """Start the watcher thread when the campaign runs in a Prefect flow run and may hold
        suggestions for approval. True when started."""
        from labflow.artifacts import in_prefect_flow

        if self._thread is not None or self.people.rules.mode == "never" or not in_prefect_flow():
            return False
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        self._parent = ctx.flow_run.id if ctx is not None and ctx.flow_run is not None else None
        context = contextvars.copy_context()  # the campaign's Prefect settings (its API server) and flow run
        self._thread = threading.Thread(target=context.run, args=(self._watch,), name="labflow-approval-forms", daemon=True)
        self._thread.start()
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Stop watching: every open form run is cancelled ("the campaign stopped"); waits up to ``timeout`` s."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the approval forms of %s did not close within %g s; open form runs: %s", self.campaign, timeout,
                            sorted(f.run_id for f in self.forms.values()))
            self._thread = None

    # -- the watcher thread ----------------------------------------------------------------------
    def _watch(self) -> None:
        from prefect import get_client

        with get_client(sync_client=True) as client:
            adopted = False
            failing = ""  # the last round's error, logged once until a round succeeds
            while not self._stop.is_set():
                try:
                    if not adopted:
                        self._adopt(client)
                        adopted = True
                    self._round(client)
                    if failing:
                        log.warning("approval forms of %s: working again", self.campaign)
                    failing = ""
                except Exception as exc:  # noqa: BLE001 - the server may be busy or gone a while; the next round retries
                    error = f"{type(exc).__name__}: {exc}"
                    if error != failing:
                        log.warning("approval forms of %s: %s (retrying every %g s)", self.campaign, error, self.poll_interval)
                    failing = error
                self._stop.wait(self.poll_interval)
            waiting = self.people.waiting.copy()
            for form in list(self.forms.values()):
                why = "the campaign stopped; a resumed campaign opens a new form" if form.uid in waiting else self._settled(form.uid)
                try:
                    self._end(client, form, why)
                except Exception as exc:  # noqa: BLE001 - reported: the run stays paused, a resumed campaign cancels it
                    log.warning("could not cancel the approval form %s (flow run %s): %s: %s", form.uid[:8], form.run_id,
                                type(exc).__name__, exc)

    def _round(self, client: Any) -> None:
        """One look: answers submitted, suggestions settled elsewhere, new suggestions waiting."""
        self._collect(client)
        waiting = self.people.waiting.copy()  # a dict copy is one step under the GIL: safe beside the loop's thread
        for uid in [u for u, p in self.posted.items() if u not in waiting and p.act_id in self.people.applied]:
            del self.posted[uid]  # ledgered, and settled
        for uid, form in list(self.forms.items()):
            if uid not in waiting:
                self._end(client, form, self._settled(uid))
        for uid, record in waiting.items():
            if uid in self.forms:
                continue
            posted = self.posted.get(uid)
            note = self.notes.pop(uid, "")
            if posted is not None:
                if posted.act_id not in self.people.applied:
                    continue  # the campaign has not ledgered the act yet
                ledgered = next((a for a in self._human_acts() if a.get("id") == posted.act_id), None)
                if ledgered is None or ledgered.get("outcome") != "refused":
                    continue  # applied: the suggestion leaves ``waiting`` in a moment
                del self.posted[uid]
                note = f"The previous answer ({posted.summary}) was refused: {ledgered.get('refusal') or 'see the campaign log'}"
            self._open(client, uid, record, note)

    def _settled(self, uid: str) -> str:
        """How the suggestion ``uid`` was settled, from the campaign's ledger (for the form run's message)."""
        acts = [a for a in self._human_acts() if a.get("target") == uid and a.get("outcome") == "applied"]
        if not acts:
            return "no longer waits for approval"
        act = acts[-1]
        if act.get("act") == "expire":
            return f"the approval timed out ({act.get('comment', '')})"
        return f"{act.get('act')} by {act.get('who')} via {act.get('via') or 'cli'}"

    def _human_acts(self) -> list[dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TornTailWarning)  # the campaign may be appending right now
            return [r for r in read_records(self.cdir / "ledger.lfl") if r.get("k") == "human"]

    # -- opening, answering, ending ---------------------------------------------------------------
    def _open(self, client: Any, uid: str, record: Mapping[str, Any], note: str = "") -> None:
        from prefect.input.run_input import keyset_from_paused_state
        from prefect.states import Paused, Running

        shown = shown_values(self.space, dict(record.get("params") or {}))
        deadline = record.get("deadline")
        skips = record.get("on_timeout") == "skip" and deadline is not None
        expires = _dt.datetime.fromtimestamp(float(deadline), _dt.timezone.utc) if skips else None
        model = form_model(self.space, shown, description=self._describe(uid, record, shown, expires, note))
        name = form_run_name(self.campaign, uid)
        tracking = None
        if self._parent is not None:  # the form is a subflow run of the campaign's flow run, as Prefect files a subflow
            tracking = client.create_task_run(_tracking_task(), flow_run_id=self._parent, dynamic_key=f"{uid}-{self.opened}", name=name,
                                              state=Running())
        run = client.create_flow_run(_form_flow(), name=name, tags=[FORM_TAG, campaign_tag(self.campaign_id)],
                                     parameters={"campaign": self.campaign, "experiment": uid, "values": shown}, state=Running(),
                                     parent_task_run_id=tracking.id if tracking is not None else None)
        # The campaign's clock skips the suggestion at its deadline and cancels this form; Prefect's own
        # pause timeout, a little later, only fails the forms of a campaign that died and was not resumed.
        late = expires + _dt.timedelta(seconds=EXPIRY_MARGIN_S) if expires is not None else None
        paused = Paused(pause_expiration_time=late, pause_key=PAUSE_KEY)
        keyset = keyset_from_paused_state(paused)
        paused.state_details.run_input_keyset = keyset
        result = client.set_flow_run_state(run.id, paused)
        if result.state is None or not result.state.is_paused():
            raise RuntimeError(f"Prefect did not pause the form run {run.id}: {result.status} {result.details}")
        # The form's schema and description, after the pause (Prefect clears a pause key's inputs when
        # it pauses, as pause_flow_run also saves them after pausing): the UI shows the form from now on.
        model.save(keyset, flow_run_id=run.id, _sync=True)
        self.forms[uid] = _Form(uid=uid, run_id=run.id, keyset=keyset, shown=shown, model=model,
                                task_run_id=tracking.id if tracking is not None else None)
        self.opened += 1
        log.info("approval form for %s: Prefect flow run %s (%s)", uid[:8], form_run_name(self.campaign, uid), run.id)

    def _describe(self, uid: str, record: Mapping[str, Any], shown: Mapping[str, str], expires: _dt.datetime | None, note: str) -> str:
        lines = [f"### Suggestion `{uid[:8]}` of campaign `{self.campaign}` waits for your approval", ""]
        if note:
            lines += [f"**{note}**", ""]
        lines += [f"Why it waits: {record.get('why', '')}.", "", "| parameter | suggested |", "| --- | ---: |"]
        lines += [f"| {name} | {text} |" for name, text in shown.items()]
        lines.append("")
        if expires is not None:
            lines.append(f"Without a decision by {expires:%Y-%m-%d %H:%M} UTC it is skipped.")
        lines += ["Your decision is posted to the campaign, which checks it (bounds, units, device limits) and records it "
                  "with your name; the same can be done with `labflow approve` / `labflow reject` or the lab dashboard.", "",
                  f"Experiment id: `{uid}`."]
        return "\n".join(lines)

    def _collect(self, client: Any) -> None:
        """Post the answers of the forms people submitted (their runs are Running again)."""
        if not self.forms:
            return
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        by_id = {f.run_id: f for f in self.forms.values()}
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(by_id))))
        for run in runs:
            form = by_id[run.id]
            if run.state is None or run.state.is_paused():
                continue
            if run.state.is_running():
                self._answered(client, form)
            else:  # ended outside labflow (cancelled by hand in the UI, or its pause expired): a new one opens next round
                from prefect.states import Cancelled

                log.warning("the approval form of %s (flow run %s) was set %s outside labflow; a new form is opened",
                            form.uid[:8], run.id, run.state.type.value)
                if form.task_run_id is not None:
                    client.set_task_run_state(form.task_run_id, Cancelled(message=f"its form run was set {run.state.type.value}"), force=True)
                self.forms.pop(form.uid, None)

    def _answer_of(self, client: Any, form: _Form) -> Any | None:
        """The submitted form (validated), or None when nothing was submitted."""
        from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

        try:
            raw = client.read_flow_run_input(form.run_id, form.keyset["response"])
        except ObjectNotFound:
            return None
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:  # the sync client raises this for "no such input"
                return None
            raise
        model = form.model or form_model(self.space, form.shown, description="")
        return model.model_validate_json(raw)

    def _answered(self, client: Any, form: _Form) -> None:
        from prefect.states import Completed

        # Any step may fail (the server, the disk): the form then stays open here and the next round
        # repeats them; the act's id is the form run's, so the campaign applies it once however often it is posted.
        answer = self._answer_of(client, form)
        message = "resumed without an answer; a new form is opened" if answer is None else self._post(form, answer)
        client.set_flow_run_state(form.run_id, Completed(message=message), force=True)
        if form.task_run_id is not None:
            client.set_task_run_state(form.task_run_id, Completed(message=message), force=True)
        self.forms.pop(form.uid, None)

    def _post(self, form: _Form, answer: Any) -> str:
        """Post the form's answer to the campaign's inbox; returns what the form run says it did.
        An answer that cannot be an act (no name, a rejection without a reason) is not posted: the
        next round opens a new form that says why."""
        data = answer.model_dump()
        who, comment, decision = data["your_name"].strip(), data["comment"].strip(), data["decision"]
        changed = {p.name: data[_param_field(p.name)] for p in self.space.parameters
                   if str(data[_param_field(p.name)]).strip() != form.shown[p.name]}
        problem = "no name was given" if not who else ("a rejection needs a reason in the comment" if decision == "reject" and not comment else "")
        if problem:
            self.notes[form.uid] = f"The previous answer was not used: {problem}."
            log.warning("approval form for %s: %s; a new form is opened", form.uid[:8], problem)
            return f"{problem}: nothing was posted; a new form is opened"
        if decision == "approve" and changed:
            decision = "edit"  # the values a person changed are what runs, never the ones they corrected
        act = new_act(decision, target=form.uid, who=who, after=changed if decision == "edit" else {}, comment=comment, via=VIA,
                      prefect_flow_run=str(form.run_id))
        act["id"] = str(form.run_id)  # one answer per form run: posted again (a retry, a resumed campaign), it is applied once
        post_act(self.cdir, act)
        summary = f"{decision} by {who}" + (f": {changed}" if decision == "edit" else "")
        self.posted[form.uid] = _Posted(act_id=act["id"], summary=summary, run_id=form.run_id)
        log.info("approval form for %s: %s (posted to the campaign)", form.uid[:8], summary)
        return f"{summary}; posted to the campaign, which checks and records it"

    def _end(self, client: Any, form: _Form, reason: str) -> None:
        """Cancel ``form``'s run because its suggestion was settled elsewhere (or the campaign stops).
        An answer submitted in the same instant is still posted: the campaign records it (refused
        when the suggestion no longer waits), so nothing a person did is lost."""
        from prefect.states import Cancelled

        client.set_flow_run_state(form.run_id, Cancelled(message=reason))
        if form.task_run_id is not None:
            client.set_task_run_state(form.task_run_id, Cancelled(message=reason), force=True)
        answer = self._answer_of(client, form)
        if answer is not None:
            self._post(form, answer)
        self.forms.pop(form.uid, None)

    def _adopt(self, client: Any) -> None:
        """Take over the form runs a previous process of this campaign left open (it was killed)."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
        from prefect.client.schemas.objects import StateType
        from prefect.input.run_input import keyset_from_base_key

        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[FORM_TAG, campaign_tag(self.campaign_id)]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED, StateType.RUNNING]))))
        waiting = self.people.waiting.copy()
        for run in sorted(runs, key=lambda r: r.created or _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)):
            uid = str((run.parameters or {}).get("experiment", ""))
            if not uid or run.state is None:
                continue
            # a resumed (answered) run's state no longer holds the keyset: every form pauses under PAUSE_KEY
            keyset = run.state.state_details.run_input_keyset or keyset_from_base_key(f"paused-{PAUSE_KEY}")
            record = waiting.get(uid)
            shown = {str(k): str(v) for k, v in dict((run.parameters or {}).get("values") or {}).items()}
            if set(shown) != set(self.space.names):
                continue  # not a form of this recipe's parameters
            form = _Form(uid=uid, run_id=run.id, keyset=dict(keyset), shown=shown, model=form_model(self.space, shown, description=""),
                         task_run_id=run.parent_task_run_id)
            if run.state.is_running():  # answered while the campaign was not running
                self._answered(client, form)
            elif record is None or uid in self.forms:
                self._end(client, form, "settled while the campaign was not running" if record is None else "a newer form was opened")
            else:
                self.forms[uid] = form
                log.info("approval form for %s: took over Prefect flow run %s", uid[:8], run.id)
