"""u-blox start-up configuration: the frames, their effect on a port, and the receiver's answers."""

from __future__ import annotations

import time

from pyubx2 import GET, SET, UBXMessage, UBXReader

from drivers.gnss_stream import GnssStreamDecoder, nmea_checksum
from drivers.serial_link import SerialLink
from drivers.ublox_config import INTERFACES, MESSAGES, ConfigAcks, configuration_frames, configure
from fusion.gnss.features import PARSED_IDENTITIES


def parsed(frames: list[bytes]) -> list:
    return [UBXReader.parse(f, msgmode=SET, validate=1) for f in frames]


def test_every_form_of_configuration_is_built_and_checksummed():
    msgs = parsed(configuration_frames())
    valsets = [m for m in msgs if m.identity == "CFG-VALSET"]
    keys = [set(k for k in vars(m) if k.startswith("CFG_")) for m in valsets]
    for port in INTERFACES:
        # One VALSET per interface with every message the detector reads...
        assert {f"CFG_MSGOUT_{stem}_{port}" for _, _, stem in MESSAGES} in keys
        # ...and SEC-SIG alone, so firmware without it refuses only that frame.
        assert {f"CFG_MSGOUT_UBX_SEC_SIG_{port}"} in keys
    assert {"CFG_ITFM_ENABLE"} in keys
    assert all(m.ram == 1 and m.bbr == 1 and m.flash == 0 for m in valsets)
    legacy = [m for m in msgs if m.identity == "CFG-MSG"]
    assert sorted((m.msgClass, m.msgID) for m in legacy) == sorted((c, i) for c, i, _ in MESSAGES)
    assert all(m.rateUART1 == 1 and m.rateUSB == 1 for m in legacy)
    (itfm,) = [m for m in msgs if m.identity == "CFG-ITFM"]
    assert itfm.enable == 1 and itfm.algorithmBits == 0x16B156 and itfm.generalBits == 0x31E


def test_the_detector_reads_what_is_configured():
    raw_read = {"NAV-SAT", "MON-RF"}
    for _, _, stem in MESSAGES:
        name = stem.removeprefix("UBX_").replace("_", "-")
        assert name in PARSED_IDENTITIES or name in raw_read, name


class Port:
    def __init__(self):
        self.data = bytearray()
        self.flushed = 0

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        self.flushed += 1


def test_configure_writes_every_frame():
    port = Port()
    n = configure(port)
    assert n == len(port.data) == sum(len(f) for f in configuration_frames()) and port.flushed == 1


def ack(ok: bool, cls: int, mid: int) -> bytes:
    return UBXMessage("ACK", "ACK-ACK" if ok else "ACK-NAK", GET, clsID=cls, msgID=mid).serialize()


def test_answers_are_counted_from_the_output_stream():
    acks = ConfigAcks()
    assert not acks.answered and "NMEA-only" in acks.summary()
    stream = (
        b"$GPTXT,01,01,02,u-blox*00\r\n"
        + ack(True, 0x06, 0x8A)
        + ack(False, 0x06, 0x8A)
        + ack(True, 0x06, 0x01) * 2
        + ack(True, 0x05, 0x01)  # not a CFG answer... still an ACK of class 5: counted by name
    )
    for k in range(0, len(stream), 7):  # chunk boundaries are arbitrary
        acks.feed(stream[k : k + 7])
    assert acks.acked["CFG-VALSET"] == 1 and acks.nacked["CFG-VALSET"] == 1
    assert acks.acked["CFG-MSG"] == 2
    assert acks.answered and "refused: CFG-VALSET 1" in acks.summary()


_BODY = b"GPGGA,120000.00,5200.0000,N,00400.0000,E,1,08,1.0,10.0,M,46.0,M,,"
GGA = b"$" + _BODY + b"*%02X\r\n" % nmea_checksum(_BODY)


def test_an_nmea_only_receiver_ignores_the_frames_and_the_stream_still_decodes():
    # loop:// hands the written frames straight back: the worst case of a receiver that
    # echoes its input. The link reconfigures on open, decoding goes on without rejects.
    got = bytearray()
    link = SerialLink("loop://", 9600, lambda t, d: got.extend(d), on_open=configure)
    link.start()
    try:
        end = time.monotonic() + 5
        while len(got) < sum(len(f) for f in configuration_frames()) and time.monotonic() < end:
            time.sleep(0.01)
        link.write(GGA)
        end = time.monotonic() + 5
        while b"GPGGA" not in got and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        link.stop()
    dec = GnssStreamDecoder("gnss-1", parse=PARSED_IDENTITIES)
    records = dec.feed(bytes(got), 0) + dec.flush(0)
    assert [r.identity for r in records][-1] == "GGA"
    assert not [r for r in records if not hasattr(r, "identity")], records
