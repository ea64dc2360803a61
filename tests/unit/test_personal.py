"""Personal data in free text is masked however it is typed (shared/personal.py)."""

from __future__ import annotations

import pytest

from shared.personal import mask_text, masked_cut


@pytest.mark.parametrize(("typed", "masked"), [
    ("电话13812345678", "电话138****5678"),
    ("+86 138 1234 5678", "+86 138****5678"),
    ("0086-13812345678", "0086-138****5678"),
    ("138-1234-5678", "138****5678"),
    ("１３８１２３４５６７８", "138****5678"),  # full-width digits
    ("身份证33010219900101123X", "身份证330102********123X"),
    ("身份证 330102 19900101 123X", "身份证 330102********123X"),
    ("座机0571-87654321", "座机0571-****4321"),
    ("卡号6222 0212 3456 7890 123", "卡号6222 **** **** **** 123"),
    ("6222021234567890", "6222********7890"),
    ("邮箱 zhang.san@example.com", "邮箱 z***@example.com"),
    ("我叫张三，住在附近", "我叫张*，住在附近"),
    ("姓名：李小明。", "姓名：李**。"),
])
def test_each_format_is_masked(typed, masked):
    assert mask_text(typed) == masked


@pytest.mark.parametrize("kept", ["案号339901-20261123-00042", "赔偿2000元", "police-339901001 在 339901001002",
                                  "0a7f6519-16cd-43dd-8448-013812345678", "“我叫什么名字”，，。"])
def test_codes_amounts_and_punctuation_are_left_alone(kept):
    assert mask_text(kept) == kept


def test_a_title_is_cut_after_masking_so_no_half_number_escapes():
    text = "我的身份证号33010219900101123X丢了，请帮忙补办"
    assert "19900101" in text[:20]  # a raw cut carries the birth date
    assert masked_cut(text, 20) == "我的身份证号330102********"
