"""Bus errors.

BusError
├── BusUnavailable   the broker cannot be reached or refused the command (HTTP 503)
├── BusTimeout       no reply before the deadline: the outcome is unknown (HTTP 504)
└── CommandLocked    another worker is executing the same command id right now
"""

from __future__ import annotations


class BusError(Exception):
    """Base of every bus error."""


class BusUnavailable(BusError):
    """The broker is away, or it did not confirm the command: nothing was accepted."""


class BusTimeout(BusError):
    """The command was accepted but no reply came before the deadline."""


class CommandLocked(BusError):
    """Another consumer holds this command id's lock."""
