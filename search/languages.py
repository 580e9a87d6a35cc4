"""Language tags as xlsearch stores and filters them: BCP 47-like, lower case, with an
ISO 639-1 (two letters) or ISO 639-2/3 (three letters) primary subtag, or `und`."""

from __future__ import annotations

import re

# ISO 639-1: every two-letter code there is, so a typo ("en-" or "gb") is refused instead of
# silently matching nothing.
_ISO_639_1_CODES = """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs
    cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha
    he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn
    ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb
    nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd
    se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw
    ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
"""
ISO_639_1 = frozenset(_ISO_639_1_CODES.split())
UNDETERMINED = "und"
_TAG = re.compile(r"([a-z]{2,3})(-[a-z0-9]{2,8})*")


def normalise_language(tag: str) -> str:
    """`tag` in lower case, or ValueError saying what a valid tag looks like."""
    lowered = tag.strip().lower()
    match = _TAG.fullmatch(lowered)
    primary = match.group(1) if match else ""
    if lowered == UNDETERMINED or (match and (len(primary) == 3 or primary in ISO_639_1)):
        return lowered
    raise ValueError(
        f"{tag!r} is not a language code; use ISO 639-1 such as 'en', 'de', 'zh' "
        "(optionally with a region: 'pt-br'), or 'und'"
    )


def language_matches(wanted: str, stored: str) -> bool:
    """A filter for `zh` takes `zh` and `zh-tw`; a filter for `zh-tw` only `zh-tw`."""
    return stored == wanted or stored.startswith(wanted + "-")
