"""Edits to a site TOML text that keep its comments and layout (tomllib cannot write).

Used by the importers: a recording made from one sensor's capture carries the
site's configuration restricted to that sensor (so replaying it does not report
the site's other sensors as silent), with any key the import had to adapt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from fusion.config import parse_config

_SENSORS_HEADER = re.compile(r"^\s*\[\[\s*sensors\s*\]\]")
_ANY_TABLE = re.compile(r"^\s*\[")


def _sensor_blocks(lines: list[str]) -> Iterator[tuple[int, int, str | None]]:
    """(first line, end line, sensor id) of every [[sensors]] table."""
    k = 0
    while k < len(lines):
        if not _SENSORS_HEADER.match(lines[k]):
            k += 1
            continue
        end = k + 1
        while end < len(lines) and not _ANY_TABLE.match(lines[end]):
            end += 1
        sid = None
        for ln in lines[k + 1 : end]:
            m = re.match(r"^\s*id\s*=\s*[\"']([^\"']*)[\"']", ln)
            if m:
                sid = m.group(1)
                break
        yield k, end, sid
        k = end


def keep_sensors(site_toml: str, sensor_ids: set[str]) -> str:
    """The site TOML with only the [[sensors]] tables of ``sensor_ids``."""
    lines = site_toml.splitlines(keepends=True)
    drop = [(a, b) for a, b, sid in _sensor_blocks(lines) if sid not in sensor_ids]
    for a, b in reversed(drop):
        del lines[a:b]
    text = "".join(lines)
    kept = {s.id for s in parse_config(text, source="<site for import>").sensors}
    if kept != set(sensor_ids):
        raise ValueError(
            f"site TOML: could not keep exactly sensors {sorted(sensor_ids)} (got {sorted(kept)})"
        )
    return text


def set_sensor_list(site_toml: str, sensor_id: str, key: str, values: tuple[str, ...]) -> str:
    """The site TOML with ``key = [values]`` in sensor ``sensor_id``'s table, other text untouched."""
    lines = site_toml.splitlines(keepends=True)
    new_line = f"{key} = [" + ", ".join(f'"{v}"' for v in values) + "]\n"
    for a, b, sid in _sensor_blocks(lines):
        if sid != sensor_id:
            continue
        block = lines[a + 1 : b]
        at = next(
            (j for j, ln in enumerate(block) if re.match(rf"^\s*{re.escape(key)}\s*=", ln)), None
        )
        if at is None:
            id_at = next(j for j, ln in enumerate(block) if re.match(r"^\s*id\s*=", ln))
            block.insert(id_at + 1, new_line)
        else:
            last = at
            while "]" not in block[last] and last + 1 < len(block):
                last += 1  # a list spread over several lines
            block[at : last + 1] = [new_line]
        text = "".join([*lines[: a + 1], *block, *lines[b:]])
        got = parse_config(text, source="<site for import>").sensor(sensor_id)
        if got is None or getattr(got, key) != tuple(values):
            raise ValueError(f"site TOML: could not set {key} of {sensor_id}")
        return text
    raise ValueError(f"site TOML: sensor {sensor_id!r} has no [[sensors]] table")


def set_sensor_scalar(site_toml: str, sensor_id: str, key: str, value: float | int | str) -> str:
    """The site TOML with ``key = value`` in sensor ``sensor_id``'s table, other text untouched.

    A float is written with up to 6 significant digits (``57.7``, ``3300.0``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{key}: a number or a string, not {type(value).__name__}")
    if isinstance(value, str):
        text_value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, float):
        text_value = f"{value:.6g}"
        if not any(ch in text_value for ch in ".en"):
            text_value += ".0"
    else:
        text_value = str(value)
    lines = site_toml.splitlines(keepends=True)
    new_line = f"{key} = {text_value}\n"
    for a, b, sid in _sensor_blocks(lines):
        if sid != sensor_id:
            continue
        block = lines[a + 1 : b]
        at = next(
            (j for j, ln in enumerate(block) if re.match(rf"^\s*{re.escape(key)}\s*=", ln)), None
        )
        if at is None:
            id_at = next(j for j, ln in enumerate(block) if re.match(r"^\s*id\s*=", ln))
            block.insert(id_at + 1, new_line)
        else:
            block[at] = new_line
        text = "".join([*lines[: a + 1], *block, *lines[b:]])
        got = parse_config(text, source="<site for import>").sensor(sensor_id)
        want = float(text_value) if not isinstance(value, str) else value
        if got is None or getattr(got, key) != want:
            raise ValueError(f"site TOML: could not set {key} of {sensor_id}")
        return text
    raise ValueError(f"site TOML: sensor {sensor_id!r} has no [[sensors]] table")
