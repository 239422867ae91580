"""A tiny document model rendered twice: Markdown (text only) and one self-contained HTML file with every PNG
embedded as a base64 data URI (no external resource, so it opens from file:// anywhere)."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.verdict{font-weight:600}.warn{color:#a40}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}code{background:#f5f5f5;padding:0 3px}
.signal{color:#064}.undecided{color:#555}td{overflow-wrap:anywhere}.wide{overflow-x:auto;max-width:100%}"""


def fmt(v: Any, digits: int = 4) -> str:
    """A value as a reader compares it. A float below 1 in size (a p-value, an effect, an sd) keeps `digits`
    significant digits; from 1 up (BPB, loss) `digits` decimals, where Parameter Golf's records differ (1.1271 vs
    1.1284 BPB); a whole float (bytes, parameters, steps: pandas makes a column with a gap float) is written in
    full, never as 1.553e+07, so a reader sees whether an artifact is under 16,000,000 bytes."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        if v.is_integer():
            return str(int(v))
        if abs(v) >= 1:  # trailing zeros kept: 1.0810 beside 1.0819 reads as measured alike
            return f"{v:.{digits}f}"
        return f"{v:.{digits}g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v[:12]) + (" ..." if len(v) > 12 else "")
    return str(v)


@dataclass
class Doc:
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append((f"h{level}", text))

    def p(self, text: str, cls: str = "") -> None:
        self.blocks.append(("p", (text, cls)))

    def items(self, lines: list[str]) -> None:
        if lines:
            self.blocks.append(("ul", lines))

    def table(self, rows: list[dict[str, Any]], columns: list[str] | None = None, limit: int = 60) -> None:
        if not rows:
            return
        cols = columns or list(dict.fromkeys(k for r in rows for k in r))
        self.blocks.append(("table", (cols, rows[:limit], max(0, len(rows) - limit))))

    def image(self, png: bytes | None, alt: str, lacks: str = "") -> None:
        """The figure, or one line in its place: what the data lacks for it when the caller says."""
        if png:
            self.blocks.append(("img", (png, alt)))
        else:
            self.p(f"({alt}: no figure: {lacks})" if lacks else f"({alt}: no data for this figure)")

    # -- renderers ---------------------------------------------------------------------------------------------
    def markdown(self) -> str:
        out: list[str] = []
        for kind, val in self.blocks:
            if kind.startswith("h"):
                out.append("#" * int(kind[1]) + " " + val)
            elif kind == "p":
                out.append(val[0])
            elif kind == "ul":
                out.extend(f"- {line}" for line in val)
            elif kind == "table":
                cols, rows, more = val
                out.append("| " + " | ".join(cols) + " |")
                out.append("|" + "---|" * len(cols))
                out.extend("| " + " | ".join(fmt(r.get(c)).replace("|", "/") for c in cols) + " |" for r in rows)
                if more:
                    out.append(f"\n({more} more rows in report.json)")
            elif kind == "img":
                out.append(f"*Figure: {val[1]} (embedded in report.html)*")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        e = html.escape
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
               f"<title>{e(title)}</title><style>{CSS}</style></head><body>"]
        for kind, val in self.blocks:
            if kind.startswith("h"):
                out.append(f"<{kind}>{e(val)}</{kind}>")
            elif kind == "p":
                cls = f' class="{e(val[1])}"' if val[1] else ""
                out.append(f"<p{cls}>{e(val[0])}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in val) + "</ul>")
            elif kind == "table":
                cols, rows, more = val
                head = "".join(f"<th>{e(c)}</th>" for c in cols)
                body = "".join("<tr>" + "".join(f"<td>{e(fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
                               for r in rows)
                # a table wider than the page scrolls inside its box; the page itself never does
                out.append(f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
                if more:
                    out.append(f"<p>({more} more rows in report.json)</p>")
            elif kind == "img":
                data = base64.b64encode(val[0]).decode("ascii")
                out.append(f'<figure><img alt="{e(val[1])}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{e(val[1])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)
