"""The lab dashboard (``labflow dashboard``): campaigns under a folder, live, with their approval queues.

``follow``  what each campaign looks like now, read incrementally from its ledger
``app``     the FastAPI application (server-rendered HTML, one small script, no external resources),
            login and tokens, and :func:`serve` (uvicorn; loopback unless a token is set)
"""

from __future__ import annotations

from labflow.dashboard.app import check_bind, create_app, is_loopback, serve

__all__ = ["check_bind", "create_app", "is_loopback", "serve"]
