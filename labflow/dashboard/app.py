"""``labflow dashboard``: the campaigns under a folder, live, in the browser -- and their approval queues.

A FastAPI application rendering HTML on the server (Jinja2 templates, autoescaped) with one small
script and no external resources: it works offline and needs no build step. The page lists each
campaign with its progress, its stations busy or idle, the best result so far, the report's
best-so-far figure (:func:`labflow.report.figures.figure_best_so_far`, redrawn as results
arrive), the suggestions waiting for approval with approve, reject and edit buttons, and the open
work orders of manual stations, each with a small form to report its result. An act
is posted to the campaign's inbox (:mod:`labflow.store.inbox`) as the logged-in user, ``via``
``dashboard``; the page then shows what the campaign made of it (applied, or refused and why).

Who can act: anyone who can reach the port. So :func:`serve` binds to loopback by default and
refuses any other address unless a token is configured; with a token, the login asks for it
(compared in constant time) and every request without a session is refused (401). Sessions are
cookies (HttpOnly, SameSite=Strict) held in memory, and every act carries the session's CSRF token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from labflow.dashboard.follow import Campaigns, CampaignSummary
from labflow.errors import LabflowError

__all__ = ["check_bind", "create_app", "is_loopback", "serve"]

COOKIE = "labflow_session"
CSV_LIMIT = 1 << 20
"""The largest results CSV the dashboard takes (bytes)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token: anyone reaching it could approve experiments."""
    if not is_loopback(host) and not token:
        raise LabflowError(
            f"refusing to serve the dashboard on {host}: anyone who can reach that address could approve, reject and add experiments",
            hint="bind to 127.0.0.1 (the default), or set a token (LABFLOW_DASHBOARD_TOKEN or --token-file) that people log in with",
        )


class _Figures:
    """The best-so-far figure of each campaign (:func:`labflow.report.figures.figure_best_so_far`),
    drawn by one background thread whenever a campaign's number of finished experiments changes.
    A request gets the latest drawing at once (possibly one result behind) and waits only for a
    campaign's very first one, so figures never hold the page up."""

    def __init__(self) -> None:
        import concurrent.futures as cf

        self._cache: dict[str, tuple[int, bytes]] = {}
        self._pending: dict[str, tuple[int, Any]] = {}
        self._lock = threading.Lock()
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="labflow-dashboard-figures")
        self._pool.submit(_import_report)  # matplotlib and the report take seconds to import: not in a request

    def refresh(self, campaigns: list[CampaignSummary]) -> None:
        """Queue a new drawing for every campaign whose figure is behind its results."""
        for s in campaigns:
            if s.finished == 0 or not s.provenance.is_file():
                continue
            with self._lock:
                have = self._cache.get(s.key, (-1, b""))[0]
                queued = self._pending.get(s.key, (-1, None))[0]
                if have == s.finished or queued == s.finished:
                    continue
                self._pending[s.key] = (s.finished, self._pool.submit(self._draw, s.key, s.finished, s.provenance))

    def _draw(self, key: str, finished: int, path: Path) -> bytes:
        from labflow.report.data import CampaignView
        from labflow.report.figures import figure_best_so_far, png

        data = png(figure_best_so_far(CampaignView.open(path)), dpi=60)
        with self._lock:
            if self._cache.get(key, (-1, b""))[0] <= finished:
                self._cache[key] = (finished, data)
        return data

    def png(self, key: str, timeout: float = 60.0) -> bytes | None:
        """The latest drawing of ``key``; waits for the first one when there is none yet."""
        with self._lock:
            hit = self._cache.get(key)
            pending = self._pending.get(key)
        if hit is not None:
            return hit[1]
        if pending is None:
            return None
        return pending[1].result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _import_report() -> None:
    import labflow.report.figures  # noqa: F401 - warms the import for the first drawing


