"""Language detection: stable codes, plain `zh`, and `und` when there is no language."""

from __future__ import annotations

from collections import Counter

import pytest
from langdetect import DetectorFactory
from langdetect.detector_factory import PROFILES_DIRECTORY

from search.langdetect_fast import FastDetector
from search.language import SAMPLE_CHARS, detect_language, sample


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wie hoch ist der Eiffelturm in Paris?", "de"),
        ("The Eiffel Tower is a wrought-iron lattice tower in Paris.", "en"),
        ("长城是中国古代修建的军事防御工程。", "zh"),
        ("富士山は日本で一番高い山です。", "ja"),
        ("ภูเขาไฟฟูจิเป็นภูเขาที่สูงที่สุดในประเทศญี่ปุ่น", "th"),
        ("القهوة مشروب يُحضَّر من حبوب البن المحمصة.", "ar"),
        ("ताजमहल आगरा में यमुना नदी के किनारे स्थित है।", "hi"),
        ("Московский Кремль — древняя крепость в центре Москвы.", "ru"),
    ],
)
def test_detects_the_main_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("诺曼人罗伯特·吉斯卡尔 (Robert Guiscard) 在 1059 年成为阿普利亚 (Apulia) 公爵。", "zh"),
        ("ロベール・ギスカール (Robert Guiscard) はノルマン人の騎士です。", "ja"),
        ("서울 (Seoul) 은 한국의 수도입니다.", "ko"),
        ("Η Αθήνα (Athens) είναι η πρωτεύουσα της Ελλάδας.", "el"),
        ("กรุงเทพ (Bangkok) เป็นเมืองหลวง", "th"),
    ],
)
def test_distinctive_scripts_win_over_latin_names(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "42", "3.14 + 2", "!!!", "x", "🙂🙂"])
def test_no_language_is_und(text: str) -> None:
    assert detect_language(text) == "und"


def test_detection_is_deterministic() -> None:
    ambiguous = "Taxi Hotel Restaurant Pizza"
    assert len({detect_language(ambiguous) for _ in range(20)}) == 1


LANGDETECT_TEXTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "NASA and the USA, McDonald's and IBM: capitals, where langdetect skips n-grams.",
    "Ниже — ТАСС сообщает: ООН и NATO.  Два   пробела, mail@example.com, https://x.org/a",
    "Tiếng Việt có dấu: Hà Nội, Thành phố Hồ Chí Minh",  # decomposed marks are recombined
    "诺曼人 (Robert Guiscard) 1059 年",
    "a",
    " leading and trailing spaces ",
    "العربية مع some English words في الجملة",
    "ROMÂNIA și Țara Românească: ș ț",
    "ạạạạạ ab",  # U+1Exx counts as non-Latin in langdetect (whatever its comment says)
]


@pytest.mark.parametrize("text", LANGDETECT_TEXTS)
def test_the_fast_detector_reads_the_n_grams_langdetect_reads(text: str) -> None:
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    reference = factory.create()
    reference.append(text)
    reference.cleaning_text()
    detector = FastDetector(factory)
    names = list(factory.word_lang_prob_map)
    assert Counter(names[row] for row in detector.ngrams(text)) == Counter(
        reference._extract_ngrams()
    )


def test_names_do_not_decide_the_language() -> None:
    # XQuAD's Turkish paragraph that langdetect, reading the team names, may call German
    turkish = (
        "Güney Kaliforniya'daki profesyonel spor takımları arasında NFL'den (Los Angeles "
        "Rams, San Diego Chargers); NBA'den (Los Angeles Lakers, Los Angeles Clippers); "
        "MLB'den (Los Angeles Dodgers, Los Angeles Angels of Anaheim, San Diego Padres); "
        "NHL'den (Los Angeles Kings, Anaheim Ducks) ve MLS'ten (LA Galaxy) takımlar bulunur."
    )
    assert detect_language(turkish) == "tr"
    assert detect_language("Was ist der Unterschied zwischen Berlin und Paris?") == "de"


def test_a_long_text_is_read_from_a_sample() -> None:
    english = "The committee met on Tuesday and agreed on the budget for next year. " * 3000
    assert detect_language(english) == "en"
    assert len(sample(english)) <= SAMPLE_CHARS + 2
