"""Decoders for power front-ends (contract §2.5): COBS-framed serial and MQTT.

Both turn frames into ``PowerFrame`` records for one configured sensor and
apply the same policy to the frame stream:

- a frame from another ``board`` than the sensor's is rejected (``wrong_board``):
  a mis-wired port must not feed one feed's waveform into another's detector;
- a frame whose channel count differs from the sensor's ``channels`` is
  rejected (``channel_mismatch``): detectors index channels by name;
- the ``seq`` counter is tracked: a forward gap is reported on the record as
  ``lost_frames``; the same seq again is a ``duplicate``; a small step back is
  ``out_of_order`` (rejected, the stream position is kept); a big step back,
  or a jump to a small seq, is a front-end reboot (``restarted=True``,
  accepted, tracking starts again from it).

The serial decoder is a stream reader like pyubx2's: it is fed arbitrary
chunks, splits on the 0x00 delimiter, un-stuffs with the ``cobs`` package and
resynchronises at the next delimiter after anything bad.
"""

from __future__ import annotations

from cobs import cobs

from drivers.power_frame import FrameFields, decode_frame
from fusion.config import Sensor
from fusion.records import PowerFrame, Record, Rejected

# A step back larger than this, or to a seq below REBOOT_SEQ, is a reboot.
REBOOT_STEP_BACK = 1000
REBOOT_SEQ = 16
_U32 = 1 << 32


class _FramePolicy:
    """Board, channel and sequence checks shared by both transports."""

    def __init__(self, sensor: Sensor, source: str):
        self.sensor = sensor.id
        self.source = source
        self.board = sensor.board
        self.channels = tuple(sensor.channels)
        self.last_seq: int | None = None
        self.lost_frames = 0  # total, for supervision
        self.restarts = 0

    def _reject(self, reason: str, detail: str, t_rx_ns: int) -> Rejected:
        return Rejected(self.sensor, t_rx_ns, t_rx_ns, reason, f"{self.source}: {detail}")

    def _accept(self, data: bytes, where: str, t_rx_ns: int) -> Record:
        fields, reason, detail = decode_frame(data)
        if fields is None:
            return self._reject(reason or "invalid", f"{where}: {detail}", t_rx_ns)
        return self._check(fields, where, t_rx_ns)

    def _check(self, f: FrameFields, where: str, t_rx_ns: int) -> Record:
        if self.board is not None and f.board != self.board:
            return self._reject(
                "wrong_board", f"{where}: board {f.board}, configured {self.board}", t_rx_ns
            )
        if f.counts.shape[1] != len(self.channels):
            return self._reject(
                "channel_mismatch",
                f"{where}: {f.counts.shape[1]} channels, configured {len(self.channels)} {list(self.channels)}",
                t_rx_ns,
            )
        lost, restarted = 0, False
        last = self.last_seq
        if last is not None:
            step = (f.seq - last) % _U32  # u32 counter: wraps
            if step == 0:
                return self._reject("duplicate", f"{where}: seq {f.seq} again", t_rx_ns)
            if step < _U32 // 2:
                lost = step - 1
            else:
                back = _U32 - step
                if back > REBOOT_STEP_BACK or f.seq < REBOOT_SEQ:
                    restarted = True
                    self.restarts += 1
                else:
                    return self._reject(
                        "out_of_order", f"{where}: seq {f.seq} after {last}", t_rx_ns
                    )
        self.last_seq = f.seq
        self.lost_frames += lost
        return PowerFrame(
            sensor=self.sensor,
            t_ns=f.t0_ns,
            t_rx_ns=t_rx_ns,
            board=f.board,
            seq=f.seq,
            fs_hz=f.fs_hz,
            clipped=f.clipped,
            burst=f.burst,
            channels=self.channels,
            counts=f.counts,
            scale=f.scale,
            lost_frames=lost,
            restarted=restarted,
        )


