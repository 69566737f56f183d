"""Rendering replies for Telegram: escaping, splitting at 4096 characters, keyboards."""

from __future__ import annotations

import pytest

from bot.channels.telegram import deep_link_argument
from bot.channels.telegram_format import (
    MAX_CALLBACK_DATA,
    callback_data,
    escape,
    keyboard,
    option_for,
    render_reply,
    split_text,
    telegram_length,
)
from bot.engine.decision import Reply
from bot.engine.state import Option


def test_escape_turns_html_special_characters_into_entities_and_keeps_quotes() -> None:
    assert escape('<b>Extras > "Konten" & mehr</b>') == (
        '&lt;b&gt;Extras &gt; "Konten" &amp; mehr&lt;/b&gt;'
    )
    assert escape("&amp;") == "&amp;amp;"  # escaped once more: the user sees what was written


def test_short_text_stays_one_piece() -> None:
    assert split_text("Hallo\n\nWelt") == ["Hallo\n\nWelt"]


def test_long_text_is_split_at_line_breaks_into_pieces_of_at_most_the_limit() -> None:
    lines = [f"Zeile {number:03}" for number in range(100)]  # 9 characters each
    pieces = split_text("\n".join(lines), limit=95)

    assert all(len(piece) <= 95 for piece in pieces)
    assert [len(piece.split("\n")) for piece in pieces] == [9] * 11 + [1]  # 9*9+8 = 89 <= 95
    assert "\n".join(pieces) == "\n".join(lines)


def test_a_cut_at_a_blank_line_leaves_no_blank_piece() -> None:
    text = "a" * 10 + "\n\n" + "b" * 10
    assert split_text(text, limit=10) == ["a" * 10, "b" * 10]


def test_an_overlong_line_is_cut_between_words_and_an_overlong_word_anywhere() -> None:
    assert split_text("eins zwei drei vier", limit=9) == ["eins zwei", "drei vier"]
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_length_is_counted_as_telegram_does_so_emoji_count_twice() -> None:
    assert telegram_length("👋") == 2
    assert telegram_length("ä€") == 2
    assert split_text("👋" * 6, limit=4) == ["👋👋", "👋👋", "👋👋"]


def test_the_limit_applies_to_the_text_before_escaping() -> None:
    # Telegram counts characters after parsing the entities: "&" counts once, not as "&amp;".
    messages = render_reply(Reply("&" * 4096))
    assert len(messages) == 1
    assert messages[0].html == "&amp;" * 4096


def test_the_buttons_go_with_the_last_piece_of_a_long_reply() -> None:
    reply = Reply("\n".join(["x" * 4000] * 3), (Option("Weiter", "next_step"),))
    messages = render_reply(reply, version=7)
    assert [message.keyboard is not None for message in messages] == [False, False, True]
    last = messages[-1].keyboard
    assert last is not None
    assert last.inline_keyboard[0][0].text == "Weiter"
    assert last.inline_keyboard[0][0].callback_data == "7|next_step"


def test_short_payloads_travel_as_they_are_with_the_conversation_version() -> None:
    assert callback_data("inform:client=thunderbird", 12) == "12|inform:client=thunderbird"


def test_a_very_long_payload_becomes_a_digest_within_64_bytes_and_is_found_again() -> None:
    long_payload = "inform:guide=" + "sehr-lange-anleitung-" * 20
    umlaut_payload = "inform:guide=" + "ä" * 30  # 73 bytes in UTF-8
    options = [Option("Lang", long_payload), Option("Umlaute", umlaut_payload)]
    markup = keyboard(options, version=123_456_789)
    assert markup is not None
    data = [row[0].callback_data for row in markup.inline_keyboard]

    assert all(isinstance(d, str) and len(d.encode()) <= MAX_CALLBACK_DATA for d in data)
    assert data[0] != data[1]
    assert option_for(str(data[0]), options, 123_456_789) == options[0]
    assert option_for(str(data[1]), options, 123_456_789) == options[1]


def test_a_button_of_another_version_or_not_offered_is_not_found() -> None:
    options = [Option("Erledigt – weiter", "next_step")]
    assert option_for("3|next_step", options, 3) == options[0]
    assert option_for("3|next_step", options, 4) is None  # asked before the last turn
    assert option_for("4|restart", options, 4) is None  # not offered
    assert option_for("next_step", options, 4) is None  # forged
    # A payload that looks like a digest is itself sent as a digest, so it cannot be faked.
    tricky = [Option("Raute", "#abc")]
    assert option_for("4|#abc", tricky, 4) is None
    assert option_for(callback_data("#abc", 4), tricky, 4) == tricky[0]


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["g_thunderbird"], "g_thunderbird"),
        (["g_outlook_2010_2016"], "g_outlook_2010_2016"),
        (["a" * 64], "a" * 64),
        (["a" * 65], None),
        (["g_thunder<bird>"], None),
        (["g_thunderbird", "extra"], None),
        (["ticket.42"], None),
        ([], None),
    ],
)
def test_deep_link_payloads_are_64_characters_of_letters_digits_dash_and_underscore(
    args: list[str], argument: str | None
) -> None:
    assert deep_link_argument(args) == argument
