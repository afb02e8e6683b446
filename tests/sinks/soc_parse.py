"""What a SOC's parser does with our messages: RFC 5424 + CEF back to fields.

Written from the specifications, independently of the code under test
(RFC 5424 §6; ArcSight "Implementing CEF" rev. 25, "Character encoding"), so
that a round trip through it checks the escaping, not just the symmetry.
"""

from __future__ import annotations

import re

_HEADER = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
)
_SD_PARAM = re.compile(r'(\S+?)="((?:[^"\\\]]|\\.)*)"')


def parse_rfc5424(line: str) -> dict:
    m = _HEADER.match(line)
    if m is None:
        raise ValueError(f"not RFC 5424: {line[:80]!r}")
    rest = line[m.end() :]
    if rest.startswith("-"):
        sd_text, msg = "", rest[2:]
    else:
        # one SD-ELEMENT: up to the first "]" not escaped
        i, escaped = 1, False
        while i < len(rest):
            ch = rest[i]
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == "]":
                break
            i += 1
        sd_text, msg = rest[1:i], rest[i + 2 :]
    sd_id, _, params = sd_text.partition(" ")
    sd = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _SD_PARAM.findall(params)}
    pri = int(m["pri"])
    return {
        "facility": pri // 8,
        "severity": pri % 8,
        "timestamp": m["ts"],
        "hostname": m["host"],
        "app_name": m["app"],
        "procid": m["procid"],
        "msgid": m["msgid"],
        "sd_id": sd_id,
        "sd": sd,
        "msg": msg,
    }


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