def create_app(root: str | Path, *, token: str | None = None, act_wait: float = 5.0) -> FastAPI:
    """The dashboard of the campaigns under ``root``; ``token``: the shared secret people log in with (None: name only)."""
    campaigns = Campaigns(root)
    figures = _Figures()
    sessions: dict[str, dict[str, str]] = {}  # session id -> {"user", "csrf"}
    templates = Environment(loader=PackageLoader("labflow.dashboard", "templates"), autoescape=select_autoescape(["html"]))
    templates.filters["short"] = lambda uid: str(uid)[:8]
    templates.filters["num"] = _num
    templates.filters["clock"] = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(float(t)))
    app = FastAPI(title="labflow dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    scan_lock = threading.Lock()

    def scan() -> list[CampaignSummary]:
        with scan_lock:  # followers hold offsets: one fold at a time
            found = campaigns.scan()
        figures.refresh(found)
        return found

    def session(request: Request) -> dict[str, str] | None:
        return sessions.get(request.cookies.get(COOKIE, ""))

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(root=str(root), **context), status_code=status)

    def refused(request: Request) -> Response:
        if request.method == "GET" and request.url.path == "/":
            return render("login.html", 401, need_token=bool(token), error="")
        return JSONResponse({"error": "log in first"}, status_code=401)

    def acting_session(request: Request) -> dict[str, str] | Response:
        """The session of a request that acts (a logged-in user whose page sent its CSRF token), or the refusal."""
        s = session(request)
        if s is None:
            return refused(request)
        if not hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), s["csrf"].encode()):
            return JSONResponse({"error": "stale page: reload it"}, status_code=403)
        return s

    @app.get("/login", response_class=HTMLResponse)
    def login_form() -> HTMLResponse:
        return render("login.html", need_token=bool(token), error="")

    @app.post("/login")
    def login(user: str = Form(...), token_given: str = Form("", alias="token")) -> Response:
        user = user.strip()
        if not user or len(user) > 64 or not user.isprintable():
            return render("login.html", 400, need_token=bool(token), error="give your name (up to 64 characters)")
        if token and not hmac.compare_digest(token_given.encode(), token.encode()):
            return render("login.html", 401, need_token=True, error="wrong token")
        sid = secrets.token_urlsafe(32)
        sessions[sid] = {"user": user, "csrf": secrets.token_urlsafe(24)}
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="strict")
        return response

    @app.post("/logout")
    def logout(request: Request) -> Response:
        sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        s = session(request)
        if s is None:
            return refused(request) if token else RedirectResponse("/login", status_code=303)
        found = scan()
        return render("page.html", user=s["user"], csrf=s["csrf"], campaigns=found, problems=campaigns.problems)

    @app.get("/fragment", response_class=HTMLResponse)
    def fragment(request: Request) -> Response:
        if session(request) is None:
            return refused(request)
        found = scan()
        return render("campaigns.html", campaigns=found, problems=campaigns.problems)

    @app.get("/figure/{key}.png")
    def figure(key: str, request: Request) -> Response:
        if session(request) is None:
            return refused(request)
        data = figures.png(key)
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.post("/act")
    def act(request: Request, campaign: str = Form(...), act: str = Form(...), target: str = Form(...), comment: str = Form(""),
            edits: str = Form("")) -> Response:
        s = acting_session(request)
        if isinstance(s, Response):
            return s
        return _post_act(scan(), campaigns, campaign, act, target, comment, edits, s["user"], act_wait)

    @app.post("/report")
    async def report(request: Request) -> Response:
        s = acting_session(request)
        if isinstance(s, Response):
            return s
        form = await request.form()
        values = {str(k)[len("value."):]: str(v).strip() for k, v in form.items() if str(k).startswith("value.") and str(v).strip()}
        found = await run_in_threadpool(scan)
        return await run_in_threadpool(_post_report, found, campaigns, str(form.get("campaign", "")), str(form.get("target", "")),
                                       values, str(form.get("comment", "")), s["user"], act_wait)

    @app.post("/report-csv")
    async def report_csv(request: Request) -> Response:
        s = acting_session(request)
        if isinstance(s, Response):
            return s
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return JSONResponse({"error": "choose a CSV file of results first"}, status_code=400)
        data = await upload.read(CSV_LIMIT + 1)
        if len(data) > CSV_LIMIT:
            return JSONResponse({"error": f"{upload.filename}: larger than {CSV_LIMIT // 1024} KiB; one row per work order is enough"},
                                status_code=413)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return JSONResponse({"error": f"{upload.filename}: not a UTF-8 text file (byte {exc.start})"}, status_code=400)
        found = await run_in_threadpool(scan)
        return await run_in_threadpool(_post_csv, found, campaigns, str(form.get("campaign", "")), str(upload.filename or "the file"),
                                       text, s["user"], act_wait)

    app.router.on_shutdown.append(figures.close)
    return app


