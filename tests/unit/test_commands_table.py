"""The worker's handler table and the one-place-per-idea rules it relies on."""

from __future__ import annotations

from pathlib import Path

from schemas.enums import CommandType
from schemas.registry import COMMANDS
from worker.commands import HANDLERS

WORKER = Path(__file__).resolve().parents[2] / "worker"


def test_every_command_but_ping_has_a_handler() -> None:
    # system.ping needs no account: worker.service answers it before looking one up.
    assert set(HANDLERS) == set(CommandType) - {CommandType.SYSTEM_PING}
    assert set(COMMANDS) == set(CommandType)  # the registry knows every command


def test_only_the_binance_package_spells_fapi_paths() -> None:
    spelled = [
        str(path.relative_to(WORKER))
        for path in WORKER.rglob("*.py")
        if '"/fapi/' in path.read_text() and path.parent.name != "binance"
    ]
    assert spelled == []
