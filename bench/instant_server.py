"""An OpenAI-compatible `/v1/embeddings` server that costs (almost) nothing: for measuring
xlsearch's own work around a model that answers at once.

Each text's vector is seeded by its SHA-256, so the same text always gets the same unit
vector (searches are repeatable; the vectors mean nothing). HTTP/1.1 with keep-alive, one
thread per connection, base64 or float-list answers, `dimensions` honoured.

    python -m bench.instant_server --port 8089 --dimension 384
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

MODEL = "instant"


def text_vector(text: str, dimension: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "replace")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def answer(body: dict[str, Any], dimension: int) -> dict[str, Any]:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    width = int(body.get("dimensions") or dimension)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = text_vector(text, width)
        embedding: Any = vector.tolist()
        if as_base64:
            embedding = base64.b64encode(vector.tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "model": body.get("model", MODEL), "data": data,
            "usage": {"prompt_tokens": 0, "total_tokens": 0}}


def serve(port: int, dimension: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps(answer(body, dimension)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dimension", type=int, default=384)
    args = parser.parse_args(argv)
    serve(args.port, args.dimension)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
