"""Serving the paper exchange with uvicorn (``aiqt paper`` calls :func:`run`)."""

from __future__ import annotations

import logging
import socket

import uvicorn

from .app import PaperApp
from .settings import PaperSettings

log = logging.getLogger("paper")


def build(settings: PaperSettings, own_process: bool = False) -> tuple[PaperApp, uvicorn.Server]:
    app = PaperApp(settings, freeze_gc=own_process)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_pong_timeout_s,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
        backlog=4096,
    )
    return app, uvicorn.Server(config)


def run(settings: PaperSettings) -> None:
    """Serve until interrupted; state is flushed to SQLite on the way out."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app, server = build(settings, own_process=True)
    log.info(
        "paper exchange on http://%s:%d (db %s, %d accounts)",
        settings.host,
        settings.port,
        settings.db,
        len(app.engine.accounts),
    )
    try:
        _serve(settings, server)
    except KeyboardInterrupt:  # uvicorn re-raises the captured SIGINT after its graceful shutdown
        pass
    finally:
        app.close()
        log.info("paper exchange stopped; state flushed to %s", settings.db)


def _serve(settings: PaperSettings, server: uvicorn.Server) -> None:
    if settings.port == 0:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, 0))
        log.info("listening on port %d", sock.getsockname()[1])
        server.run(sockets=[sock])
    else:
        server.run()


if __name__ == "__main__":  # pragma: no cover - manual start: python -m paper.main
    run(PaperSettings())
