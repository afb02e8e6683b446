"""The one interface every sensor decoder implements.

A decoder belongs to one sensor stream (one MQTT topic, or one serial port).
``feed`` takes the bytes of one received message (an MQTT payload, or one
chunk read from a serial port: chunk boundaries are arbitrary) and returns the
records they complete. Bad input never raises: it comes back as ``Rejected``
records naming the sensor, the reason (a short stable token such as
``bad_json``, ``bad_checksum``, ``bad_crc``, ``truncated``, ``garbage``,
``invalid``) and a detail (topic or byte offset, and what was wrong).
Stream decoders keep partial frames between calls and resynchronise on garbage.
"""

from __future__ import annotations

from typing import Protocol

from fusion.records import Record


class Decoder(Protocol):
    sensor: str

    def feed(self, payload: bytes, t_rx_ns: int) -> list[Record]:
        """Decode one received message; never raises on bad input."""
        ...

    def flush(self, t_rx_ns: int) -> list[Record]:
        """End of stream: report what is left unfinished (a cut-off frame, trailing garbage)."""
        ...
