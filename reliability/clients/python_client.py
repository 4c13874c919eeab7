"""A foreign client for the reliability suite: Python's `websockets` (Debian python3-websockets).

Usage: /usr/bin/python3 python_client.py ws://127.0.0.1:PORT/ws/echo?user=python

Connects, sends one text message and reads its echo, then stays silent: the library of the
client answers the server's pings by itself; nothing else is sent. Prints one JSON line with
what happened: the echo, every message received afterwards (the timeout notice), the close
code and reason the server sent, and the times (seconds since connecting).
"""
import asyncio
import json
import sys
import time

import websockets


async def main(url: str) -> dict:
    started = time.monotonic()
    result = {"client": f"python-websockets {websockets.__version__}", "messages": []}
    # ping_interval=None: the client sends no pings of its own; only the server's pings are exchanged.
    async with websockets.connect(url, ping_interval=None, close_timeout=5, open_timeout=10) as ws:
        result["openedAt"] = time.monotonic() - started
        await ws.send("hello from python")
        result["echo"] = await ws.recv()
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), timeout=30)
                result["messages"].append({"at": time.monotonic() - started, "data": message})
        except websockets.exceptions.ConnectionClosed as closed:
            received = closed.rcvd
            result["code"] = received.code if received else None
            result["reason"] = received.reason if received else None
            result["closedAt"] = time.monotonic() - started
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))), flush=True)