class PowerSerialDecoder(_FramePolicy):
    """COBS-framed power frames from a serial port (or a recording of one).

    Recordings may begin mid-frame: until the first 0x00 the decoder cannot
    know whether it is at a frame start, so bytes before it that do not make a
    valid frame give a single ``partial`` rejection. An unterminated run longer
    than ``max_frame`` is dropped with one ``overflow`` rejection and the
    decoder resyncs at the next 0x00.
    """

    def __init__(self, sensor: Sensor, source: str, max_frame: int = 1 << 20):
        super().__init__(sensor, source)
        self.max_frame = max_frame
        self._buf = bytearray()
        self._buf_offset = 0  # stream offset of _buf[0]
        self._synced = False  # seen a delimiter: the next byte starts a frame
        self._discarding = False  # inside an overflowed run, until the next 0x00

    def feed(self, payload: bytes, t_rx_ns: int) -> list[Record]:
        try:
            return self._feed(payload, t_rx_ns)
        except Exception as exc:  # the contract: a decoder never raises on input
            self._buf.clear()
            self._synced = False
            return [self._reject("decoder_error", f"{type(exc).__name__}: {exc}", t_rx_ns)]

    def flush(self, t_rx_ns: int) -> list[Record]:
        """End of stream: bytes after the last delimiter are a frame cut off."""
        if not self._buf or self._discarding:
            return []
        n = len(self._buf)
        self._buf_offset += n
        self._buf.clear()
        return [
            self._reject(
                "truncated",
                f"byte {self._buf_offset - n}: {n} bytes of an unfinished frame at end of stream",
                t_rx_ns,
            )
        ]

    def _feed(self, payload: bytes, t_rx_ns: int) -> list[Record]:
        out: list[Record] = []
        buf = self._buf
        buf += payload
        start = 0
        while True:
            end = buf.find(0, start)
            if end < 0:
                break
            offset = self._buf_offset + start
            if self._discarding:
                self._discarding = False
            elif end > start:
                rec = self._segment(buf[start:end], offset, t_rx_ns)
                if rec is not None:
                    out.append(rec)
            self._synced = True
            start = end + 1
        if start:
            del buf[:start]
            self._buf_offset += start
        if len(buf) > self.max_frame:
            if not self._discarding:
                out.append(
                    self._reject(
                        "overflow",
                        f"byte {self._buf_offset}: {len(buf)} bytes without a 0x00 delimiter (max {self.max_frame})",
                        t_rx_ns,
                    )
                )
            self._discarding = True
            self._buf_offset += len(buf)
            buf.clear()
        return out

    def _segment(self, encoded: bytearray, offset: int, t_rx_ns: int) -> Record | None:
        where = f"frame at byte {offset}"
        try:
            data = cobs.decode(encoded)
        except cobs.DecodeError as exc:
            if not self._synced:
                return self._reject(
                    "partial",
                    f"{where}: {len(encoded)} bytes before the first delimiter ({exc})",
                    t_rx_ns,
                )
            return self._reject("bad_cobs", f"{where}: {exc}", t_rx_ns)
        if not self._synced:
            fields, _reason, detail = decode_frame(data)
            if fields is None:
                return self._reject(
                    "partial",
                    f"{where}: {len(encoded)} bytes before the first delimiter ({detail})",
                    t_rx_ns,
                )
            return self._check(fields, where, t_rx_ns)
        return self._accept(data, where, t_rx_ns)


class PowerMqttDecoder(_FramePolicy):
    """One power frame per MQTT payload (stream ``waveform``), not COBS-encoded."""

    def feed(self, payload: bytes, t_rx_ns: int) -> list[Record]:
        try:
            return [self._accept(bytes(payload), "payload", t_rx_ns)]
        except Exception as exc:  # the contract: a decoder never raises on input
            return [self._reject("decoder_error", f"{type(exc).__name__}: {exc}", t_rx_ns)]

    def flush(self, t_rx_ns: int) -> list[Record]:
        return []  # one payload is one frame: nothing is ever left unfinished
