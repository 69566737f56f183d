"""Numbers typed or sent by others are ASCII digits or nothing: "²" passes `str.isdigit()`
and made `int()` raise, "١" (Arabic-Indic one) was read as ticket 1. Users, agents and
forged buttons get a polite answer instead of an error."""

from __future__ import annotations

import pytest

from bot.app import App
from bot.conversation import ConversationService
from bot.numbers import ascii_number
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import AGENT_CHAT, Chat

ANNA = FakeUser(1001, "Anna", "de")
BERT = FakeUser(2001, "Bert", "de")


def test_only_ascii_digits_within_the_bound_are_numbers() -> None:
    assert ascii_number("12") == 12
    assert ascii_number("0012") == 12
    for forged in ("", "²", "١", "12²", "+1", "-1", " 1", "1 ", "1_000", "1.0", "1" * 10):
        assert ascii_number(forged) is None, forged
    assert ascii_number("65535", 5) == 65535
    assert ascii_number("655350", 5) is None


async def test_a_user_who_answers_with_a_superscript_two_gets_an_answer_not_an_error(
    service: ConversationService, caplog: pytest.LogCaptureFixture
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    assert chat.options  # a question with numbered options
    await chat.say("²")
    assert "schiefgegangen" not in chat.text
    assert "turn failed" not in caplog.text
    await chat.say("١")  # not option 1 either
    assert "schiefgegangen" not in chat.text


async def test_a_forged_button_or_ticket_number_in_the_agents_chat_is_refused_politely(
    telegram_api: FakeTelegram, agents_group_bot: None, tickets_app: App
) -> None:
    api = telegram_api
    anna = TelegramChat(api, ANNA)
    bert = TelegramChat(api, BERT, chat=api.group_chat(AGENT_CHAT))
    await anna.say("/mensch", mentions("Nummer 1"))
    await api.wait_for(lambda: bool(api.messages_to(AGENT_CHAT)), "the ticket card")
    card = api.messages_to(AGENT_CHAT)[0]
    bert.seen = 1

    for forged in ("desk:take:²", "desk:take:١", "desk:take:" + "9" * 40, "desk:take:-1"):
        query = api.user_taps(BERT, card, forged)

        def answered(query: str = query) -> list[dict[str, str]]:
            calls = api.calls_to("answerCallbackQuery")
            return [c.params for c in calls if c.params["callback_query_id"] == query]

        await api.wait_for(lambda: bool(answered()), f"the answer to {forged!r}")
        assert answered()[0]["text"] == "Diese Schaltfläche ist nicht mehr gültig.", forged

    for typed in ("/nehmen ²", "!nehmen ١", "/antwort ² Hallo"):
        await bert.say(typed, mentions("Bitte nennen Sie die Ticketnummer"))
    tickets = tickets_app.tickets
    ticket = await tickets.get(1)
    assert ticket is not None and ticket.status == "new"  # nobody took it
