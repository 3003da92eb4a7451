"""The floor for serving an exposition: its bytes, read once from a file, served as a static
response by a bare aiohttp app in a process of its own.

    python -m bench.static --body metrics.txt --port 9999

GET /metrics answers the file's bytes as they are (with gzip when asked, compressed once
at start, as a static server would keep them).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.static")
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    plain = args.body.read_bytes()
    packed = gzip.compress(plain, compresslevel=1)

    async def metrics(request: web.Request) -> web.Response:
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(
                body=packed, content_type="text/plain", headers={"Content-Encoding": "gzip"}
            )
        return web.Response(body=plain, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
