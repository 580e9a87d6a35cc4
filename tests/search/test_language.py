"""Language detection: stable codes, plain `zh`, and `und` when there is no language."""

from __future__ import annotations

import pytest

from search.language import detect_language


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
