"""Language detection with langdetect, deterministic (seeded) and with `und` for no language."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing import get_context

import regex
from langdetect import DetectorFactory
from langdetect.detector_factory import PROFILES_DIRECTORY

from search.langdetect_fast import FastDetector

log = logging.getLogger(__name__)

UNDETERMINED = "und"
MIN_LETTERS = 2
# langdetect samples n-grams in random trials and averages them (7 by default). With names
# left out (below), 3 trials get all 2,880 XQuAD paragraphs right, as 7 do; a search
# question is detected while its caller waits, and 2 trials get 14,109 of XQuAD's 14,280
# questions right, 3 trials one more at a quarter more time.
DOCUMENT_TRIALS = 3
QUERY_TRIALS = 2
# langdetect names Chinese by script; the index and filters use plain ISO 639-1.
_ALIASES = {"zh-cn": "zh", "zh-tw": "zh"}

# langdetect reads at most this many characters of a text: three windows (its start,
# middle and end), so a long document costs what a paragraph does.
SAMPLE_CHARS = 450
# Capitalised words (names, mostly) say little about a text's language and mislead
# langdetect: a Turkish paragraph listing "Los Angeles Lakers, ..." came out German. They
# are left out where at least this many letters remain (German nouns too: still right).
_NAME = regex.compile(r"\b\p{Lu}[\p{L}\p{M}'’.-]*")
NAMELESS_LETTERS = 40

_detector: FastDetector | None = None
_detector_lock = threading.Lock()


def _langdetect() -> FastDetector:
    """langdetect's profiles, seeded, in the vectorised detector; loaded once."""
    global _detector
    with _detector_lock:
        if _detector is None:
            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.set_seed(0)
            _detector = FastDetector(factory)
        return _detector


# Scripts that name their language outright. langdetect's character n-grams get confused
# when such text is mixed with Latin names (Chinese with "(Robert Guiscard)" becomes "no").
_SCRIPTS = {
    name: regex.compile(rf"[[{ranges}]&&\p{{L}}]", regex.VERSION1)
    for name, ranges in (
        ("han", r"\u3400-\u9fff\uf900-\ufaff"),
        ("kana", r"\u3040-\u30ff"),
        ("hangul", r"\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"),
        ("th", r"\u0e00-\u0e7f"),
        ("el", r"\u0370-\u03ff"),
    )
}
_LETTER = regex.compile(r"\p{L}")
SCRIPT_SAMPLE = 2000
SCRIPT_SHARE = 0.15


def language_from_script(text: str) -> str | None:
    """The language a distinctive script gives away, when it makes up a good share of the
    letters: Thai, Greek, Korean (Hangul), Japanese (any kana) or else Chinese (Han)."""
    sample = text[:SCRIPT_SAMPLE]
    counts = {name: len(script.findall(sample)) for name, script in _SCRIPTS.items()}
    if not any(counts.values()):
        return None
    han, kana, hangul = counts["han"], counts["kana"], counts["hangul"]
    script, count = max(
        [("th", counts["th"]), ("el", counts["el"]), ("cjk", han + kana + hangul)],
        key=lambda pair: pair[1],
    )
    if count < SCRIPT_SHARE * len(_LETTER.findall(sample)):
        return None
    if script != "cjk":
        return script
    if hangul >= han + kana:
        return "ko"
    return "ja" if kana else "zh"


def sample(text: str, size: int = SAMPLE_CHARS) -> str:
    """The text, or three windows of it (start, middle, end) when it is longer than `size`."""
    if len(text) <= size:
        return text
    window = size // 3
    middle = (len(text) - window) // 2
    return " ".join((text[:window], text[middle:middle + window], text[-window:]))


def _without_names(text: str) -> str:
    """The text without its capitalised words, unless too few letters would remain."""
    rest = _NAME.sub(" ", text)
    return rest if len(_LETTER.findall(rest)) >= NAMELESS_LETTERS else text


def detect_language(text: str, trials: int = DOCUMENT_TRIALS) -> str:
    """ISO 639-1 code of the text's main language, or `und` if it is too short or has none.

    `trials` is langdetect's number of random samplings: fewer is faster and a little noisier.
    """
    if len(_LETTER.findall(text[:200])) < MIN_LETTERS:
        return UNDETERMINED
    by_script = language_from_script(text)
    if by_script:
        return by_script
    code = _langdetect().detect(sample(_without_names(sample(text, 4 * SAMPLE_CHARS))), trials)
    if code is None:
        return UNDETERMINED
    return _ALIASES.get(code, code)


def default_language_processes() -> int:
    """Detection processes for a host whose model runs elsewhere: all cores but two (for
    the ingesting process's threads), at most 8."""
    return min(8, max(1, (os.cpu_count() or 1) - 2))


def _warm_up() -> None:
    _langdetect()


class LanguageDetector:
    """Detects the languages of many texts at once: in the calling thread, or in `processes`
    worker processes. langdetect is pure Python; in the ingesting process it holds the
    interpreter lock that the thread feeding a GPU needs, and one core detects only a couple
    of hundred paragraphs a second, fewer than a GPU embeds. The processes start on first use.
    """

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def detect(self, texts: Sequence[str], trials: int = DOCUMENT_TRIALS) -> list[str]:
        """`detect_language` of each text, in order."""
        if self.processes < 1 or len(texts) < 2:
            return [detect_language(text, trials) for text in texts]
        chunk = max(1, len(texts) // (2 * self.processes))
        try:
            return list(
                self._started().map(partial(detect_language, trials=trials), texts, chunksize=chunk)
            )
        except BrokenProcessPool as exc:  # a process died: detect here, start afresh next time
            log.warning("language detection processes failed (%s); detecting here", exc)
            self.close()
            return [detect_language(text, trials) for text in texts]

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=get_context("spawn"), initializer=_warm_up
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
