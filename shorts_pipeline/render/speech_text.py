"""Text as it is spoken and subtitled: Markdown, URLs, emoji and stray symbols removed.

A script line like "**Step 1:** see https://x.io 🚀 — it's *fast*" is read aloud and shown as
"Step 1: see it's fast": the voice engine never spells out asterisks or a URL, and the
subtitles show exactly the words that are heard, so word timings line up with them.
Letters of every script (Hangul, Arabic, CJK…), digits and ordinary punctuation are kept.
"""

from __future__ import annotations

import re
import unicodedata

from shorts_pipeline.render.text import clean_text

_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
_MD_QUOTE = re.compile(r"^\s*>\s?", re.MULTILINE)
_MD_CODE_FENCE = re.compile(r"```[^\n]*\n?|```")
_MD_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|~~|`)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)\]}…。、，！？])")
_REPEATED_PUNCT = re.compile(r"([,;:])(\s*[,;:])+")

# Punctuation and symbols a voice reads or pauses on naturally; other symbols are dropped.
_KEEP_SYMBOLS = set(".,;:!?'\"()-–—%&+/…·«»“”‘’。、，！？「」『』（）〜~$€£¥₩#@=")
# A sentence ends at . ! ? … followed by a space ("3.5" and "e.g." stay whole), or right
# after a full-width 。！？ (Chinese and Japanese put no space after them).
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])\s*")


def spoken_text(text: str) -> str:
    """`text` as a voice should read it and a subtitle should show it."""
    text = _MD_CODE_FENCE.sub(" ", text)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_LIST.sub("", text)
    text = _MD_QUOTE.sub("", text)
    text = _MD_EMPHASIS.sub("", text)
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in ("L", "N", "M", "Z") or ch in _KEEP_SYMBOLS or ch in "\n\t":
            kept.append(ch)
        elif category in ("Pd", "Ps", "Pe", "Pi", "Pf", "Po"):
            kept.append(ch)  # other scripts' punctuation (Arabic comma, CJK marks…)
        elif ch in "\u200c\u200d":
            continue
        else:
            kept.append(" ")  # emoji, arrows, box drawing, private use…
    text = clean_text("".join(kept))
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    # Symbols left with no word around them ("—", "/", "#") are noise once their word is gone.
    tokens = [tok for tok in text.split(" ") if any(_is_wordlike(ch) for ch in tok)]
    return " ".join(tokens).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (any script), stripped, empty ones dropped."""
    parts = _SENTENCE_END.split(clean_text(text))
    return [p.strip() for p in parts if p and p.strip()]


def spoken_words(text: str) -> list[str]:
    """The words of spoken `text`, split at spaces (Hangul and Latin scripts)."""
    return [w for w in text.split(" ") if w]


def _is_wordlike(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("L", "N")
