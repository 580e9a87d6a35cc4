"""The OpenAI-compatible HTTP backend against a small embeddings server on loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from search.embedders.openai_http import OpenAIEmbedder
from search.errors import EmbedderUnavailable

DIM = 48


def text_vector(text: str) -> np.ndarray:
    """The server's deterministic "model": a vector seeded by the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


@dataclass
class EmbeddingServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # status codes to answer first


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    state = EmbeddingServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.headers.append(dict(self.headers))
            if state.fail_next:
                self._send(state.fail_next.pop(0), {"error": {"message": "busy"}})
                return
            vectors = [text_vector(t) for t in body["input"]]
            if "dimensions" in body:
                vectors = [v[: body["dimensions"]] for v in vectors]
            data = [
                {
                    "index": i,
                    "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
                    if body.get("encoding_format") == "base64"
                    else v.tolist(),
                }
                for i, v in enumerate(vectors)
            ]
            self._send(200, {"object": "list", "data": data[::-1]})  # any order is allowed

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def embedder(server: EmbeddingServer, model: str = "plain-model", **kwargs: Any) -> OpenAIEmbedder:
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAIEmbedder(server.url, model, **kwargs)


def normalised(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_vectors_come_back_in_input_order(server: EmbeddingServer) -> None:
    client = embedder(server)
    texts = ["alpha", "beta", "gamma"]
    vectors = client.embed_documents(texts)
    assert client.dimension == DIM
    np.testing.assert_allclose(vectors, [normalised(text_vector(t)) for t in texts], atol=1e-6)


def test_qwen3_queries_carry_the_instruction(server: EmbeddingServer) -> None:
    client = embedder(server, model="Qwen/Qwen3-Embedding-4B")
    client.embed_queries(["Wie hoch ist der Eiffelturm?"], instruction="Find encyclopedia pages")
    client.embed_documents(["Der Eiffelturm ist 330 Meter hoch."])
    query_sent, document_sent = server.requests[-2]["input"][0], server.requests[-1]["input"][0]
    assert query_sent == "Instruct: Find encyclopedia pages\nQuery:Wie hoch ist der Eiffelturm?"
    assert document_sent == "Der Eiffelturm ist 330 Meter hoch."


def test_dimensions_are_requested_and_renormalised(server: EmbeddingServer) -> None:
    vectors = embedder(server).embed_documents(["alpha"], dimension=32)
    assert server.requests[-1]["dimensions"] == 32
    np.testing.assert_allclose(vectors[0], normalised(text_vector("alpha")[:32]), atol=1e-6)


def test_large_inputs_are_sent_in_batches(server: EmbeddingServer) -> None:
    client = embedder(server, batch_size=10)
    server.requests.clear()
    vectors = client.embed_documents([f"text {i}" for i in range(25)])
    assert [len(r["input"]) for r in server.requests] == [10, 10, 5]
    np.testing.assert_allclose(vectors[24], normalised(text_vector("text 24")), atol=1e-6)


def test_transient_errors_are_retried(server: EmbeddingServer) -> None:
    client = embedder(server, max_retries=3)
    server.requests.clear()
    server.fail_next = [503, 429]
    vectors = client.embed_documents(["alpha"])
    assert len(server.requests) == 3
    np.testing.assert_allclose(vectors[0], normalised(text_vector("alpha")), atol=1e-6)


def test_client_errors_are_not_retried(server: EmbeddingServer) -> None:
    client = embedder(server, max_retries=3)
    server.requests.clear()
    server.fail_next = [400]
    with pytest.raises(EmbedderUnavailable, match="answered 400"):
        client.embed_documents(["alpha"])
    assert len(server.requests) == 1


def test_api_key_is_sent_as_bearer_token(server: EmbeddingServer) -> None:
    embedder(server, api_key="s3cret").embed_documents(["alpha"])
    assert server.headers[-1]["Authorization"] == "Bearer s3cret"


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        EmbedderUnavailable, match=f"cannot reach the embedding server at .*:{port}"
    ):
        OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "any", max_retries=1, backoff_s=0.01)


def test_tokens_are_estimated_without_a_local_tokenizer(server: EmbeddingServer) -> None:
    client = embedder(server, model="no-such-local-model")
    assert client.count_tokens("abcd" * 10) >= 10
