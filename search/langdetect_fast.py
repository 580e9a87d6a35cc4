"""langdetect's model and algorithm, with its per-character Python loops replaced.

langdetect (a port of Nakatani Shuyo's language-detection) normalises a text character by
character, extracts its 1- to 3-grams character by character, and in each random trial
multiplies 55 language probabilities one by one in Python: 4 to 5 ms a paragraph on two
cores, more than anything else xlsearch does to a document. Here the same steps run on its
own profiles, about four times faster:

* the normalisation is one `str.translate` with a table made once from langdetect's
  `NGram.normalize` (every character of the Basic Multilingual Plane; the others are left
  as they are, as langdetect leaves them); its URL, e-mail, Vietnamese and Latin-letter
  cleaning is done with its own regular expressions;
* the n-grams are the same multiset as langdetect's (tests/search/test_language.py compares
  them on texts that exercise its cleaning, capitals and scripts), cut from the whole text
  at once; words in capitals, where langdetect's state machine skips some, go the slow way;
* a trial draws n-grams at random and multiplies their language probabilities with
  langdetect's smoothing, convergence test and iteration limit, in log space and fifty
  draws at a time (numpy); the random stream is numpy's, seeded, so a text always gets the
  same answer (not always langdetect's on a text it finds ambiguous).
"""

from __future__ import annotations

import re

import numpy as np
import regex
from langdetect.detector import Detector
from langdetect.detector_factory import DetectorFactory
from langdetect.utils.ngram import NGram

_MAX_TEXT = 10_000  # langdetect's default max_text_length
_SPACES = re.compile(" {2,}")
_LATIN = re.compile("[A-z]")  # langdetect counts 'A' <= ch <= 'z' as Latin
# langdetect means to leave U+1Exx (Vietnamese) out of this count, but compares a block
# number with a block name, so it never does; as it does:
_NON_LATIN = re.compile("[\u0300-\U0010ffff]")
_CAPITALS = regex.compile(r"\p{Uppercase}{2}")  # where langdetect skips n-grams (isupper)
_BLOCK = 50  # n-grams drawn at a time in a trial
_CHECKS = np.arange(0, _BLOCK, 5)
_LOG_CONVERGED = float(np.log(Detector.CONV_THRESHOLD))


class FastDetector:
    """Detects with a loaded `DetectorFactory`'s profiles (copied: the factory may be dropped);
    safe to share between threads."""

    def __init__(self, factory: DetectorFactory) -> None:
        self.languages: list[str] = list(factory.langlist)
        words = factory.word_lang_prob_map
        self._row = {word: n for n, word in enumerate(words)}
        self._probabilities = np.array(list(words.values()), dtype=np.float32)  # 19 MB
        self._seed = factory.seed
        self._table = _normalisation_table()

    def ngrams(self, text: str) -> list[int]:
        """Matrix rows of the text's known n-grams: the multiset langdetect would draw from
        (not in its order, which only its own random stream needed)."""
        text = _SPACES.sub(" ", NGram.normalize_vi(
            Detector.MAIL_RE.sub(" ", Detector.URL_RE.sub(" ", text)))[:_MAX_TEXT])
        if len(_LATIN.findall(text)) * 2 < len(_NON_LATIN.findall(text)):
            text = _LATIN.sub("", text)  # langdetect drops Latin letters from other scripts
        normalised = text.translate(self._table)
        words = normalised.split(" ")
        tail = words.pop() if words and not normalised.endswith(" ") else None
        plain = [word for word in words if word and not _CAPITALS.search(word)]
        grams = _grams_of_spaced(" " + " ".join(plain) + " ") if plain else []
        for word in words:
            if word and _CAPITALS.search(word):
                grams += _grams(" " + word + " ")
        if tail:
            grams += _grams(" " + tail)
        return [row for row in map(self._row.get, grams) if row is not None]

    def detect(self, text: str, trials: int) -> str | None:
        """The most probable language's code, or None when the text has no known n-gram
        (langdetect's "no features") or no language is probable enough."""
        rows = np.array(self.ngrams(text), dtype=np.int64)
        if not len(rows):
            return None
        generator = np.random.default_rng(self._seed)  # the same text, the same answer
        alphas = Detector.ALPHA_DEFAULT + generator.standard_normal(trials) * Detector.ALPHA_WIDTH
        total = np.zeros(len(self.languages))
        for alpha in alphas:
            total += self._trial(rows, alpha / Detector.BASE_FREQ, generator) / trials
        best = int(total.argmax())
        return self.languages[best] if total[best] > Detector.PROB_THRESHOLD else None

    def _trial(self, rows: np.ndarray, weight: float, generator: np.random.Generator
               ) -> np.ndarray:
        """One of langdetect's trials: multiply the language probabilities by those of
        n-grams drawn at random, normalising and testing for convergence after the first
        and then every fifth, up to its iteration limit; in log space, a block at a time."""
        log_prob = np.full(len(self.languages), -np.log(len(self.languages)))
        done = 0
        while True:
            drawn = rows[generator.integers(len(rows), size=_BLOCK)]
            drawn_probabilities = self._probabilities[drawn].astype(np.float64)
            steps = np.cumsum(np.log(weight + drawn_probabilities), axis=0) + log_prob
            checked = steps[_CHECKS]  # after draw 1, 6, 11, ...: langdetect's i % 5 == 0
            top = checked.max(axis=1, keepdims=True)
            normaliser = top + np.log(np.exp(checked - top).sum(axis=1, keepdims=True))
            converged = np.flatnonzero(top[:, 0] - normaliser[:, 0] > _LOG_CONVERGED)
            done += _BLOCK
            if len(converged) or done >= Detector.ITERATION_LIMIT:
                at = converged[0] if len(converged) else len(_CHECKS) - 1
                return np.exp(checked[at] - normaliser[at])
            log_prob = steps[-1] - normaliser[-1]  # as langdetect normalises: nothing changes


def _grams_of_spaced(spaced: str) -> list[str]:
    """The 1- to 3-grams of words written with one space before and after each and none in
    capitals: its letters, every pair, and every triple whose middle is not a space."""
    letters = [char for char in spaced if char != " "]
    pairs = [spaced[i:i + 2] for i in range(len(spaced) - 1)]
    triples = [spaced[i:i + 3] for i in range(len(spaced) - 2) if spaced[i + 1] != " "]
    return letters + pairs + triples


def _grams(padded: str) -> list[str]:
    """The 1- to 3-grams langdetect takes from one word with the space before it (and the
    one after it, unless the text ends there), character by character: after each
    character the grams ending there, never a lone space. Inside a word in capitals (two
    capitals in a row) it takes nothing until a character that is not a capital."""
    grams = []
    capitals = False
    for end in range(2, len(padded) + 1):
        char, before = padded[end - 1], padded[end - 2]
        capitals = (capitals or before.isupper()) if char.isupper() else False
        if not capitals:
            grams += [padded[end - n:end] for n in (1, 2, 3)
                      if end - n >= 0 and padded[end - n:end] != " "]
    return grams


def _normalisation_table() -> dict[int, str]:
    table = {}
    for code in range(0x10000):
        char = chr(code)
        normal = NGram.normalize(char)
        if normal != char:
            table[code] = normal
    return table
