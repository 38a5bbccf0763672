"""From a recipe to a finished campaign: build the lab, the planner, the provenance file and
the stations' RunEngines, then run the loop on the chosen executor.

Every campaign is crash-safe: beside its provenance file ``<out>/<name>-<stamp>.h5`` it has a
campaign directory ``<out>/<name>-<stamp>.labflow/`` holding the ledger (the source of truth),
the lock and the snapshots (:mod:`labflow.store.campaign_dir`). :func:`resume_campaign` picks a
campaign up where a crash, a stop or a full disk left it.

Prior data (``prior_data`` in the recipe) is read once, when the campaign starts, and given to
the planner before its first suggestion; the observations themselves go into the ledger header
(so a resume needs no file but the ledger) and into ``/prior`` of the provenance file, never
among the campaign's experiments. With fidelities, a candidate runs on the stations of its
fidelity and its cost is recorded (:class:`labflow.campaign.Campaign`, ``routes``).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labflow.campaign import AttemptPolicy, Campaign, CampaignState, FailureBudget, Listener, StationRunner
from labflow.campaign.human import ApprovalRules, PeopleInTheLoop
from labflow.campaign.work_orders import WorkOrderBoard
from labflow.errors import (
    CampaignExists,
    CampaignInterrupted,
    DiskFullError,
    FailureRateExceeded,
    LabflowError,
    PlanningUnavailable,
    Problem,
    ProvenanceError,
    RecipeError,
)
from labflow.executors import executor_class, executor_names, make_executor
from labflow.planners import make_planner
from labflow.recipe import Recipe
from labflow.store.campaign_dir import SUFFIX, CampaignDir, CampaignHistory, unfinished_campaigns
from labflow.store.journal import FLUSH_INTERVAL, CampaignJournal, header_record, rebuild_provenance
from labflow.store.ledger import Ledger
from labflow.store.provenance import ProvenanceWriter

ExecutorName = str  # a name from labflow.executors.executor_names()

__all__ = [
    "CampaignOutcome",
    "RebuildReport",
    "apply_overrides",
    "build_planner",
    "load_prior",
    "planning_site",
    "provenance_path",
    "rebuild_campaign",
    "recipe_from_header",
    "restore_planner",
    "resume_campaign",
    "run_recipe",
]


@dataclass
class CampaignOutcome:
    """Where a finished campaign's record is, and its final counters."""

    path: Path
    state: CampaignState
    campaign_id: str
    makespan: float
    utilization: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    campaign_dir: Path | None = None


def provenance_path(out_dir: Path, name: str, started: _dt.datetime) -> Path:
    """``<out>/<campaign>-<YYYYmmdd-HHMMSS>.h5``; a numeric suffix keeps names unique
    (neither the file nor its campaign directory ``.labflow`` may exist)."""
    base = f"{name}-{started:%Y%m%d-%H%M%S}"
    path = out_dir / f"{base}.h5"
    k = 1
    while path.exists() or path.with_suffix(SUFFIX).exists():
        k += 1
        path = out_dir / f"{base}-{k}.h5"
    return path


