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

from search.embedders import load_embedder
from search.embedders.openai_http import OpenAIEmbedder
from search.errors import EmbedderUnavailable
from search.settings import Settings

DIM = 48


def text_vector(text: str) -> np.ndarray:
    """The server's deterministic "model": a vector seeded by the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


VLLM_REFUSAL = (
    'Model "Qwen/Qwen3-Embedding-4B" does not support matryoshka representation, '
    "changing output dimensions will lead to poor results."
)


@dataclass
class EmbeddingServer:
    """What the loopback server saw and how it behaves; the default is a compliant server."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # what it answered, in order
    fail_next: list[int] = field(default_factory=list)  # status codes to answer first
    refuse_dimensions: str | None = None  # like vLLM: 400 with this message on `dimensions`
    ignore_request_options: bool = False  # like old SGLang: full float lists, whatever was asked
    short_by: int = 0  # returns this many components fewer than `dimensions` asks
    reply: dict[str, Any] | bytes | None = None  # the answer to every request after the probe


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
            if state.refuse_dimensions and "dimensions" in body:
                error = {"message": state.refuse_dimensions, "type": "BadRequestError"}
                self._send(400, {"error": error | {"code": 400}})
                return
            if state.reply is not None and len(state.requests) > 1:
                self._send(200, state.reply)
                return
            honour = not state.ignore_request_options
            vectors = [text_vector(t) for t in body["input"]]
            if honour and "dimensions" in body:
                vectors = [v[: body["dimensions"] - state.short_by] for v in vectors]
            data = [
                {
                    "index": i,
                    "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
                    if honour and body.get("encoding_format") == "base64"
                    else v.tolist(),
                }
                for i, v in enumerate(vectors)
            ]
            self._send(200, {"object": "list", "data": data[::-1]})  # any order is allowed

        def _send(self, status: int, payload: dict[str, Any] | bytes) -> None:
            state.statuses.append(status)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
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


def truncated(text: str, dimension: int) -> np.ndarray:
    """What every mode must give: the full vector's first components, renormalised."""
    return normalised(text_vector(text)[:dimension])


@pytest.mark.parametrize(
    "refusal",
    [VLLM_REFUSAL, "dimensions is currently not supported"],  # vLLM now and before 0.9
)
def test_auto_falls_back_to_truncating_when_the_server_refuses_dimensions(
    server: EmbeddingServer, refusal: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.refuse_dimensions = refusal
    client = embedder(server)
    first = client.embed_documents(["alpha", "beta"], dimension=32)
    second = client.embed_queries(["gamma"], dimension=32)
    np.testing.assert_allclose(first, [truncated("alpha", 32), truncated("beta", 32)], atol=1e-6)
    np.testing.assert_allclose(second[0], truncated("gamma", 32), atol=1e-6)
    asked = ["dimensions" in r for r in server.requests[1:]]  # after the probe
    assert asked == [True, False, False]  # refused once, then remembered
    assert server.statuses == [200, 400, 200, 200]
    warnings = [r for r in caplog.records if "refuses `dimensions`" in r.getMessage()]
    assert len(warnings) == 1


def test_truncate_never_sends_dimensions(server: EmbeddingServer) -> None:
    server.refuse_dimensions = VLLM_REFUSAL
    client = embedder(server, dimensions="truncate")
    vectors = client.embed_documents(["alpha"], dimension=32)
    client.embed_queries(["beta"], dimension=40)
    np.testing.assert_allclose(vectors[0], truncated("alpha", 32), atol=1e-6)
    assert not any("dimensions" in r for r in server.requests)
    assert set(server.statuses) == {200}


def test_send_surfaces_the_refusal_with_what_to_do(server: EmbeddingServer) -> None:
    server.refuse_dimensions = VLLM_REFUSAL
    client = embedder(server, dimensions="send", max_retries=3)
    for _ in range(2):  # `send` never stops asking
        with pytest.raises(EmbedderUnavailable, match="answered 400.*OPENAI_DIMENSIONS=truncate"):
            client.embed_documents(["alpha"], dimension=32)
    assert ["dimensions" in r for r in server.requests[1:]] == [True, True]


def test_auto_keeps_sending_after_an_unrelated_client_error(server: EmbeddingServer) -> None:
    client = embedder(server)
    server.fail_next = [400]  # "busy": says nothing about dimensions
    with pytest.raises(EmbedderUnavailable, match="answered 400"):
        client.embed_documents(["alpha"], dimension=32)
    vectors = client.embed_documents(["alpha"], dimension=32)
    assert [r.get("dimensions") for r in server.requests[1:]] == [32, 32]
    np.testing.assert_allclose(vectors[0], truncated("alpha", 32), atol=1e-6)


def test_full_dimension_is_not_asked_for(server: EmbeddingServer) -> None:
    server.refuse_dimensions = VLLM_REFUSAL
    embedder(server, dimensions="send").embed_documents(["alpha"], dimension=DIM)
    assert "dimensions" not in server.requests[-1]


def test_float_lists_are_read_when_base64_was_asked(server: EmbeddingServer) -> None:
    server.ignore_request_options = True  # old SGLang: floats and full width, whatever was asked
    client = embedder(server)
    vectors = client.embed_documents(["alpha", "beta"], dimension=32)
    assert server.requests[-1]["encoding_format"] == "base64"
    assert server.requests[-1]["dimensions"] == 32
    np.testing.assert_allclose(vectors, [truncated("alpha", 32), truncated("beta", 32)], atol=1e-6)


def test_fewer_dimensions_than_asked_is_a_clear_error(server: EmbeddingServer) -> None:
    server.short_by = 8
    with pytest.raises(EmbedderUnavailable, match="returned 24-dimensional vectors where 32 to 48"):
        embedder(server).embed_documents(["alpha"], dimension=32)


def base64_vector(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, "<f4").tobytes()).decode()


