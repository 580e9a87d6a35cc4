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

from langdetect import DetectorFactory
from langdetect.detector_factory import PROFILES_DIRECTORY
from langdetect.lang_detect_exception import LangDetectException

log = logging.getLogger(__name__)

UNDETERMINED = "und"
MIN_LETTERS = 2
# langdetect samples n-grams in random trials and averages them (7 by default). A search
# question is detected while its caller waits, and on XQuAD's 3,576 questions 2 trials miss
# 51 where 7 miss 49, at a third of the time (0.72 vs 2.32 ms a question on 2 cores).
DOCUMENT_TRIALS = 7
QUERY_TRIALS = 2
# langdetect names Chinese by script; the index and filters use plain ISO 639-1.
_ALIASES = {"zh-cn": "zh", "zh-tw": "zh"}

_factory: DetectorFactory | None = None
_factory_lock = threading.Lock()


def _detector_factory() -> DetectorFactory:
    """A private, seeded factory (not langdetect's global one), loaded once."""
    global _factory
    with _factory_lock:
        if _factory is None:
            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.set_seed(0)
            _factory = factory
        return _factory


# Scripts that name their language outright. langdetect's character n-grams get confused
# when such text is mixed with Latin names (Chinese with "(Robert Guiscard)" becomes "no").
SCRIPT_RANGES = (
    ("han", 0x3400, 0x9FFF),
    ("han", 0xF900, 0xFAFF),
    ("kana", 0x3040, 0x30FF),
    ("hangul", 0x1100, 0x11FF),
    ("hangul", 0x3130, 0x318F),
    ("hangul", 0xAC00, 0xD7AF),
    ("th", 0x0E00, 0x0E7F),
    ("el", 0x0370, 0x03FF),
)
SCRIPT_SAMPLE = 2000
SCRIPT_SHARE = 0.15


def _script(ch: str) -> str | None:
    code = ord(ch)
    for name, low, high in SCRIPT_RANGES:
        if low <= code <= high:
            return name
    return None


def language_from_script(text: str) -> str | None:
    """The language a distinctive script gives away, when it makes up a good share of the
    letters: Thai, Greek, Korean (Hangul), Japanese (any kana) or else Chinese (Han)."""
    counts: dict[str, int] = {}
    letters = 0
    for ch in text[:SCRIPT_SAMPLE]:
        if ch.isalpha():
            letters += 1
            name = _script(ch)
            if name:
                counts[name] = counts.get(name, 0) + 1
    if not counts:
        return None
    han, kana, hangul = counts.get("han", 0), counts.get("kana", 0), counts.get("hangul", 0)
    script, count = max(
        [("th", counts.get("th", 0)), ("el", counts.get("el", 0)), ("cjk", han + kana + hangul)],
        key=lambda pair: pair[1],
    )
    if count < SCRIPT_SHARE * letters:
        return None
    if script != "cjk":
        return script
    if hangul >= han + kana:
        return "ko"
    return "ja" if kana else "zh"


def detect_language(text: str, trials: int = DOCUMENT_TRIALS) -> str:
    """ISO 639-1 code of the text's main language, or `und` if it is too short or has none.

    `trials` is langdetect's number of random samplings: fewer is faster and a little noisier.
    """
    if sum(ch.isalpha() for ch in text[:200]) < MIN_LETTERS:
        return UNDETERMINED
    by_script = language_from_script(text)
    if by_script:
        return by_script
    detector = _detector_factory().create()
    detector.n_trial = trials
    detector.append(text)
    try:
        code = detector.detect()
    except LangDetectException:
        return UNDETERMINED
    return _ALIASES.get(code, code)


def default_language_processes() -> int:
    """Detection processes for a host whose model runs elsewhere: all cores but two (for
    the ingesting process's threads), at most 8."""
    return min(8, max(1, (os.cpu_count() or 1) - 2))


def _warm_up() -> None:
    _detector_factory()


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
