"""A TCP proxy that delays every chunk, each way, by a fixed latency (a slow network to Redis).

    with DelayProxy("127.0.0.1", 6379, delay=0.05) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"

Runs its own asyncio loop in a daemon thread on a free port. Chunks keep their order and
are not throttled: a pipeline of many commands costs one delay each way, as on a real link.
"""

from __future__ import annotations

import asyncio
import threading


class DelayProxy:
    def __init__(self, host: str, port: int, delay: float = 0.05):
        self.target = (host, port)
        self.delay = delay
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader, writer) -> None:
        """Forward each chunk ``delay`` after it arrived, in order."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue = asyncio.Queue()

        async def send():
            while (item := await chunks.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(65536):
                chunks.put_nowait((loop.time() + self.delay, data))
        finally:
            chunks.put_nowait(None)
            await asyncio.gather(sender, return_exceptions=True)
