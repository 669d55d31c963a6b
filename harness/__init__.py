"""The process harness that the tests and the benchmarks share: it starts the paper exchange, workers
and a gateway (in threads of this process or as OS processes), hands out paper accounts, makes
Binance-style signed calls to the paper exchange, and finds the broker.

It sits above every runtime package (it may import schemas, bus, gateway, worker, paper and aiqt) and
below its two users: `tests/` and `bench/` both import `harness`, and never each other. No pytest here:
what is pytest-specific (skipping, fixtures) stays in `tests/`.

    servers.py    uvicorn and asyncio loops in background threads; free ports; waiting for HTTP
    broker.py     whether a broker answers; deleting a stack's bus namespace
    fapi.py       Binance-style signed query strings, and signed calls to the paper exchange
    stack.py      `Stack`: gateway + workers in this process, on a namespace of their own, with accounts
    processes.py  `ProcessStack`: paper + workers + gateway as `aiqt` OS processes (the benchmarks)
    chaos.py      the chaos run: faults, worker kills and retrying clients, then a count of what broke
"""
