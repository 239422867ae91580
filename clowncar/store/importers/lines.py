"""One grammar for the lines of a training log, whatever script wrote it.

    line    := [stamp] [counter] token*
    stamp   := unix seconds (`1776142348.135`) | ISO date-time (`2026-04-13T19:23:20Z`, `2026-04-13 19:23:20,123`)
               | `[HH:MM:SS]`, optionally followed by a log level (`INFO`, `INFO:`, ...)
    counter := `step:N/M` | `step N/M` | `N/M` at the start of the line (after the stamp)
    token   := key:value | key: value | key=value | [tag] | word

Values are numbers with an optional unit (`600011ms`, `0.8m`, `8.2s`, `3.9x`) or any other text up to the next
blank, comma, bracket or parenthesis. Commas, `|` and parentheses only separate tokens. After a counter, a word
followed by a bare number is a field too (`step:10/100 loss 3.21`). The words before a line's first number are
its name (`final_int6_sliding_window_exact`, `pre-quantization post-ema`, `quantized_ttt_phased`).

What a line is (see `Line`): a step line has a counter; an eval line has a numeric `val_bpb` and no counter; any
other line is a header or summary line (its `key:value` fields may be config) or text we do not store.
Python source printed into the log (many Parameter Golf logs start with the training script) and JSON are
recognised by their shape (`def`, `import`, ` = `, `f"`, braces, a leading quote, a trailing comma: the
arguments of a call or signature split over lines, `train_seq_len=1024,`, ...) and never read as a metric or a
setting.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

_STAMP = re.compile(
    r"^(?:(?P<unix>\d{9,11}(?:\.\d+)?)"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"|\[(?P<clock>(?:\d{4}-\d\d-\d\d[T ])?\d\d:\d\d:\d\d(?:[.,]\d+)?)\])"
    r"(?:\s+\[?(?:INFO|DEBUG|WARNING|WARN|ERROR)\]?:?)?\s+")
_COUNTER = re.compile(r"^(?:step\s*[:\s]\s*)?(\d+)\s*/\s*(\d+)(?=[\s,|:\]]|$):?\s*", re.I)
_TOKEN = re.compile(
    r"\[(?P<tag>[^\]]*)\]"
    r"|(?P<key>[A-Za-z_][\w./+%-]*?)(?P<sep>:\s*|=)(?P<val>[^\s,;|()\[\]]+)"
    r"|(?P<word>[^\s,;|()\[\]]+)")
NUMBER = re.compile(r"^(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|-?nan|-?inf)([A-Za-z/%]*)$", re.I)
_CODE = re.compile(
    r"^(?:def|class|import|from|return|if|elif|else|for|while|with|try|except|finally|raise|assert|yield|lambda|"
    r"global|nonlocal|pass|break|continue|del|async|await|print)\b|^[#@\"']"
    r"|\s(?:=|==|!=|\+=|-=|\*=|/=)\s|\bf[\"']|[{}]|\)\s*:\s*$|;\s*\S+\s*=|,\s*$")
_UNIT_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "sec": 1000.0, "m": 60_000.0, "min": 60_000.0, "h": 3_600_000.0}


@dataclass(slots=True)
class Line:
    """One line of a log, taken apart. `fields` maps lower-case keys to their raw value text (the first
    occurrence of a key wins); `name` is the words before the line's first number; `code` marks script source."""

    number: int
    text: str
    body: str = ""
    stamp: float | None = None
    step: int | None = None
    total: int | None = None
    name: str = ""
    words: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    colon_keys: set[str] = field(default_factory=set)
    tags: list[str] = field(default_factory=list)
    code: bool = False

    def num(self, *keys: str) -> float | None:
        """The first of `keys` whose value is a number (its unit dropped), else None."""
        for k in keys:
            v = number(self.fields.get(k))
            if v is not None:
                return v
        return None

    def ms(self, *keys: str) -> float | None:
        """A duration field in milliseconds (`600011ms`, `0.8m`, `8.2s`; a bare number is taken as ms)."""
        for k in keys:
            m = NUMBER.match(self.fields.get(k, ""))
            if m and m.group(2).lower() in _UNIT_MS:
                return float(m.group(1)) * _UNIT_MS[m.group(2).lower()]
        return None

    def decimals(self, key: str) -> int | None:
        """How many decimals the value of `key` was written with (a cut-off line writes fewer)."""
        m = NUMBER.match(self.fields.get(key, ""))
        if not m:
            return None
        head = m.group(1)
        return len(head.split(".", 1)[1]) if "." in head else 0


def number(text: str | None) -> float | None:
    if not text:
        return None
    m = NUMBER.match(text)
    return float(m.group(1)) if m else None


def _stamp(m: re.Match[str]) -> float | None:
    if m.group("unix"):
        return float(m.group("unix"))
    if m.group("iso"):
        try:  # Python 3.11 reads a decimal comma and a `Z` itself
            when = dt.datetime.fromisoformat(m.group("iso"))
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    return None  # a bare clock time has no date: stripped, not kept


def parse_line(number_: int, raw: str) -> Line:
    """Take one line apart (no line end in `raw`)."""
    text = raw.strip()
    line = Line(number_, text)
    rest = text
    if (m := _STAMP.match(rest)) is not None:
        line.stamp = _stamp(m)
        rest = rest[m.end():]
    line.body = rest
    if _CODE.search(rest):
        line.code = True
        return line
    if (m := _COUNTER.match(rest)) is not None:
        line.step, line.total = int(m.group(1)), int(m.group(2))
        rest = rest[m.end():]
    if ":" not in rest and "=" not in rest and line.step is None:
        line.words = rest.split()
        line.name = " ".join(line.words)
        return line
    naming, pending = True, None
    name: list[str] = []
    for t in _TOKEN.finditer(rest):
        if t.group("tag") is not None:
            line.tags.append(t.group("tag").strip())
            continue
        if t.group("key") is not None:
            key, val = t.group("key").lower(), t.group("val")
            line.fields.setdefault(key, val)
            if t.group("sep").startswith(":"):
                line.colon_keys.add(key)
            if NUMBER.match(val):
                naming = False
            elif naming:
                name.append(f"{t.group('key')}:{val}")
            pending = None
            continue
        word = t.group("word")
        if word.endswith(":") and len(word) > 1:  # `Hyperparameters:`, a key with nothing after it
            word = word[:-1]
        if NUMBER.match(word):
            if pending is not None and line.step is not None:
                line.fields.setdefault(pending.lower(), word)
            naming, pending = False, None
            continue
        line.words.append(word)
        if naming:
            name.append(word)
        pending = word
    line.name = " ".join(name)
    return line
