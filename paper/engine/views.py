"""Binance JSON views of an account: account (v2/v3), balance, positionRisk (v2/v3), and the
admin's full state dump.

Numbers are formatted the way Binance formats them for each endpoint (the v2 and v3 views
differ in fields and in how empty positions are shown).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import params
from ..models import ZERO, Account, Position, fmt
from ..symbols import ASSETS, SYMBOLS, TAKER_FEE
from .account_settings import AccountSettings
from .fills import ONE


class Views(AccountSettings):
    """Read-only Binance views on top of every layer below."""

    def _visible_positions(self, acc: Account, only_active: bool, sym: str | None) -> Iterable[Position]:
        sides = ("LONG", "SHORT") if acc.dual else ("BOTH",)
        active = {o.symbol for o in acc.open_orders.values()} | {a.symbol for a in acc.open_algos.values()}
        for s in SYMBOLS:
            if sym is not None and s != sym:
                continue
            for side in sides:
                pos = acc.positions.get((s, side))
                if pos is None:
                    if only_active and s not in active:
                        continue
                    pos = Position(s, side)
                elif only_active and pos.amt == 0 and s not in active:
                    continue
                yield pos

    def position_risk(self, acc: Account, p: params.Params, v3: bool) -> list[dict[str, object]]:
        spec = params.symbol(p, required=False)
        out = []
        for pos in self._visible_positions(acc, v3, spec.symbol if spec else None):
            s = SYMBOLS[pos.symbol]
            n = self._pos_numbers(acc, pos)
            iso = self.isolated(acc, pos.symbol)
            iso_margin = pos.isolated_wallet + n["upnl"] if iso else ZERO
            lev = self.lev(acc, pos.symbol)
            be = pos.entry * (ONE + TAKER_FEE) if pos.amt > 0 else pos.entry * (ONE - TAKER_FEE)
            d: dict[str, object] = {
                "symbol": pos.symbol,
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, s.qty_precision),
                "entryPrice": fmt(pos.entry, 8).rstrip("0").rstrip(".") if pos.entry else "0.0",
                "breakEvenPrice": fmt(be, 8).rstrip("0").rstrip(".") if pos.entry else "0.0",
                "markPrice": fmt(n["mark"], 8),
                "unRealizedProfit": fmt(n["upnl"], 8),
                "liquidationPrice": fmt(n["liq"], 8) if n["liq"] else "0",
                "isolatedMargin": fmt(iso_margin, 8),
                "notional": fmt(n["notional"], 8),
                "isolatedWallet": fmt(pos.isolated_wallet, 8) if iso else "0",
                "updateTime": pos.update_time,
            }
            if v3:
                d.update(
                    {
                        "marginAsset": "USDT",
                        "initialMargin": fmt(n["im"], 8),
                        "maintMargin": fmt(n["mm"], 8),
                        "positionInitialMargin": fmt(n["im"], 8),
                        "openOrderInitialMargin": "0",
                        "adl": 0 if pos.amt == 0 else 2,
                        "bidNotional": "0",
                        "askNotional": "0",
                    }
                )
            else:
                d.update(
                    {
                        "leverage": str(lev),
                        "maxNotionalValue": str(s.max_notional(lev)),
                        "marginType": "isolated" if iso else "cross",
                        "isAutoAddMargin": "false",
                    }
                )
            out.append(d)
        return out

    def account(self, acc: Account, v3: bool) -> dict[str, object]:
        sm = self.summary(acc)
        t = acc.update_time
        assets = []
        for asset in ASSETS:
            usdt = asset == "USDT"
            z = "0.00000000"

            def f(key: str, usdt: bool = usdt, z: str = z) -> str:
                return fmt(sm[key], 8) if usdt else z

            assets.append(
                {
                    "asset": asset,
                    "walletBalance": f("wallet"),
                    "unrealizedProfit": f("upnl"),
                    "marginBalance": fmt(sm["wallet"] + sm["upnl"], 8) if usdt else z,
                    "maintMargin": f("maint"),
                    "initialMargin": fmt(sm["position_im"] + sm["open_order_im"], 8) if usdt else z,
                    "positionInitialMargin": f("position_im"),
                    "openOrderInitialMargin": f("open_order_im"),
                    "crossWalletBalance": f("cross_wallet"),
                    "crossUnPnl": f("cross_upnl"),
                    "availableBalance": f("available"),
                    "maxWithdrawAmount": f("max_withdraw"),
                    "updateTime": t if usdt else 0,
                    **({} if v3 else {"marginAvailable": True}),
                }
            )
        top = {
            "totalInitialMargin": fmt(sm["position_im"] + sm["open_order_im"], 8),
            "totalMaintMargin": fmt(sm["maint"], 8),
            "totalWalletBalance": fmt(sm["wallet"], 8),
            "totalUnrealizedProfit": fmt(sm["upnl"], 8),
            "totalMarginBalance": fmt(sm["wallet"] + sm["upnl"], 8),
            "totalPositionInitialMargin": fmt(sm["position_im"], 8),
            "totalOpenOrderInitialMargin": fmt(sm["open_order_im"], 8),
            "totalCrossWalletBalance": fmt(sm["cross_wallet"], 8),
            "totalCrossUnPnl": fmt(sm["cross_upnl"], 8),
            "availableBalance": fmt(sm["available"], 8),
            "maxWithdrawAmount": fmt(sm["max_withdraw"], 8),
        }
        positions = []
        for pos in self._visible_positions(acc, v3, None):
            n = self._pos_numbers(acc, pos)
            s = SYMBOLS[pos.symbol]
            iso = self.isolated(acc, pos.symbol)
            d: dict[str, object] = {
                "symbol": pos.symbol,
                "positionSide": pos.side,
                "positionAmt": fmt(pos.amt, s.qty_precision),
                "unrealizedProfit": fmt(n["upnl"], 8),
                "isolatedMargin": fmt(pos.isolated_wallet + n["upnl"], 8) if iso else "0",
                "notional": fmt(n["notional"], 8),
                "isolatedWallet": fmt(pos.isolated_wallet, 8) if iso else "0",
                "initialMargin": fmt(n["im"], 8),
                "maintMargin": fmt(n["mm"], 8),
                "updateTime": pos.update_time,
            }
            if not v3:
                lev = self.lev(acc, pos.symbol)
                d.update(
                    {
                        "positionInitialMargin": fmt(n["im"], 8),
                        "openOrderInitialMargin": "0",
                        "leverage": str(lev),
                        "isolated": iso,
                        "entryPrice": fmt(pos.entry, 8).rstrip("0").rstrip(".") if pos.entry else "0.0",
                        "breakEvenPrice": "0.0",
                        "maxNotional": str(s.max_notional(lev)),
                        "bidNotional": "0",
                        "askNotional": "0",
                    }
                )
            positions.append(d)
        if v3:
            return {**top, "assets": assets, "positions": positions}
        return {
            "feeTier": 0,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            **top,
            "assets": assets,
            "positions": positions,
        }

    def balances(self, acc: Account) -> list[dict[str, object]]:
        sm = self.summary(acc)
        alias = acc.api_key[:4]
        out = []
        for asset in ASSETS:
            usdt = asset == "USDT"
            z = "0.00000000"
            out.append(
                {
                    "accountAlias": alias,
                    "asset": asset,
                    "balance": fmt(sm["wallet"], 8) if usdt else z,
                    "crossWalletBalance": fmt(sm["cross_wallet"], 8) if usdt else z,
                    "crossUnPnl": fmt(sm["cross_upnl"], 8) if usdt else z,
                    "availableBalance": fmt(sm["available"], 8) if usdt else z,
                    "maxWithdrawAmount": fmt(sm["max_withdraw"], 8) if usdt else z,
                    "marginAvailable": True,
                    "updateTime": acc.update_time if usdt else 0,
                }
            )
        return out

    def state(self, acc: Account) -> dict[str, object]:
        positions = []
        for pos in acc.positions.values():
            s = SYMBOLS[pos.symbol]
            n = self._pos_numbers(acc, pos)
            positions.append(
                {
                    "symbol": pos.symbol,
                    "positionSide": pos.side,
                    "positionAmt": fmt(pos.amt, s.qty_precision),
                    "entryPrice": format(pos.entry.normalize(), "f") if pos.entry else "0",
                    "marginType": "ISOLATED" if self.isolated(acc, pos.symbol) else "CROSSED",
                    "leverage": self.lev(acc, pos.symbol),
                    "isolatedWallet": fmt(pos.isolated_wallet, 8),
                    "markPrice": str(n["mark"]),
                    "unRealizedProfit": fmt(n["upnl"], 8),
                    "liquidationPrice": fmt(n["liq"], 8),
                    "updateTime": pos.update_time,
                }
            )
        algos = []
        for a in acc.algos.values():
            d = a.json(query=True)
            d["actualOrderId"] = a.actual_order_id
            algos.append(d)
        return {
            "name": acc.name,
            "balances": self.balances(acc),
            "positions": positions,
            "orders": [o.json() for o in acc.orders],
            "algoOrders": algos,
            "income": [i.json() for i in acc.income],
            "trades": [t.json() for t in acc.trades],
            "dualSidePosition": acc.dual,
            "leverage": {s: self.lev(acc, s) for s in SYMBOLS},
            "marginType": {s: acc.margin.get(s, "CROSSED") for s in SYMBOLS},
        }
