"""Account settings: leverage, margin type, position mode, and their read-back views
(symbolConfig, accountConfig).
"""

from __future__ import annotations

from .. import params
from ..errors import bad_value, err
from ..models import Account, Position
from ..symbols import SYMBOLS
from .events import BalanceChanged, LeverageChanged
from .history import History


class AccountSettings(History):
    """Per-account settings on top of the order layers (changes need no open orders)."""

    def set_leverage(self, acc: Account, p: params.Params) -> dict[str, object]:
        spec = params.symbol(p)
        assert spec is not None
        raw = params.req(p, "leverage")
        if not raw.isdigit():
            raise err(-4028, f"Leverage {raw} is not valid")
        lev = int(raw)
        if lev < 1 or lev > spec.max_leverage:
            raise err(-4028, f"Leverage {lev} is not valid")
        acc.leverage[spec.symbol] = lev
        acc.update_time = self.market.now()
        self._save_acc(acc)
        self.emit(LeverageChanged(acc, spec.symbol, lev, acc.update_time))
        return {"leverage": lev, "maxNotionalValue": str(spec.max_notional(lev)), "symbol": spec.symbol}

    def _has_position(self, acc: Account, sym: str | None = None) -> bool:
        return any(pos.amt != 0 for pos in acc.positions.values() if sym is None or pos.symbol == sym)

    def set_margin_type(self, acc: Account, p: params.Params) -> dict[str, object]:
        spec = params.symbol(p)
        assert spec is not None
        mt = params.req(p, "marginType").upper()
        if mt == "CROSS":
            mt = "CROSSED"
        if mt not in ("CROSSED", "ISOLATED"):
            raise bad_value("marginType")
        current = acc.margin.get(spec.symbol, "CROSSED")
        if mt == current:
            raise err(-4046, "No need to change margin type.")
        if any(o.symbol == spec.symbol for o in acc.open_orders.values()) or any(
            a.symbol == spec.symbol for a in acc.open_algos.values()
        ):
            raise err(-4047, "Margin type cannot be changed if there exists open orders.")
        if self._has_position(acc, spec.symbol):
            raise err(-4048, "Margin type cannot be changed if there exists position.")
        acc.margin[spec.symbol] = mt
        acc.update_time = self.market.now()
        self._save_acc(acc)
        sides = ("LONG", "SHORT") if acc.dual else ("BOTH",)
        changed = tuple(acc.positions.get((spec.symbol, side)) or Position(spec.symbol, side) for side in sides)
        self.emit(BalanceChanged(acc, "MARGIN_TYPE_CHANGE", acc.update_time, changed))
        return {"code": 200, "msg": "success"}

    def set_dual(self, acc: Account, p: params.Params) -> dict[str, object]:
        v = params.req(p, "dualSidePosition").lower()
        if v not in ("true", "false"):
            raise bad_value("dualSidePosition")
        dual = v == "true"
        if dual == acc.dual:
            raise err(-4059, "No need to change position side.")
        if acc.open_orders or acc.open_algos:
            raise err(-4067, "Position side cannot be changed if there exists open orders.")
        if self._has_position(acc):
            raise err(-4068, "Position side cannot be changed if there exists position.")
        acc.dual = dual
        acc.update_time = self.market.now()
        self._save_acc(acc)
        return {"code": 200, "msg": "success"}

    def symbol_config(self, acc: Account, p: params.Params) -> list[dict[str, object]]:
        spec = params.symbol(p, required=False)
        out = []
        for s in SYMBOLS.values():
            if spec is not None and s is not spec:
                continue
            lev = self.lev(acc, s.symbol)
            out.append(
                {
                    "symbol": s.symbol,
                    "marginType": acc.margin.get(s.symbol, "CROSSED"),
                    "isAutoAddMargin": False,
                    "leverage": lev,
                    "maxNotionalValue": str(s.max_notional(lev)),
                }
            )
        return out

    def account_config(self, acc: Account) -> dict[str, object]:
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "dualSidePosition": acc.dual,
            "updateTime": acc.update_time,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }
