"""Reading CEF back: what a SOC's parser does with a CEF:0 line.

Written from the specification (ArcSight "Implementing CEF" rev. 25, "Character
encoding"), independently of the writer in drivers/sinks/cef.py, so that the
tests' round trips through it check the escaping, not just the symmetry. The
SOC-side ``rampart audit watch`` reads syslog/CEF archives with it.
"""

from __future__ import annotations

import re


def parse_cef(text: str) -> dict:
    """A CEF:0 line to {"header": [7 fields], "ext": {key: value}}, unescaped."""
    if not text.startswith("CEF:"):
        raise ValueError(f"not CEF: {text[:40]!r}")
    fields, cur, i = [], [], 4
    while len(fields) < 7 and i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "\\|":
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == "|":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    ext_text = text[i:]
    # keys are [A-Za-z0-9_]+ immediately followed by an unescaped '='
    starts = [
        m
        for m in re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext_text)
        if not _escaped(ext_text, m.end() - 1)
    ]
    ext = {}
    for n, m in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(ext_text)
        ext[m.group(1)] = _unescape_ext(ext_text[m.end() : end])
    return {"version": fields[0], "header": fields[1:], "ext": ext}


def _escaped(text: str, pos: int) -> bool:
    n = 0
    while pos - 1 - n >= 0 and text[pos - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def _unescape_ext(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "r": "\r", "=": "=", "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)
