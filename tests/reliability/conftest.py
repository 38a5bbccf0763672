"""Reliability tests: the long kill matrices are marked ``slow`` and skipped unless asked for
(``pytest -m slow tests/reliability`` or ``LABFLOW_SLOW=1``; the hook is in ``tests/conftest.py``);
the default run keeps every named crash point once and a few seeded random kills."""

from __future__ import annotations

from pathlib import Path


HERE = Path(__file__).parent
