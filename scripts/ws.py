#!/usr/bin/env python3
"""A console WebSocket client for trying Parley by hand: prints every frame the server sends,
and sends each line you type (one JSON command per line).

    pip install websockets
    python3 scripts/ws.py "ws://127.0.0.1:8080/ws?token=$TOKEN"
"""
import asyncio
import sys

import websockets


async def main(url: str) -> None:
    async with websockets.connect(url) as ws:

        async def show() -> None:
            async for frame in ws:
                print("<", frame, flush=True)

        printer = asyncio.create_task(show())
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip():
                await ws.send(line.strip())
        printer.cancel()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1]))
