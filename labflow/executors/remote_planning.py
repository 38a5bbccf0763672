"""Planning where the compute is: each planning step as a Prefect flow run on another work pool.

A recipe that says ``planner: {where: {pool: gpu-box}}`` keeps its campaign loop (the
orchestrator: the ledger, the stations, the record) where it runs, and asks a worker of the work
pool ``gpu-box`` for every suggestion. Each planning step is one flow run of the module-level
flow :func:`plan_step` (deployment ``labflow-plan-step/<pool>``, created or updated when the
campaign starts, by module path: the planning machine needs labflow installed, nothing else).

What travels (decision 0012):

* to the planning machine, as the flow run's one parameter: a JSON text holding the planner's
  document (:meth:`~labflow.planners.base.Planner.to_document`: kind, space, objectives, seed,
  options and state with every observation), ``n``, the pending candidates' parameters, a
  pool's remaining choices and a fidelity. A text, not a mapping: it reaches the planner byte
  for byte (Prefect's JSON handling would turn a NaN outcome into ``null``);
* back, as a Prefect artifact of type ``labflow-plan`` on that flow run (only the Prefect server
  is shared: no result storage both machines can read is needed): the candidates, the planner's
  state after it asked (the campaign's planner adopts it, so that its state hash, its RNG
  position and its fitted hyperparameters are those of a local ask), its ``last_decision`` and
  where and how long it computed.

The same seed gives the same suggestions and the same state hashes whether planning runs here or
there (the planner is deterministic given its document). A planning flow run that fails, crashes
or does not finish within the timeout raises :class:`~labflow.errors.PlanningUnavailable` (the
campaign stops taking work; ``labflow resume`` continues it), or, with ``fallback: local``,
is replaced by a local ask, recorded as such in the suggestion's ``where``.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow

from labflow.errors import PlannerError, PlanningUnavailable
from labflow.planners.base import Planner
from labflow.records import Candidate

__all__ = ["ARTIFACT_TYPE", "PLAN_FLOW_NAME", "RemotePlanning", "answer_request", "plan_request", "plan_step"]

log = logging.getLogger("labflow.campaign")

#: The planning flow's name; its deployments are ``labflow-plan-step/<deployment>``.
PLAN_FLOW_NAME = "labflow-plan-step"
#: The type of the artifact that carries a planning step's answer back.
ARTIFACT_TYPE = "labflow-plan"
REQUEST_FORMAT = "labflow-plan-request"
ANSWER_FORMAT = "labflow-plan-answer"


# -- the two ends of one planning step (plain functions: no Prefect) ------------------------------
def plan_request(planner: Planner, n: int, pending: Sequence[Candidate], choices: Any = None, fidelity: str | None = None) -> str:
    """The JSON text a planning step ships: the planner's document, ``n``, the pending candidates'
    parameters, a pool's remaining ``choices`` (a DataFrame) and a ``fidelity``."""
    request: dict[str, Any] = {
        "format": REQUEST_FORMAT,
        "planner": planner.to_document(),
        "state_hash": planner.state_hash(),
        "n": int(n),
        "pending": [dict(c.params) for c in pending],
        "fidelity": fidelity,
        "choices": None,
    }
    if choices is not None:
        split = choices.to_dict(orient="split", index=False)
        request["choices"] = {"columns": [str(c) for c in split["columns"]], "data": split["data"]}
    return json.dumps(request, default=_plain)


def answer_request(text: str) -> dict[str, Any]:
    """Run one planning step from a :func:`plan_request` text: rebuild the planner, ask it, and
    return the answer (candidates, the state after asking, ``last_decision``, where and how long).

    A planner that raises is an answer too (``error``), so that the campaign treats it as it
    treats a local planner that raises; a request that is not one raises :class:`PlannerError`.
    """
    import pandas as pd

    try:
        request = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise PlannerError(f"the planning request is not JSON text: {exc}") from None
    if not isinstance(request, dict) or request.get("format") != REQUEST_FORMAT:
        raise PlannerError("the planning request is not a labflow plan request (no 'format: labflow-plan-request')")
    t0 = time.perf_counter()
    planner = Planner.from_document(request["planner"], source="the planning request")
    if planner.state_hash() != request["state_hash"]:
        raise PlannerError(f"the planner rebuilt here hashes to {planner.state_hash()}, not {request['state_hash']} as sent",
                           hint="the planning machine runs another labflow version than the campaign; install the same one")
    pending = [Candidate(uid=f"pending-{i}", params=p) for i, p in enumerate(request["pending"])]
    given: dict[str, Any] = {}
    if request.get("fidelity") is not None:
        given["fidelity"] = request["fidelity"]
    if request.get("choices") is not None:
        given["choices"] = pd.DataFrame(request["choices"]["data"], columns=request["choices"]["columns"])
    answer: dict[str, Any] = {"format": ANSWER_FORMAT, "candidates": [], "error": None}
    try:
        got = planner.ask(int(request["n"]), pending, **given)
    except Exception as exc:  # noqa: BLE001 - sent back: the campaign's guard decides, as it does for a local planner
        answer["error"] = {"type": type(exc).__name__, "message": getattr(exc, "message", str(exc))}
    else:
        answer["candidates"] = [{"uid": c.uid, "params": dict(c.params), "planner": c.planner, "generator": c.generator} for c in got]
    answer.update({
        "state": planner.state_dict(),
        "last_decision": dict(getattr(planner, "last_decision", None) or {}),
        "last_generator": planner.last_generator,
        "host": socket.gethostname(),
        "seconds": time.perf_counter() - t0,
    })
    return answer


