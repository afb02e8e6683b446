"""Start-up configuration of a u-blox receiver for jamming/spoofing detection.

What the GNSS detector reads, per epoch (1 Hz, the receiver's navigation
rate): UBX NAV-PVT (fix, position, accuracy), NAV-SAT (C/N0 and elevation per
satellite), NAV-STATUS (spoofing detection state), NAV-CLOCK (clock bias and
drift), MON-RF (F9/M10: AGC, CW jamming indicator, antenna status per RF
block) or MON-HW (M8 and older: the same for one RF path), and SEC-SIG
(receivers with protocol 27.11 or later: jamming and spoofing states), with
the receiver's interference monitor (ITFM) enabled so that the jamming
indicator and state are computed at all.

Receivers differ in how they are configured, and the link does not know the
model in advance, so ``configuration_frames`` builds every form, each in its
own frame so that one rejected key cannot void the others:

- CFG-VALSET (generation 9 and later, protocol 23.01+), RAM and battery-backed
  layers, one frame per interface (UART1, USB: an M10 has no USB, and a
  VALSET naming an unknown key is refused whole), SEC-SIG in its own frame
  (firmware without it refuses only that), ITFM in its own frame;
- CFG-MSG (u-blox 6/7/8), output rate 1 on every port for each message;
  generation 9 still accepts it (deprecated), older units ignore VALSET;
- CFG-ITFM (u-blox 7/8) with the factory thresholds and ``enable`` set.

A receiver that speaks only NMEA ignores UBX input, so sending these frames to
it is harmless; the detector then works from NMEA GSV/GGA/RMC/GST. The
receiver's answers (UBX ACK-ACK / ACK-NAK, class 0x06) arrive in its output
stream; ``ConfigAcks`` counts them from the bytes the link reads, so the
configuration outcome can be reported without a second reader on the port.

u-blox references: M8 receiver description UBX-13003221 §32.10.18 (CFG-MSG),
§32.10.13 (CFG-ITFM); F9 HPG 1.32 interface description UBX-22008968 §3.10.25
(CFG-VALSET) and §6.9 (CFG-MSGOUT, CFG-ITFM keys).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyubx2 import SET, UBXMessage

from drivers.gnss_stream import FrameScanner

# (UBX class, id, CFG-MSGOUT key stem) of every message the detector reads.
MESSAGES: tuple[tuple[int, int, str], ...] = (
    (0x01, 0x07, "UBX_NAV_PVT"),
    (0x01, 0x35, "UBX_NAV_SAT"),
    (0x01, 0x03, "UBX_NAV_STATUS"),
    (0x01, 0x22, "UBX_NAV_CLOCK"),
    (0x0A, 0x38, "UBX_MON_RF"),
    (0x0A, 0x09, "UBX_MON_HW"),
)
SEC_SIG = (0x27, 0x09, "UBX_SEC_SIG")
INTERFACES = ("UART1", "USB")
LAYERS_RAM_BBR = 0b011
# CFG-ITFM (u-blox 7/8): factory thresholds (bbThreshold 3, cwThreshold 15, antSetting 0 =
# unknown) with enable set; the reserved algorithm/general bits must be 0x16B156 and 0x31E
# (M8 receiver description §32.10.13), as a real M9N reads back (shared data, mon_span.ubx).
ITFM_SETTINGS = {
    "bbThreshold": 3,
    "cwThreshold": 15,
    "algorithmBits": 0x16B156,
    "enable": 1,
    "generalBits": 0x31E,
    "antSetting": 0,
    "enable2": 0,
}


def configuration_frames(
    interfaces: tuple[str, ...] = INTERFACES, sec_sig: bool = True, legacy: bool = True
) -> list[bytes]:
    """Every configuration frame to send, in order (see module docstring)."""
    frames: list[bytes] = []
    for port in interfaces:
        data = [(f"CFG_MSGOUT_{stem}_{port}", 1) for _, _, stem in MESSAGES]
        frames.append(UBXMessage.config_set(LAYERS_RAM_BBR, 0, data).serialize())
        if sec_sig:
            key = f"CFG_MSGOUT_{SEC_SIG[2]}_{port}"
            frames.append(UBXMessage.config_set(LAYERS_RAM_BBR, 0, [(key, 1)]).serialize())
    frames.append(UBXMessage.config_set(LAYERS_RAM_BBR, 0, [("CFG_ITFM_ENABLE", 1)]).serialize())
    if legacy:
        for cls, mid, _ in MESSAGES:
            frames.append(
                UBXMessage(
                    "CFG",
                    "CFG-MSG",
                    SET,
                    msgClass=cls,
                    msgID=mid,
                    rateDDC=0,
                    rateUART1=1,
                    rateUART2=0,
                    rateUSB=1,
                    rateSPI=0,
                ).serialize()
            )
        frames.append(UBXMessage("CFG", "CFG-ITFM", SET, **ITFM_SETTINGS).serialize())
    return frames


def configure(port, frames: list[bytes] | None = None) -> int:
    """Writes the configuration frames to an open port (anything with ``write``); bytes written.

    Suitable as ``SerialLink(on_open=configure)``: it runs again on every
    reopen, because a receiver that was unplugged forgets its RAM settings.
    """
    total = 0
    for frame in configuration_frames() if frames is None else frames:
        total += int(port.write(frame) or 0)
    flush = getattr(port, "flush", None)
    if flush is not None:
        flush()
    return total


@dataclass
class ConfigAcks:
    """Counts the receiver's ACK-ACK / ACK-NAK answers to CFG messages in its output stream."""

    acked: Counter = field(default_factory=Counter)  # "CFG-VALSET" -> count
    nacked: Counter = field(default_factory=Counter)
    _scanner: FrameScanner = field(default_factory=lambda: FrameScanner(max_buffer=16384))

    def feed(self, data: bytes) -> None:
        for ev in self._scanner.push(data):
            raw = ev.raw
            if ev.kind != "UBX" or len(raw) < 10 or raw[2] != 0x05 or raw[3] not in (0, 1):
                continue
            cls_id, msg_id = raw[6], raw[7]
            name = _CFG_NAMES.get((cls_id, msg_id), f"0x{cls_id:02x}{msg_id:02x}")
            (self.acked if raw[3] == 1 else self.nacked)[name] += 1

    @property
    def answered(self) -> bool:
        """Whether the receiver answered at all (a u-blox receiver speaking UBX)."""
        return bool(self.acked or self.nacked)

    def summary(self) -> str:
        if not self.answered:
            return "no UBX answer: NMEA-only receiver (detection uses NMEA GSV/GGA/RMC/GST)"
        ok = ", ".join(f"{k} {v}" for k, v in sorted(self.acked.items())) or "none"
        nak = ", ".join(f"{k} {v}" for k, v in sorted(self.nacked.items())) or "none"
        return f"acknowledged: {ok}; refused: {nak}"


_CFG_NAMES = {(0x06, 0x8A): "CFG-VALSET", (0x06, 0x01): "CFG-MSG", (0x06, 0x39): "CFG-ITFM"}