def _safe_child(out: Path, path: Path) -> None:
    """B6: whatever the names, files go under the output directory and nowhere else."""
    try:
        path.resolve().relative_to(out.resolve())
    except ValueError:
        raise RecipeError("unsafe output path", problems=[Problem("name", f"{path} would be written outside {out}")]) from None


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path = "runs",
    *,
    budget: int | None = None,
    seed: int | None = None,
    executor: ExecutorName | None = None,
    time_scale: float | None = None,
    listeners: Iterable[Listener] = (),
    new: bool = False,
    failure_budget: FailureBudget | None = None,
    suspenders: Iterable[Any] = (),
    handle_signals: bool = True,
    stop_grace: float = 5.0,
    executor_options: Mapping[str, Any] | None = None,
    plan_on: str | None = None,
) -> CampaignOutcome:
    """Run a campaign described by ``recipe`` and write its provenance file into ``out_dir``.

    ``executor_options`` are passed to the executor's constructor (e.g. the Prefect executor's
    ``station_limits``), beside the attempt policy and the number of stations. ``plan_on``: plan on
    a worker of this Prefect work pool (the recipe's ``planner.where.pool``, overridden and recorded).

    Raises :class:`~labflow.errors.CampaignExists` when ``out_dir`` holds an unfinished campaign
    of the same recipe that no process is running (resume it, or pass ``new=True``);
    :class:`~labflow.errors.CampaignInterrupted` when stopped by a signal (resumable);
    :class:`~labflow.errors.FailureRateExceeded` and :class:`~labflow.errors.DiskFullError`.
    """
    kind = executor or recipe.spec.execution.executor
    if kind not in executor_names():
        raise RecipeError("invalid executor", problems=[Problem("execution.executor", f"unknown executor {kind!r}; known: {executor_names()}")])
    recipe, overrides = apply_overrides(recipe, budget=budget, seed=seed, executor=executor, time_scale=time_scale, plan_on=plan_on)
    _refuse_people_in_virtual_time(recipe.lab_config, kind)
    out = Path(out_dir)
    if not new and out.is_dir():
        found = unfinished_campaigns(out, recipe.name)
        if found:
            d = found[-1]
            raise CampaignExists(
                f"{out} already holds an unfinished campaign {recipe.name!r} ({d.path.name}); starting over would run its experiments again",
                hint=f"continue it with: labflow resume {d.path}   (or pass --new to start a separate campaign)",
            )
    planning = planning_site(recipe)  # before anything is written: no server or no pool leaves no campaign behind
    started = _dt.datetime.now()
    out.mkdir(parents=True, exist_ok=True)
    while True:
        path = provenance_path(out, recipe.name, started)
        _safe_child(out, path)
        cdir = CampaignDir(path.with_suffix(SUFFIX))
        try:
            cdir.path.mkdir()  # atomic: reserves the name against a concurrent campaign
            break
        except FileExistsError:
            continue
    lock = cdir.lock()
    # Inside a Prefect flow run, the campaign's best result, summary and a link to its record
    # are published as Prefect artifacts (the listener does nothing outside a flow run).
    from labflow.artifacts import CampaignArtifacts

    listeners = [*listeners, CampaignArtifacts(recipe, path)]
    try:
        objectives = recipe.objectives
        planner = build_planner(recipe)
        prior_obs, prior_sources = load_prior(recipe, planner)
        space = planner.space  # with the fidelity column of a multi-fidelity campaign
        import uuid

        campaign_id = str(uuid.uuid4())
        created = _dt.datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
        ledger = Ledger(cdir.ledger_path, quarantine=cdir.quarantine)
        ledger.append(header_record(
            campaign=recipe.name, campaign_id=campaign_id, recipe_text=recipe.text, recipe=recipe.to_dict(), recipe_hash=recipe.hash,
            lab=recipe.lab_config.model_dump(mode="json"), seed=recipe.seed, planner=planner.name, space=space.to_dict(),
            objectives=[o.to_dict() for o in objectives], budget=recipe.budget, provenance=path.name, created=created, executor=kind,
        ) | ({"prior": prior_obs, "prior_sources": prior_sources} if prior_sources else {}) | ({"overrides": overrides} if overrides else {}))
        writer = ProvenanceWriter(
            path, campaign=recipe.name, space=space, objectives=objectives, recipe_text=recipe.text, recipe=recipe.to_dict(),
            recipe_hash=recipe.hash, lab=recipe.lab_config.model_dump(mode="json"), seed=recipe.seed, planner=planner.name,
            campaign_id=campaign_id, create_at=cdir.partial_path, created=created, flush_interval=FLUSH_INTERVAL,
        )
        writer.record_run(executor=kind, overrides=overrides)
        if prior_sources:
            writer.record_prior(_prior_frame(prior_obs), prior_sources)
        writer.publish()
        journal = CampaignJournal(cdir, ledger, writer)
        return _drive(recipe, journal, planner, kind, time_scale=time_scale, listeners=listeners, history=None,
                      failure_budget=failure_budget, suspenders=suspenders, handle_signals=handle_signals, stop_grace=stop_grace,
                      executor_options=executor_options, planning=planning)
    finally:
        lock.release()


def apply_overrides(recipe: Recipe, *, budget: int | None = None, seed: int | None = None, executor: str | None = None,
                    time_scale: float | None = None, plan_on: str | None = None) -> tuple[Recipe, dict[str, dict[str, Any]]]:
    """The recipe as it will run, and what changed it: ``{setting: {"recipe": as written, "run": as run}}``
    for each of budget, seed, executor, time scale and planning pool (``plan_on``) given and
    different from the recipe's.

    The budget, the seed, the executor and the planning pool (``planner.where.pool``, its other
    fields kept) go into the effective recipe (its hash is the run's); the time scale is the lab's
    (``time_scale`` of a simulated lab) and is recorded only.
    """
    overrides: dict[str, dict[str, Any]] = {}
    changes: dict[str, Any] = {}
    if budget is not None and budget != recipe.budget:
        overrides["budget"] = {"recipe": recipe.budget, "run": int(budget)}
        changes["budget"] = budget
    if seed is not None and seed != recipe.seed:
        overrides["seed"] = {"recipe": recipe.seed, "run": int(seed)}
        changes["seed"] = seed
    written = recipe.spec.execution.executor
    if executor is not None and executor != written:
        overrides["executor"] = {"recipe": written, "run": executor}
        changes["execution"] = {**recipe.to_dict()["execution"], "executor": executor}
    where = recipe.spec.planner.where
    if plan_on is not None and (where is None or where.pool != plan_on):
        overrides["plan_on"] = {"recipe": where.pool if where is not None else None, "run": plan_on}
        planner = recipe.to_dict()["planner"]
        changes["planner"] = {**planner, "where": {**(planner.get("where") or {}), "pool": plan_on}}
    if time_scale is not None:
        lab_scale = getattr(recipe.lab_config, "time_scale", None)
        if lab_scale != time_scale:
            overrides["time_scale"] = {"recipe": lab_scale, "run": float(time_scale)}
    return (recipe.replace(**changes) if changes else recipe), overrides


def recipe_from_header(header: dict[str, Any]) -> Recipe:
    """The recipe a campaign was started with, rebuilt from its ledger header (no files needed)."""
    from labflow.lab import parse_lab_config
    from labflow.recipe import _validate_spec

    spec = _validate_spec(header["recipe"], "<ledger>")
    lab_config = parse_lab_config(header["lab"], source="<ledger>")
    recipe = Recipe(spec, source=None, text=header["recipe_text"], lab_path=None, lab_config=lab_config)
    if recipe.hash != header["recipe_hash"]:
        raise ProvenanceError(
            f"the recipe in the ledger hashes to {recipe.hash}, not {header['recipe_hash']} as recorded",
            hint="the labflow version that wrote it validates recipes differently; resume with that version",
        )
    return recipe


def restore_planner(planner: Any, history: CampaignHistory) -> None:
    """Give ``planner`` exactly the history the ledger holds: the prior observations (from the
    header), then the observations in completion order, and the number of candidates asked.
    Deterministic: the same ledger, the same state hash."""
    state = planner.state_dict()
    state["asked"] = history.asked
    state["observations"] = list(history.header.get("prior") or []) + [r["obs"] for r in history.finished]
    planner.load_state_dict(state)


def build_planner(recipe: Recipe) -> Any:
    """The recipe's planner: its kind and options, the space with its constraints, the objectives
    with their thresholds (the reference point of several objectives), and its fidelities."""
    return make_planner(recipe.spec.planner.kind, recipe.space, recipe.objectives, seed=recipe.seed, **recipe.planner_options())


