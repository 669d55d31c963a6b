"""The exchange's budget: what each request costs (`weights`) and the governor that spends it."""

from worker.limits.governor import AccountGate, Freeze, Governor, GovernorRefused, Limits, Policy, Priority

__all__ = ["AccountGate", "Freeze", "Governor", "GovernorRefused", "Limits", "Policy", "Priority"]
