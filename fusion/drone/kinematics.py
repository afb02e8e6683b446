"""Sustained turning of confirmed tracks: the circling of thermal soaring.

Soaring birds (storks, raptors, gulls, vultures) and gliders climb in thermals by
circling at a nearly constant bank for minutes: turn rate omega = v / r with
r of 20-60 m for birds (omega of 8-40 °/s at 8-15 m/s) and 80-200 m for
sailplanes (Pennycuick, *Modelling the Flying Bird*, 2008, ch. 8; Åkesson and
Hedenström, "How migrants get there", BioScience 57(2), 2007). Multirotors fly
legs and turn at waypoints; a full circle is rare. A one-sided feature
therefore tells soaring from a drone: the net heading change of the track's
filtered velocity, accumulated with a forgetting time ``TURN_TAU_S``. For a
steady turn at omega it settles at omega·tau, so ``|turn| >= 2π`` means at
least a full circle in the recent past at the rate of a thermal; the feature
records the seconds spent so (``circled_s``), kept for the track's life (a bird
gliding between thermals is still the bird that circled).

State is held per tracker slot in arrays (``TurnState``); ``_update`` is the
Numba kernel, ``update_turns`` the public function. Heading is only read when
the horizontal speed is well known (``speed > MIN_SPEED_MPS`` and above
three times its own spread), so a hovering drone's wandering velocity
contributes no turn.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TURN_TAU_S = 30.0  # forgetting time of the accumulated heading change
MIN_SPEED_MPS = 4.0  # heading is read only above this speed ...
SPEED_SNR = 3.0  # ... and above this many times its own spread
FULL_CIRCLE = 2.0 * math.pi
MAX_STEP_S = 5.0  # a longer gap between updates restarts the heading memory

# Columns of TurnState.values
T_TID = 0  # track id the row belongs to (0: free)
T_T = 1  # time of the last update (s)
T_HEADING = 2  # last heading read (rad; NaN: none)
T_TURN = 3  # accumulated signed heading change (rad)
T_CIRCLED_S = 4  # seconds with |turn| >= a full circle
T_RATE = 5  # EWMA of the turn rate (rad/s), for the circle radius
N_T = 6


@njit(cache=True, error_model="numpy")
def _update(values, slots, tids, t, vx, vy, v_sigma):
    """One scan's update of the turn state of the rows ``slots`` (see module docstring)."""
    for k in range(slots.shape[0]):
        i = slots[k]
        if values[i, T_TID] != tids[k]:
            values[i, T_TID] = tids[k]
            values[i, T_T] = t
            values[i, T_HEADING] = np.nan
            values[i, T_TURN] = 0.0
            values[i, T_CIRCLED_S] = 0.0
            values[i, T_RATE] = 0.0
        dt = t - values[i, T_T]
        values[i, T_T] = t
        if dt <= 0.0:
            continue
        if dt > MAX_STEP_S:
            values[i, T_HEADING] = np.nan
        decay = math.exp(-dt / TURN_TAU_S)
        values[i, T_TURN] *= decay
        speed = math.sqrt(vx[k] * vx[k] + vy[k] * vy[k])
        if speed < MIN_SPEED_MPS or speed < SPEED_SNR * v_sigma[k]:
            values[i, T_HEADING] = np.nan
            continue
        h = math.atan2(vx[k], vy[k])
        prev = values[i, T_HEADING]
        values[i, T_HEADING] = h
        if np.isnan(prev):
            continue
        d = h - prev
        d = (d + math.pi) % (2.0 * math.pi) - math.pi
        values[i, T_TURN] += d
        a = 1.0 - decay
        values[i, T_RATE] += a * (d / dt - values[i, T_RATE])
        if abs(values[i, T_TURN]) >= FULL_CIRCLE:
            values[i, T_CIRCLED_S] += dt


class TurnState:
    """Per tracker slot: the turn memory of the track that holds the slot."""

    def __init__(self, capacity: int):
        self.values = np.zeros((capacity, N_T))
        self.values[:, T_HEADING] = np.nan

    def update(
        self,
        slots: np.ndarray,
        tids: np.ndarray,
        t_s: float,
        vx: np.ndarray,
        vy: np.ndarray,
        speed_sigma: np.ndarray,
    ) -> None:
        update_turns(self.values, slots, tids, t_s, vx, vy, speed_sigma)

    def circled_s(self, slots: np.ndarray) -> np.ndarray:
        return self.values[slots, T_CIRCLED_S].copy()

    def circle_radius_m(self, slots: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """v / |omega| of the recent turning (inf when not turning)."""
        rate = np.abs(self.values[slots, T_RATE])
        with np.errstate(divide="ignore"):
            return np.where(rate > 1e-3, speed / np.maximum(rate, 1e-3), np.inf)


def update_turns(
    values: np.ndarray,
    slots: np.ndarray,
    tids: np.ndarray,
    t_s: float,
    vx: np.ndarray,
    vy: np.ndarray,
    speed_sigma: np.ndarray,
) -> None:
    """Validates and runs ``_update`` (in place on ``values``, shape (capacity, N_T))."""
    if values.ndim != 2 or values.shape[1] != N_T:
        raise ValueError(f"turn state must be (capacity, {N_T}), got {values.shape}")
    n = slots.shape[0]
    if not (tids.shape[0] == vx.shape[0] == vy.shape[0] == speed_sigma.shape[0] == n):
        raise ValueError("slots, tids, vx, vy and speed_sigma must have the same length")
    if n == 0:
        return
    if slots.min() < 0 or slots.max() >= values.shape[0]:
        raise ValueError("slot out of range")
    _update(
        values,
        np.ascontiguousarray(slots, dtype=np.int64),
        np.ascontiguousarray(tids, dtype=np.float64),
        float(t_s),
        np.ascontiguousarray(vx, dtype=np.float64),
        np.ascontiguousarray(vy, dtype=np.float64),
        np.ascontiguousarray(speed_sigma, dtype=np.float64),
    )
