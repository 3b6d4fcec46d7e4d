"""The sandbox's service registry and runner (aiohttp).

A service is a name, a default port and a factory for its aiohttp application;
the runner adds ``GET /health`` to every one and binds each to its own port on
127.0.0.1. Adding a simulated service is one ``register`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Service:
    name: str
    default_port: int
    make_app: Callable[[dict[str, Any]], web.Application]
    description: str


SERVICES: dict[str, Service] = {}


def register(service: Service) -> Service:
    SERVICES[service.name] = service
    return service


def build_app(service: Service, options: dict[str, Any]) -> web.Application:
    app = service.make_app(options)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service.name})

    app.router.add_get("/health", health)
    return app


class PortInUse(Exception):
    def __init__(self, service: str, port: int):
        super().__init__(f"{service}: port {port} is already in use")


async def start_services(
    host: str, ports: dict[str, int], options: dict[str, Any]
) -> tuple[dict[str, str], list[web.AppRunner]]:
    """Start each named service on its port (0 = a free one); returns {name: base URL} and the runners."""
    urls, runners = {}, []
    try:
        for name, port in ports.items():
            runner = web.AppRunner(build_app(SERVICES[name], options), access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError:
                raise PortInUse(name, port) from None
            bound_port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
            urls[name] = f"http://{host}:{bound_port}"
    except BaseException:
        await stop_services(runners)
        raise
    return urls, runners


async def stop_services(runners: list[web.AppRunner]) -> None:
    for runner in reversed(runners):
        await runner.cleanup()