@flow(name=PLAN_FLOW_NAME, persist_result=False, log_prints=False)
def plan_step(request: str) -> dict[str, Any]:
    """One planning step on a worker of the planning pool: answer ``request`` (a
    :func:`plan_request` text) and publish the answer as an artifact of type ``labflow-plan`` on
    this flow run, where the campaign reads it. Returns a short summary (not persisted)."""
    from prefect.artifacts import Artifact

    answer = answer_request(request)
    kinds = sorted({c["generator"] for c in answer["candidates"]})
    Artifact(type=ARTIFACT_TYPE, key=None, data=json.loads(json.dumps(answer, default=_plain)),
             description=f"labflow planning step: {len(answer['candidates'])} candidate(s) ({', '.join(kinds) or 'none'})"
                         + (f"; the planner raised {answer['error']['type']}" if answer["error"] else "")).create()
    return {"candidates": len(answer["candidates"]), "error": answer["error"], "host": answer["host"], "seconds": answer["seconds"]}


# -- the campaign's end ---------------------------------------------------------------------------
class RemotePlanning:
    """Asks the planner on a worker of work pool ``pool``: what a campaign's proposer calls instead of ``planner.ask``.

    Parameters
    ----------
    pool: the Prefect work pool (type ``process``) whose workers plan.
    deployment: the deployment's name (default: the pool's); the flow is :func:`plan_step`.
    timeout: seconds one planning step may take, from the request to the answer (queueing,
        the worker's start of a process, the planning itself).
    fallback: ``"error"`` (raise :class:`~labflow.errors.PlanningUnavailable`) or ``"local"``
        (ask the planner here instead, and record that) when a step gets no answer.
    poll_interval: seconds between two looks at the planning flow run's state.
    tags: added to every planning flow run (the campaign's name, for instance).

    :attr:`last_where` describes where the last suggestion was computed; the proposer records it
    in the suggestion's decision.
    """

    def __init__(self, pool: str, *, deployment: str | None = None, timeout: float = 600.0, fallback: str = "error",
                 poll_interval: float = 0.25, tags: Sequence[str] = ()) -> None:
        if fallback not in ("error", "local"):
            raise ValueError(f"fallback must be 'error' or 'local', got {fallback!r}")
        self.pool = pool
        self.deployment = deployment or pool
        self.timeout = float(timeout)
        self.fallback = fallback
        self.poll_interval = float(poll_interval)
        self.tags = ["labflow", "labflow-planning", *tags]
        self.last_where: dict[str, Any] | None = None
        self.steps = 0
        self.fallbacks = 0

    @property
    def full_name(self) -> str:
        return f"{PLAN_FLOW_NAME}/{self.deployment}"

    def prepare(self) -> None:
        """Check that a Prefect server and the work pool exist, and create (or update) the planning
        deployment on the pool. Raises :class:`~labflow.errors.PlanningUnavailable` with a hint otherwise."""
        import httpx
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import PREFECT_API_URL
        from prefect.types.entrypoint import EntrypointType

        api = PREFECT_API_URL.value()
        if not api:
            raise PlanningUnavailable(
                f"planner.where.pool {self.pool!r}: planning on another machine needs a Prefect server both machines reach, "
                "and PREFECT_API_URL is not set",
                hint="start one with `prefect server start`, then `prefect config set PREFECT_API_URL=http://HOST:4200/api` here and on the planning machine",
            )
        try:
            with get_client(sync_client=True) as client:
                client.read_work_pool(self.pool)
            plan_step.to_deployment(
                self.deployment, work_pool_name=self.pool, entrypoint_type=EntrypointType.MODULE_PATH, tags=["labflow", "labflow-planning"],
                description="labflow planning step: a planner's JSON document in, suggestions out (artifact 'labflow-plan')",
            ).apply()
        except ObjectNotFound:
            raise PlanningUnavailable(f"planner.where.pool {self.pool!r}: the Prefect server at {api} has no such work pool",
                                      hint=f"create it with `prefect work-pool create {self.pool} --type process` and start "
                                           f"`prefect worker start --pool {self.pool}` on the planning machine") from None
        except httpx.HTTPError as exc:
            raise PlanningUnavailable(f"planner.where.pool {self.pool!r}: the Prefect server at {api} did not answer ({exc})",
                                      hint="is `prefect server start` running there?") from None

    def ask(self, planner: Planner, n: int, pending: Sequence[Candidate], **given: Any) -> list[Candidate]:
        """``planner.ask(n, pending, **given)`` computed on the pool; ``planner`` adopts the state it asked in.

        Raises :class:`~labflow.errors.PlanningUnavailable` when the step gets no answer (unless
        ``fallback`` is ``"local"``), and :class:`~labflow.errors.PlannerError` when the planner
        raised there (the proposer's guard treats it as a local planner that raised).
        """
        t0 = time.perf_counter()
        request = plan_request(planner, n, pending, given.get("choices"), given.get("fidelity"))
        self.steps += 1
        try:
            answer, flow_run_id = self._run(request)
        except PlanningUnavailable as exc:
            answer, failure = None, exc.message
        if answer is None:
            if self.fallback != "local":
                raise PlanningUnavailable(failure, hint=f"check the workers of work pool {self.pool!r} (`prefect worker start --pool {self.pool}`), "
                                                        "or set planner.where.fallback: local to plan here when it fails")
            self.fallbacks += 1
            log.warning("planning on work pool %s failed (%s); planning here instead", self.pool, failure)
            got = planner.ask(n, pending, **given)
            self.last_where = {"computed": "local", "fallback_from": self.pool, "reason": failure}
            return got
        self._adopt(planner, answer)
        self.last_where = {"computed": "remote", "pool": self.pool, "deployment": self.full_name, "flow_run": flow_run_id,
                           "host": answer.get("host", ""), "planning_seconds": answer.get("seconds"),
                           "round_trip_seconds": time.perf_counter() - t0}
        if answer.get("error"):
            err = answer["error"]
            raise PlannerError(f"{err.get('type')}: {err.get('message')} (on work pool {self.pool})")
        return [Candidate(uid=c["uid"], params=c["params"], planner=c.get("planner", planner.name), generator=c.get("generator", ""))
                for c in answer["candidates"]]

    def _run(self, request: str) -> tuple[dict[str, Any], str]:
        """One flow run of the planning deployment, awaited; its answer and its id."""
        import httpx
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound, PrefectException
        from prefect.states import Cancelled

        try:
            flow_run = run_deployment(self.full_name, parameters={"request": request}, timeout=self.timeout,
                                      poll_interval=self.poll_interval, tags=self.tags)
        except ObjectNotFound:
            raise PlanningUnavailable(f"no planning deployment {self.full_name!r} on the Prefect server") from None
        except (httpx.HTTPError, PrefectException) as exc:
            raise PlanningUnavailable(f"the Prefect server did not take the planning step on work pool {self.pool!r}: {exc}") from None
        run_id = str(flow_run.id)
        state = flow_run.state
        try:
            with get_client(sync_client=True) as client:
                if state is None or not state.is_final():
                    client.set_flow_run_state(flow_run.id, Cancelled(message="labflow: planning step timed out"), force=True)
                    where = "was never picked up by a worker" if state is None or state.is_scheduled() or state.is_pending() else "was still running"
                    raise PlanningUnavailable(f"planning step {flow_run.name} ({run_id}) on work pool {self.pool!r} {where} after "
                                              f"{self.timeout:g} s (planner.where.timeout); it was cancelled")
                if not state.is_completed():
                    raise PlanningUnavailable(f"planning step {flow_run.name} ({run_id}) on work pool {self.pool!r} ended "
                                              f"{state.name}: {state.message or 'no message'}")
                from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

                found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
                                                                             type=ArtifactFilterType(any_=[ARTIFACT_TYPE])))
        except (httpx.HTTPError, PrefectException) as exc:
            raise PlanningUnavailable(f"the Prefect server did not give planning step {run_id}'s state or answer: {exc}") from None
        if not found:
            raise PlanningUnavailable(f"planning step {flow_run.name} ({run_id}) completed without a '{ARTIFACT_TYPE}' artifact")
        data = found[0].data
        try:
            answer = json.loads(data) if isinstance(data, str) else data
        except json.JSONDecodeError as exc:
            raise PlanningUnavailable(f"planning step {run_id}'s answer is not JSON: {exc}") from None
        if not isinstance(answer, Mapping) or answer.get("format") != ANSWER_FORMAT:
            raise PlanningUnavailable(f"planning step {run_id}'s artifact is not a labflow plan answer")
        return dict(answer), run_id

    @staticmethod
    def _adopt(planner: Planner, answer: Mapping[str, Any]) -> None:
        """Give the campaign's planner the state the remote planner asked in (same history, the
        RNG position and model state after asking) and its account of the decision."""
        state = answer.get("state") or {}
        if len(state.get("observations", ())) != planner.n_observations:
            raise PlanningUnavailable(f"the planning answer holds {len(state.get('observations', ()))} observations, "
                                      f"the campaign's planner {planner.n_observations}")
        planner.load_state_dict(state)
        if "last_decision" in planner.__dict__ or answer.get("last_decision"):
            planner.last_decision = dict(answer.get("last_decision") or {})  # type: ignore[attr-defined]
        planner.last_generator = str(answer.get("last_generator") or "")


def _plain(o: Any) -> Any:
    """numpy scalars as plain JSON values."""
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
