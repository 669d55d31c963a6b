"""The command registry: everything AIQT knows about a command, in one entry.

The gateway's routes, the worker's handler table, the AMQP contract, the OpenAPI document and the
CLI all derive from `COMMANDS`. Adding a command is one entry here, one handler in the worker and one
test; nothing else has to be kept in step by hand.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass

from pydantic import BaseModel

from schemas import commands as c
from schemas import replies as r
from schemas.enums import CommandType, Scope

_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class CommandSpec:
    """One command: its payload and reply, its REST route, and how the bus treats it."""

    type: CommandType
    payload: builtins.type[c.Payload]
    reply: builtins.type[BaseModel]
    method: str
    path: str
    summary: str
    tag: str
    #: Changes state at the exchange: gets a command lock, client-id reconciliation, and an
    #: Idempotency-Key (given, or derived from the request's signature).
    mutating: bool = False
    #: May be finished after its deadline when a crashed attempt already started it (an entry that
    #: filled must still get its stop loss); any other expired command is dropped, never run late.
    completable: bool = False
    #: The `msg` of a successful reply, where the API document gives one.
    success_msg: str = "Success"
    #: The scope an API key needs for this command (the gateway answers 403 without it). Set on
    #: every entry; a command that changes state at the exchange never needs only `read`.
    scope: Scope = Scope.READ
    #: A path field holding an Idempotency-Key whose command id (per API key) the gateway adds to the
    #: payload as `commandId`; the client never sends `commandId` itself (command.status).
    command_id_of: str | None = None

    def __post_init__(self) -> None:
        if self.mutating and self.scope == Scope.READ:
            raise ValueError(f"{self.type}: a mutating command needs a scope above read")

    @property
    def route(self) -> str:
        """`METHOD /path`, as the API document writes it."""
        return f"{self.method} {self.path}"

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def has_body(self) -> bool:
        """Fields other than the path's travel in a JSON body (POST, PATCH) or in the query (GET, DELETE)."""
        return self.method in ("POST", "PATCH")

    @property
    def query_fields(self) -> tuple[str, ...]:
        if self.has_body:
            return ()
        skip = (*self.path_fields, *self.gateway_fields)
        return tuple(name for name in self.payload.model_fields if name not in skip)

    @property
    def gateway_fields(self) -> tuple[str, ...]:
        """Payload fields the gateway fills in itself and refuses from the client."""
        return ("commandId",) if self.command_id_of else ()


COMMANDS: dict[CommandType, CommandSpec] = {
    spec.type: spec
    for spec in (
        CommandSpec(
            CommandType.ACCOUNT_SUMMARY,
            c.AccountSummary,
            r.AccountSummaryData,
            "GET",
            "/api/account/summary",
            "账户综合信息查询",
            "account",
            scope=Scope.READ,
        ),
        CommandSpec(
            CommandType.MARKET_KLINES,
            c.Klines,
            r.KlinesData,
            "GET",
            "/api/market/klines",
            "K线历史数据",
            "market",
            scope=Scope.READ,
        ),
        CommandSpec(
            CommandType.MARKET_FUNDING_RATE,
            c.FundingRate,
            r.FundingRateData,
            "GET",
            "/api/market/funding-rate",
            "资金费率查询",
            "market",
            scope=Scope.READ,
        ),
        CommandSpec(
            CommandType.ORDER_CANCEL,
            c.CancelOrder,
            r.CancelData,
            "DELETE",
            "/api/order/{orderId}",
            "取消订单",
            "order",
            mutating=True,
            scope=Scope.TRADE,
        ),
        CommandSpec(
            CommandType.ORDER_MODIFY,
            c.ModifyOrder,
            r.Order,
            "PATCH",
            "/api/order/{orderId}",
            "修改订单",
            "order",
            mutating=True,
            scope=Scope.TRADE,
        ),
        CommandSpec(
            CommandType.ORDER_OPEN_MARKET,
            c.OpenMarket,
            r.OpenMarketData,
            "POST",
            "/api/order/open/market",
            "市价开仓",
            "order/open",
            mutating=True,
            completable=True,
            success_msg="订单提交成功",
            scope=Scope.TRADE,
        ),
        CommandSpec(
            CommandType.ORDER_CLOSE_MARKET,
            c.CloseMarket,
            r.CloseMarketData,
            "POST",
            "/api/order/close/market",
            "市价平仓",
            "order/close",
            mutating=True,
            completable=True,
            success_msg="Position closed",
            scope=Scope.TRADE,
        ),
        CommandSpec(
            CommandType.POSITION_LEVERAGE,
            c.SetLeverage,
            r.LeverageData,
            "POST",
            "/api/position/leverage",
            "调整杠杆倍数",
            "position",
            mutating=True,
            scope=Scope.TRADE,
        ),
        CommandSpec(
            CommandType.POSITION_MARGIN_MODE,
            c.SetMarginMode,
            r.MarginModeData,
            "POST",
            "/api/position/margin-mode",
            "设置保证金模式",
            "position",
            mutating=True,
            scope=Scope.TRADE,
        ),
        CommandSpec(
            CommandType.ACCOUNT_HALT,
            c.Halt,
            r.HaltData,
            "POST",
            "/api/account/halt",
            "Kill switch: cancel every open order, optionally close every position, refuse opening orders",
            "account",
            mutating=True,
            success_msg="Account halted",
            scope=Scope.ADMIN,
        ),
        CommandSpec(
            CommandType.ACCOUNT_RESUME,
            c.Resume,
            r.ResumeData,
            "POST",
            "/api/account/resume",
            "Lift the halt: opening orders are accepted again",
            "account",
            mutating=True,
            success_msg="Account resumed",
            scope=Scope.ADMIN,
        ),
        CommandSpec(
            CommandType.COMMAND_STATUS,
            c.CommandStatus,
            r.CommandStatusData,
            "GET",
            "/api/commands/{idempotencyKey}",
            "What became of a command (after a 504): its orders, looked up at the exchange",
            "system",
            scope=Scope.READ,
            command_id_of="idempotencyKey",
        ),
        CommandSpec(
            CommandType.SYSTEM_PING,
            c.Ping,
            r.PingData,
            "GET",
            "/api/system/ping",
            "Bus round trip (no exchange call)",
            "system",
            scope=Scope.READ,
        ),
    )
}

#: Commands that change state at the exchange.
MUTATING_COMMANDS = frozenset(spec.type for spec in COMMANDS.values() if spec.mutating)
#: Commands a redelivery may finish after their deadline (see `CommandSpec.completable`).
COMPLETABLE_COMMANDS = frozenset(spec.type for spec in COMMANDS.values() if spec.completable)
