"""Language detection with langdetect, deterministic (seeded) and with `und` for no language."""

from __future__ import annotations

import threading

from langdetect import DetectorFactory
from langdetect.detector_factory import PROFILES_DIRECTORY
from langdetect.lang_detect_exception import LangDetectException

UNDETERMINED = "und"
MIN_LETTERS = 2
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


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's main language, or `und` if it is too short or has none."""
    if sum(ch.isalpha() for ch in text[:200]) < MIN_LETTERS:
        return UNDETERMINED
    detector = _detector_factory().create()
    detector.append(text)
    try:
        code = detector.detect()
    except LangDetectException:
        return UNDETERMINED
    return _ALIASES.get(code, code)
