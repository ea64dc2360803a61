"""Personal data in free text: found and masked, whatever way people type it.

Text is normalised first (full-width digits and letters, the ideographic space), then numbers are
matched with the separators people put in them (spaces, hyphens, dots) and the +86 / 0086 prefix.
Mask before you cut: a text cut in the middle of a number hides the number from these patterns.
"""

from __future__ import annotations

import re

_SEP = r"[ \-.]?"  # one optional separator between groups of digits
_D = r"(?<![\dA-Za-z@])"  # not in the middle of a longer number, code or address
_E = r"(?![\dA-Za-z])"
ID_NUMBER = re.compile(_D + r"(\d{6})" + _SEP + r"(\d{8})" + _SEP + r"(\d{3}[\dXx])" + _E)
MOBILE = re.compile(_D + r"((?:\+|00)86" + _SEP + r")?(1[3-9]\d)" + _SEP + r"(\d{4})" + _SEP + r"(\d{4})" + r"(?!\d)")
LANDLINE = re.compile(r"(?<![\dA-Za-z\-])(0\d{2,3}[ \-]?)(\d{3,4})(\d{4})(?!\d)")
# 16-19 digits, together or in groups of four separated by spaces (not a code joined by hyphens)
BANK_CARD = re.compile(r"(?<![\dA-Za-z\-])(\d{4})((?: ?\d{4}){2,3} ?)(\d{1,4})(?![\dA-Za-z\-])")
EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*(@[A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
# A name where people write one: 我叫张三, 姓名：张三, 联系人李四, 报案人王五 (the family name stays).
NAME = re.compile(r"((?:我叫|我是|姓名[:：]?|名字[:：]?|联系人[:：]?|报案人[:：]?|当事人[:：]?|申请人[:：]?)\s*)"
                  r"([\u4e00-\u9fff])([\u4e00-\u9fff]{1,3})(?=[，,。；;\s、：:）)]|$|先生|女士)")


# full-width digits, letters, +, -, @, . and the ideographic space as ASCII; Chinese punctuation stays
_HALF = {**{c: chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F) if chr(c) not in "，：；！？（）"}, 0x3000: " "}


def normalise(text: str) -> str:
    """Full-width digits and letters as ASCII (so a number typed either way is one number)."""
    return text.translate(_HALF)


def mask_text(text: str) -> str:
    """The text with ID numbers, mobile and landline numbers, bank cards, e-mail addresses and
    written-out names masked (first and last digits kept, so an operator can still tell them apart)."""
    text = normalise(text)
    text = ID_NUMBER.sub(lambda m: m[1] + "*" * 8 + m[3], text)
    text = MOBILE.sub(lambda m: (m[1] or "") + m[2] + "****" + m[4], text)
    text = BANK_CARD.sub(lambda m: m[1] + re.sub(r"\d", "*", m[2]) + m[3], text)
    text = LANDLINE.sub(lambda m: m[1] + "*" * len(m[2]) + m[3], text)
    text = EMAIL.sub(lambda m: m[1] + "***" + m[2], text)
    return NAME.sub(lambda m: m[1] + m[2] + "*" * len(m[3]), text)


def masked_cut(text: str, length: int) -> str:
    """The first `length` characters of the masked text (mask before you cut)."""
    return mask_text(text)[:length]
