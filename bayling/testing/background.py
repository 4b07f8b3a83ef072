"""Run an ASGI app with uvicorn on 127.0.0.1 in a background thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import threading
import time

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """`with BackgroundServer(app) as s: httpx.get(s.url + "/health")` — an ephemeral port, stopped on exit."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                                    timeout_graceful_shutdown=2, lifespan="on"))
        self.host = host
        self._thread = threading.Thread(target=self.server.run, name="bayling-uvicorn", daemon=True)

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