def vector_item(index: Any, width: int) -> dict[str, Any]:
    return {"index": index, "embedding": [0.1] * width}


@pytest.mark.parametrize(
    ("embedding", "message"),
    [
        ({"values": [0.1] * DIM}, "neither base64 nor a list of numbers"),
        ([[0.1] * DIM], "neither base64 nor a list of numbers"),
        (["0.1"] * DIM, "neither base64 nor a list of numbers"),
        ("not base64!", "unusable answer"),
        (base64.b64encode(b"12345").decode(), "5 bytes, not whole float32s"),
        ([], "one non-zero width"),
        (base64_vector([float("nan")] * DIM), "NaN"),
        ([0.1] * 40, "40-dimensional vectors where 48"),
    ],
)
def test_malformed_vectors_are_a_clear_error(
    server: EmbeddingServer, embedding: Any, message: str
) -> None:
    client = embedder(server)
    server.reply = {"data": [{"index": i, "embedding": embedding} for i in range(2)]}
    with pytest.raises(EmbedderUnavailable, match=message):
        client.embed_documents(["alpha", "beta"])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"<html>Bad gateway</html>", "unusable answer .*Expecting value"),
        ({"error": "no data"}, "no list of embedding objects"),
        ({"data": [vector_item(0, DIM), vector_item(1, 8)]}, r"widths \[8, 48\]"),
        ({"data": [vector_item(0, DIM), vector_item(0, DIM)]}, "indices"),
        ({"data": [vector_item("0", DIM), vector_item(1, DIM)]}, "indices"),
        ({"data": [vector_item(i, DIM) for i in range(3)]}, "3 vectors for 2 inputs"),
    ],
)
def test_malformed_answers_are_a_clear_error(
    server: EmbeddingServer, reply: dict[str, Any] | bytes, message: str
) -> None:
    client = embedder(server)
    server.reply = reply
    with pytest.raises(EmbedderUnavailable, match=message):
        client.embed_documents(["alpha", "beta"])


def test_load_embedder_passes_the_dimensions_mode(server: EmbeddingServer) -> None:
    settings = Settings(
        embedder="openai", model="served", openai_base_url=server.url, openai_dimensions="truncate"
    )
    client = load_embedder(settings)
    client.embed_documents(["alpha"], dimension=32)
    assert "dimensions" not in server.requests[-1]
