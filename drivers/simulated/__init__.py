"""Simulated sensors: physics models in place of hardware, emitting the same wire bytes.

``rampart simulate`` composes them into scenarios (``scenarios.py``) and writes
recordings with truth. Each sensor model is a function of a ``SimContext`` and
the scenario's events, returning a ``SimOutput``; models never share random
streams, so adding one does not change another's output for the same seed.
"""