def load_prior(recipe: Recipe, planner: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Give ``planner`` the recipe's prior data (CSV files, earlier campaigns' provenance files).

    Returns the observations added (as the ledger stores them, each with its ``source``) and
    one record per file (``path``, ``sha256``, ``rows`` read, ``observations`` added).
    """
    import hashlib

    from labflow.recipe import load_prior_frame

    added: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for i, (path, outside) in enumerate(recipe.prior_paths()):
        frame = load_prior_frame(path, recipe)
        frame = frame.copy()
        if "uid" not in frame.columns:
            frame["uid"] = [f"prior-{i}-{j}" for j in range(len(frame))]
        before = planner.n_observations
        n = planner.observe_prior(frame, outside=outside)
        for o in planner.observations[before:]:
            added.append({"uid": o.uid, "params": dict(o.params), "outcomes": dict(o.outcomes), "status": o.status.value,
                          "reason": o.reason, "sample_fault": o.sample_fault, "source": path.name})
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sources.append({"path": str(path), "sha256": digest, "rows": int(len(frame)), "observations": int(n)})
    return added, sources


def _prior_frame(prior: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame([{**o["params"], **o["outcomes"], "uid": o["uid"], "status": o["status"], "reason": o.get("reason", ""),
                          "sample_fault": int(bool(o.get("sample_fault"))), "source": o.get("source", "")} for o in prior])


def resume_campaign(
    target: str | Path,
    *,
    executor: ExecutorName | None = None,
    time_scale: float | None = None,
    listeners: Iterable[Listener] = (),
    break_lock: bool = False,
    failure_budget: FailureBudget | None = None,
    suspenders: Iterable[Any] = (),
    handle_signals: bool = True,
    stop_grace: float = 5.0,
    executor_options: Mapping[str, Any] | None = None,
) -> CampaignOutcome:
    """Resume the campaign at ``target`` (its ``.labflow`` directory, its ``.h5`` file, or an
    output directory holding one unfinished campaign) and run it to its budget.

    The ledger is replayed (a torn tail is cut off, with a warning), the provenance file is
    rebuilt from it (the old one goes to ``quarantine/``), the planner is given the ledgered
    observations, in-flight experiments are repeated once (``repeated=1``) and candidates
    proposed but never started are run. Raises :class:`~labflow.errors.CampaignLocked` when
    another process holds the campaign.
    """
    from labflow.store.campaign_dir import find_campaign_dir

    cdir = find_campaign_dir(target)
    lock = cdir.lock(break_lock=break_lock)
    try:
        cdir.clean_temporaries()
        history = cdir.history(repair=True)
        if history.end is not None and history.end.get("complete"):
            raise LabflowError(f"campaign {cdir.path} already finished ({len(history.finished)} experiments); nothing to resume",
                               hint=f"inspect it with: labflow inspect {cdir.provenance_path}; if that file is damaged, "
                                    f"`labflow rebuild {cdir.path}` rewrites it from the ledger")
        recipe = recipe_from_header(history.header)
        kind = executor or history.header.get("executor") or recipe.spec.execution.executor
        _refuse_people_in_virtual_time(recipe.lab_config, kind)
        planning = planning_site(recipe)  # before the ledger is touched
        objectives = recipe.objectives
        planner = build_planner(recipe)
        space = planner.space
        restore_planner(planner, history)
        ledger = Ledger(cdir.ledger_path, quarantine=cdir.quarantine)
        # A crash leaves in-flight experiments with no 'interrupted' record: add it now.
        for r in history.in_flight():
            if not any(i["uid"] == r["uid"] and int(i.get("attempt", 0)) >= int(r.get("attempt", 1)) for i in history.interrupted):
                rec = {"k": "interrupted", "uid": r["uid"], "station": r.get("station", ""), "attempt": int(r.get("attempt", 1)),
                       "reason": "the campaign process died while this experiment ran", "t": r.get("t", 0.0), "run_uids": ""}
                ledger.append(rec)
                history.interrupted.append(rec)
        ledger.append({"k": "resumed", "pid": os.getpid(), "finished": len(history.finished), "in_flight": len(history.in_flight()),
                       "t": _dt.datetime.now().astimezone().isoformat(timespec="seconds")})
        writer, report = rebuild_provenance(cdir, history, space=space, objectives=objectives)
        if kind != history.header.get("executor"):
            overrides = dict(history.header.get("overrides") or {})
            overrides["executor"] = {"recipe": recipe.spec.execution.executor, "run": kind, "resumed with": kind}
            writer.record_run(executor=kind, overrides=overrides)
        if history.header.get("prior_sources"):
            writer.record_prior(_prior_frame(history.header.get("prior") or []), history.header["prior_sources"])
        journal = CampaignJournal(cdir, ledger, writer)
        outcome = _drive(recipe, journal, planner, kind, time_scale=time_scale, listeners=listeners, history=history,
                         failure_budget=failure_budget, suspenders=suspenders, handle_signals=handle_signals, stop_grace=stop_grace,
                         executor_options=executor_options, planning=planning)
        outcome.extra["resume"] = {**report, "finished_before": len(history.finished), "repeated": outcome.state.repeated}
        return outcome
    finally:
        lock.release()


@dataclass
class RebuildReport:
    """What :func:`rebuild_campaign` did: the file written, the experiments in it, whether the
    campaign had finished, and where the previous file went (``quarantine/``)."""

    path: Path
    experiments: int
    finished: bool
    state: str
    quarantined: list[str]
    old_file_readable: bool | None


def rebuild_campaign(target: str | Path, *, break_lock: bool = False) -> RebuildReport:
    """Rewrite the provenance file of the campaign at ``target`` from its ledger, finished or not.

    The ledger is the source of truth (decision 0002): a damaged ``.h5`` file (flipped bits, a
    deleted group, a truncated copy) is moved to the campaign's ``quarantine/`` -- never deleted --
    and written again with every suggestion, document, experiment and interruption the ledger
    holds, and the end state of a campaign that ended. Nothing runs and the ledger is not changed
    (beyond cutting a torn tail, as a resume does). Takes the campaign's lock: raises
    :class:`~labflow.errors.CampaignLocked` while the campaign runs.
    """
    from labflow.store.campaign_dir import find_campaign_dir

    cdir = find_campaign_dir(target)
    lock = cdir.lock(break_lock=break_lock)
    try:
        cdir.clean_temporaries()
        history = cdir.history(repair=True)
        recipe = recipe_from_header(history.header)
        space = build_planner(recipe).space  # with the fidelity column of a multi-fidelity campaign
        writer, report = rebuild_provenance(cdir, history, space=space, objectives=recipe.objectives,
                                            why="replaced by `labflow rebuild` from the ledger")
        try:
            if history.header.get("prior_sources"):
                writer.record_prior(_prior_frame(history.header.get("prior") or []), history.header["prior_sources"])
            end = history.end
            if end is not None:
                writer.set_summary(end.get("summary") or {}, finished=end.get("t"))
            writer.sync()
        finally:
            writer.close()
    finally:
        lock.release()
    finished = bool(history.end is not None and history.end.get("complete"))
    state = "finished" if finished else (f"stopped early: {history.end.get('reason', '')}" if history.end is not None else "interrupted")
    return RebuildReport(path=cdir.provenance_path, experiments=len(history.finished), finished=finished, state=state,
                         quarantined=list(report["quarantined"]), old_file_readable=report["old_file_readable"])


def _resume_hint(cdir: Any) -> str:
    return f"continue it with: labflow resume {cdir.path}"


def _drive(recipe: Recipe, journal: CampaignJournal, planner: Any, kind: str, *, time_scale: float | None, listeners: Iterable[Listener],
           history: CampaignHistory | None, failure_budget: FailureBudget | None, suspenders: Iterable[Any], handle_signals: bool,
           stop_grace: float, executor_options: Mapping[str, Any] | None = None, planning: Any = None) -> CampaignOutcome:
    execution = recipe.spec.execution
    lab = None
    ex: Any = None
    suspenders = list(suspenders)
    try:
        lab = recipe.lab_config.build(seed=recipe.seed, time_scale=0.0 if executor_class(kind).virtual_time else time_scale)
        work_orders = WorkOrderBoard.for_lab(lab, journal)  # the lab's manual stations issue work orders into the ledger
        if work_orders is not None and executor_class(kind).virtual_time:
            raise _people_in_virtual_time(kind)
        space, objectives = recipe.space, recipe.objectives  # the design space: a fidelity is a route, not a device setting
        routes = _routes(recipe, lab)
        used = {s for stations in routes.values() for s in stations}
        runners = [
            StationRunner(st, space, objectives, subscribers=[journal], timeout=execution.timeout_s, suspenders=suspenders)
            for st in lab.stations
            if not routes or st.name in used
        ]
        md = {
            "campaign": recipe.name,
            "campaign_id": journal.campaign_id,
            "recipe_hash": recipe.hash,
            "planner": planner.name,
            "seed": recipe.seed,
        }
        choices = lab.choices if lab.choices() is not None else None
        policy = AttemptPolicy(retries=execution.retries, retry_delay=execution.retry_delay_s,
                               sample_fault_patterns=tuple(recipe.sample_fault_patterns))
        ex = make_executor(kind, policy=policy, workers=len(runners), **dict(executor_options or {}))
        people = _people(recipe, journal, planner, lab, work_orders)
        from labflow.executors.prefect_forms import ApprovalForms  # inside a Prefect flow run: a form per waiting suggestion

        listeners = [*listeners, ApprovalForms(campaign=recipe.name, campaign_id=journal.campaign_id, cdir=journal.cdir.path, people=people)]
        campaign = Campaign(
            planner=planner,
            runners=runners,
            executor=ex,
            budget=recipe.budget,
            batch=recipe.spec.planner.batch,
            md=md,
            choices=choices,
            listeners=listeners,
            journal=journal,
            history=history,
            failure_budget=failure_budget,
            handle_signals=handle_signals,
            stop_grace=stop_grace,
            routes=routes or None,
            route_parameter=recipe.fidelity_parameter,
            costs=recipe.fidelity_costs(),
            people=people,
            cost_budget=recipe.cost_budget,
            planning=planning,
        )
        try:
            try:
                ex.drive(campaign.run, name=f"labflow-{recipe.name}", run_name=journal.path.stem, workers=len(runners))
            finally:
                ex.close()
        except (CampaignInterrupted, FailureRateExceeded, PlanningUnavailable) as exc:
            _end(journal, campaign, kind, ex, ex.utilization(len(runners)), complete=False, reason=f"{type(exc).__name__}: {exc.message}")
            if isinstance(exc, CampaignInterrupted):  # the loop does not know where the campaign lives: name it
                raise CampaignInterrupted(exc.message, hint=_resume_hint(journal.cdir)) from exc
            if isinstance(exc, PlanningUnavailable):
                raise PlanningUnavailable(exc.message, hint=f"{exc.hint}; {_resume_hint(journal.cdir)}" if exc.hint else _resume_hint(journal.cdir)) from exc
            raise
        except DiskFullError as exc:
            # nothing more can be written; resume rebuilds from the ledger
            raise DiskFullError(exc.message, hint=f"free some space, then {_resume_hint(journal.cdir)}") from exc
        utilization = ex.utilization(len(runners))
        _end(journal, campaign, kind, ex, utilization, complete=True)
        return CampaignOutcome(path=journal.path, state=campaign.state, campaign_id=journal.campaign_id, makespan=campaign.now(),
                               utilization=utilization, campaign_dir=journal.cdir.path)
    finally:
        try:
            journal.close()
        finally:
            if lab is not None:
                lab.close()


def planning_site(recipe: Recipe) -> Any:
    """Where the recipe's planner computes: None (here), or a
    :class:`~labflow.executors.remote_planning.RemotePlanning` on ``planner.where.pool``, its
    deployment created or updated on the Prefect server (raises
    :class:`~labflow.errors.PlanningUnavailable` when there is no server or no such pool)."""
    where = recipe.spec.planner.where
    if where is None:
        return None
    from labflow.executors.remote_planning import RemotePlanning

    site = RemotePlanning(where.pool, deployment=where.deployment, timeout=where.timeout_s, fallback=where.fallback,
                          tags=[f"campaign:{recipe.name}"])
    site.prepare()
    return site


def _people(recipe: Recipe, journal: CampaignJournal, planner: Any, lab: Any, work_orders: WorkOrderBoard | None = None) -> PeopleInTheLoop:
    """Approvals (the recipe's ``approval``), operator experiments, annotations and work-order reports
    through the campaign directory's inbox; values people give are checked against the lab's device limits."""
    limits_of = getattr(lab, "parameter_limits", None)
    return PeopleInTheLoop(inbox=journal.cdir.path, rules=ApprovalRules.from_spec(recipe.spec.approval), space=planner.space,
                           limits=limits_of() if limits_of is not None else {}, work_orders=work_orders)


def _people_in_virtual_time(kind: str) -> RecipeError:
    return RecipeError(
        f"the {kind!r} executor runs in virtual time, and a manual station's work orders are done by people, in real time",
        problems=[Problem("execution.executor", f"{kind!r} cannot run a lab with manual stations; use 'local' or 'prefect'")],
        hint="run it with --executor local (a simulated lab alone can run in virtual time)",
    )


def _refuse_people_in_virtual_time(lab_config: Any, kind: str) -> None:
    """Refuse a lab with manual stations under a virtual-time executor, before anything is written."""
    if getattr(lab_config, "kind", None) == "manual" and executor_class(kind).virtual_time:
        raise _people_in_virtual_time(kind)


def _routes(recipe: Recipe, lab: Any) -> dict[str, list[str]]:
    """Fidelity -> the lab's stations that measure at it (empty without fidelities)."""
    out = {}
    resolve = getattr(lab, "resolve_stations", None)
    for name, stations in recipe.fidelity_stations().items():
        names = resolve(stations) if resolve is not None and stations else list(stations)
        out[name] = names or [s.name for s in lab.stations]
    return out


def _end(journal: CampaignJournal, campaign: Campaign, kind: str, ex: Any, utilization: float | None, *, complete: bool, reason: str = "") -> None:
    state = campaign.state
    best = campaign.planner.best()
    campaign.snapshot()
    journal.end(
        {
            "completed": state.completed,
            "failed": state.failed,
            "budget": state.budget,
            "executor": kind,
            "makespan_s": campaign.now() if ex is not None else None,
            "utilization": utilization,
            "best_uid": best.uid if best else None,
            "hypervolume": state.hypervolume if state.hypervolume == state.hypervolume else None,  # NaN: one objective
            "sample_faults": state.sample_faults,
            "cost": dict(state.cost) or None,
            "interrupted": state.interrupted,
            "repeated": state.repeated,
            "abandoned": state.abandoned,
            "fallbacks": state.fallbacks,
            "stop_reason": reason,
        },
        complete=complete,
        reason=reason,
    )
