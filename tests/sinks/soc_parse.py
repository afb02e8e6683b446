"""What a SOC's parser does with our messages: RFC 5424 + CEF back to fields
(CEF in drivers/cef_reader.py, which the SOC-side audit watcher uses too).

Written from the specifications, independently of the code under test
(RFC 5424 §6; ArcSight "Implementing CEF" rev. 25, "Character encoding"), so
that a round trip through it checks the escaping, not just the symmetry.
"""

from __future__ import annotations

import re

from drivers.cef_reader import parse_cef

__all__ = ["parse_cef", "parse_rfc5424"]

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
