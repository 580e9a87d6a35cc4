"""Model families' conventions (prompts, padding, chunk size), so users need not know them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"


@dataclass(frozen=True)
class ModelProfile:
    """How one model family wants its inputs.

    `query_template` may use `{instruction}` (the task) and must use `{text}`. A document
    instruction, when a collection sets one, is put verbatim before the document text.
    """

    name: str
    query_template: str
    document_prefix: str
    padding_side: Literal["left", "right"]
    chunk_tokens_cap: int

    def format_query(self, text: str, instruction: str | None = None) -> str:
        return self.query_template.format(instruction=instruction or DEFAULT_TASK, text=text)

    def format_document(self, text: str, instruction: str | None = None) -> str:
        return f"{instruction}{text}" if instruction else f"{self.document_prefix}{text}"


PROFILES: dict[str, ModelProfile] = {
    "qwen3": ModelProfile(
        name="qwen3",
        query_template="Instruct: {instruction}\nQuery:{text}",
        document_prefix="",
        padding_side="left",
        chunk_tokens_cap=2048,
    ),
    "e5": ModelProfile(
        name="e5",
        query_template="query: {text}",
        document_prefix="passage: ",
        padding_side="right",
        chunk_tokens_cap=512,
    ),
    "plain": ModelProfile(
        name="plain",
        query_template="{text}",
        document_prefix="",
        padding_side="right",
        chunk_tokens_cap=512,
    ),
}


def resolve_profile(requested: str, model_name: str, model_type: str | None = None) -> ModelProfile:
    """Pick a profile: an explicit name wins, else guess from the model's name or config type."""
    if requested != "auto":
        return PROFILES[requested]
    lowered = model_name.lower()
    if "qwen3" in lowered or model_type == "qwen3":
        return PROFILES["qwen3"]
    if "e5" in lowered.replace("/", "-").split("-") or "-e5-" in lowered:
        return PROFILES["e5"]
    return PROFILES["plain"]
