"""The report's HTML: one self-contained file (inline CSS, figures as base64 PNG data URIs).

Open it from disk in any browser: no server, no script, no network. Every piece of text
that comes from the campaign file is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["render_html", "table"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f7f7f7;border:1px solid #e4e4e4;padding:.6em;overflow-x:auto;font-size:.85em}
.note{background:#fffbe6;border-left:4px solid #f0c000;padding:.4em .8em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:9em}
.card b{display:block;font-size:1.3em}nav a{margin-right:1em}
details summary{cursor:pointer;color:#1f5fa8}
"""


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(float(v)) else f"{float(v):.5g}"
    if isinstance(v, np.integer):
        return str(int(v))
    if v is None:
        return "-"
    return str(v)


def table(rows: Sequence[Mapping[str, Any]] | pd.DataFrame, columns: Sequence[str] | None = None, headers: Mapping[str, str] | None = None) -> str:
    """An HTML table of rows (dicts or a DataFrame); numbers right-aligned, everything escaped."""
    if isinstance(rows, pd.DataFrame):
        columns = list(columns or rows.columns)
        rows = rows.to_dict("records")
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))
    headers = headers or {}
    out = ["<table><thead><tr>", *(f"<th>{esc(headers.get(c, c))}</th>" for c in columns), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>")
        for c in columns:
            v = r.get(c, "")
            cls = ' class="num"' if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else ""
            out.append(f"<td{cls}>{esc(fmt(v))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def kv_table(items: Mapping[str, Any]) -> str:
    return table([{"field": k, "value": v} for k, v in items.items()], ["field", "value"])


def figure_html(name: str, data: bytes, caption: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<figure id="fig-{esc(name)}"><img alt="{esc(name)}" src="data:image/png;base64,{b64}">'
            f"<figcaption><b>{esc(name)}.png</b>: {esc(caption)}</figcaption></figure>")


def render_html(*, title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A whole page: ``sections`` are ``(anchor, heading, inner HTML)``."""
    nav = " ".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>\n{inner}\n</section>' for a, h, inner in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body>\n<h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>\n<nav>{nav}</nav>\n{body}\n"
        "</body></html>\n"
    )


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def pretty_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