def _post_act(found: list[CampaignSummary], campaigns: Campaigns, key: str, kind: str, target: str, comment: str, edits: str,
              user: str, wait: float) -> JSONResponse:
    """Post an approve, reject or edit as ``user``; wait up to ``wait`` s for the campaign's verdict."""
    from labflow.store.inbox import new_act

    summary = next((c for c in found if c.key == key), None)
    if summary is None:
        return JSONResponse({"error": f"no campaign {key!r} under this folder"}, status_code=404)
    waiting = {w["uid"]: w for w in summary.waiting}
    if kind not in ("approve", "reject", "edit"):
        return JSONResponse({"error": f"unknown act {kind!r}"}, status_code=400)
    if target not in waiting:
        return JSONResponse({"error": f"{target[:8]} is not waiting for approval in {summary.name}"}, status_code=409)
    if kind == "reject" and not comment.strip():
        return JSONResponse({"error": "say why it is rejected"}, status_code=400)
    after: dict[str, str] = {}
    if kind == "edit":
        for part in edits.split(","):
            name, sep, value = part.partition("=")
            if sep and name.strip():
                after[name.strip()] = value.strip()
        if not after:
            return JSONResponse({"error": "an edit needs NAME=VALUE pairs"}, status_code=400)
    record = new_act(kind, target=target, who=user, before=waiting[target]["params"], after=after, comment=comment.strip(), via="dashboard")
    return _verdict(campaigns, summary, record, wait)


def _post_report(found: list[CampaignSummary], campaigns: Campaigns, key: str, target: str, values: dict[str, str], comment: str,
                 user: str, wait: float) -> JSONResponse:
    """Post the result of an open work order as ``user`` (values checked first: units, every output, the physical range)."""
    from labflow.campaign.human import RefusedAct
    from labflow.campaign.work_orders import check_report_values
    from labflow.store.inbox import new_act

    summary = next((c for c in found if c.key == key), None)
    if summary is None:
        return JSONResponse({"error": f"no campaign {key!r} under this folder"}, status_code=404)
    order = next((o for o in summary.work_orders if o["id"] == target), None)
    if order is None:
        return JSONResponse({"error": f"work order {target} of {summary.name} does not wait for a result"}, status_code=409)
    try:
        check_report_values(order, values)
    except RefusedAct as exc:
        return JSONResponse({"error": exc.message}, status_code=400)
    record = new_act("report", target=target, who=user, before=order["params"], after=values, comment=comment.strip(), via="dashboard")
    return _verdict(campaigns, summary, record, wait)


def _post_csv(found: list[CampaignSummary], campaigns: Campaigns, key: str, filename: str, text: str, user: str,
              wait: float) -> JSONResponse:
    """Post one report per row of an uploaded results CSV (every row checked first; one bad row posts nothing)."""
    from labflow.campaign.human import RefusedAct
    from labflow.campaign.work_orders import reports_from_csv
    from labflow.store.inbox import new_act, work_orders_view

    summary = next((c for c in found if c.key == key), None)
    if summary is None:
        return JSONResponse({"error": f"no campaign {key!r} under this folder"}, status_code=404)
    follower = campaigns.follower(key)
    assert follower is not None
    try:
        rows = reports_from_csv(text, work_orders_view(follower.cdir.path))
    except RefusedAct as exc:
        return JSONResponse({"error": f"{filename}: {exc.message}; nothing was posted"}, status_code=400)
    verdicts = []
    for r in rows:
        record = new_act("report", target=r["order"]["id"], who=r["by"] or user, before=r["order"]["params"], after=r["after"],
                         comment=r["comment"], via="dashboard")
        verdicts.append(_verdict(campaigns, summary, record, wait).body.decode())
    import json

    messages = [json.loads(v).get("message", "") for v in verdicts]
    return JSONResponse({"outcome": "posted", "message": f"{filename}: {len(rows)} report(s): " + "; ".join(messages)})


def _verdict(campaigns: Campaigns, summary: CampaignSummary, record: dict[str, Any], wait: float) -> JSONResponse:
    """Post ``record`` to the campaign's inbox; wait up to ``wait`` s for the campaign's verdict."""
    from labflow.store.inbox import post_act

    follower = campaigns.follower(summary.key)
    assert follower is not None
    post_act(follower.cdir.path, record)
    if not summary.running:
        return JSONResponse({"outcome": "posted", "message": f"posted; {summary.name} is not running: it applies this when resumed"})
    kind, target = record["act"], record["target"]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        done = next((a for a in _ledgered(follower) if a["id"] == record["id"]), None)
        if done is not None:
            message = f"{kind} {target[:8]}: {done['outcome']}" + (f" ({done['refusal']})" if done.get("refusal") else "")
            return JSONResponse({"outcome": done["outcome"], "message": message, "refusal": done.get("refusal", "")})
        time.sleep(0.1)
    return JSONResponse({"outcome": "posted", "message": "posted; the campaign applies it between experiments"})


def _ledgered(follower: Any) -> list[dict[str, Any]]:
    from labflow.store.inbox import people_view

    return people_view(follower.cdir.path)["acts"]


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def serve(root: str | Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Serve the dashboard of ``root`` with uvicorn until interrupted (refusing a non-loopback ``host`` without a token)."""
    import uvicorn

    check_bind(host, token)
    uvicorn.run(create_app(root, token=token), host=host, port=port, log_level="warning")
