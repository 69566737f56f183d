"""The Telegram channel with the real python-telegram-bot `Application`, long-polling the fake
Bot API server (`tests/servers/telegram_api.py`) on loopback, in the test's event loop."""

from __future__ import annotations

import asyncio
import plistlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from bot.channels.telegram import (
    ALLOWED_UPDATES,
    CHANNEL,
    AnyApplication,
    TelegramChannel,
    build_application,
)
from bot.config import Settings
from bot.conversation import ConversationService
from bot.engine.decision import Reply
from bot.engine.state import Option
from bot.storage.store import Store
from bot.turns import Inbound
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat, mentions
from tests.support import wait_until

ANNA = FakeUser(1001, "Anna", "de")
BERT = FakeUser(1002, "Bert", "de")
EMMA = FakeUser(1003, "Emma", "en-GB")


@dataclass(frozen=True)
class RunningBot:
    channel: TelegramChannel
    app: AnyApplication

    @property
    def store(self) -> Store:
        return self.channel.service.store


@asynccontextmanager
async def running_bot(
    api: FakeTelegram,
    service: ConversationService,
    allowed_groups: frozenset[int] = frozenset(),
) -> AsyncIterator[RunningBot]:
    """What `lotse telegram` runs, started the way `Application.run_polling` starts it."""
    settings = Settings(
        telegram_token=SecretStr(api.token), telegram_base_url=api.base_url, _env_file=None
    )
    app = build_application(settings)
    channel = TelegramChannel(service, allowed_groups=allowed_groups)
    channel.install(app)
    await app.initialize()
    await channel.register_commands(app.bot)
    assert app.updater is not None
    await app.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield RunningBot(channel, app)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


@pytest.fixture
async def bot(
    telegram_api: FakeTelegram, service: ConversationService
) -> AsyncIterator[RunningBot]:
    async with running_bot(telegram_api, service) as running:
        yield running


def chat(api: FakeTelegram, user: FakeUser = ANNA) -> TelegramChat:
    return TelegramChat(api, user)


async def test_a_whole_guide_by_buttons_removes_each_answered_keyboard(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("/start")
    assert "Hallo! Ich bin Lotse" in anna.text
    assert anna.last[-1].text == "Welches Mailprogramm benutzen Sie?"
    assert "Mozilla Thunderbird" in [label for label, _data in anna.last[-1].buttons]

    question = anna.last[-1]
    await anna.tap("Mozilla Thunderbird")
    assert question.buttons == []  # the answered question's buttons are gone
    await anna.tap("Thunderbird 60")  # the version: the seed's guide
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in anna.text
    for step in range(2, 6):
        await anna.tap("Erledigt – weiter")
        assert f"Schritt {step} von 5" in anna.text
    await anna.tap("Erledigt – weiter")
    assert "mbox1.belwue.de" in anna.text
    assert anna.last[-1].text == "Was möchten Sie als Nächstes tun?"

    answered = telegram_api.calls_to("answerCallbackQuery")
    assert len(answered) == 7
    assert {call.params["callback_query_id"] for call in answered} == {f"q{n}" for n in range(1, 8)}
    # Exactly one question still has buttons: the last one.
    assert [m.text for m in telegram_api.messages_to(ANNA.id) if m.buttons] == [
        "Was möchten Sie als Nächstes tun?"
    ]
    assert all(call.params["parse_mode"] == "HTML" for call in telegram_api.calls_to("sendMessage"))


async def test_a_whole_guide_by_typing_and_numbers(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("Hallo")
    assert anna.last[-1].text == "Welches Mailprogramm benutzen Sie?"
    await anna.say("ich nutze thunderbird 60")
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in anna.text
    await anna.say("weiter")
    assert "Schritt 2 von 5" in anna.text
    await anna.say("1")  # the first option, "Erledigt – weiter"
    assert "Schritt 3 von 5" in anna.text
    await anna.say("zurück")
    assert "Schritt 2 von 5" in anna.text
    for step in (3, 4, 5):
        await anna.say("erledigt")
        assert f"Schritt {step} von 5" in anna.text
    await anna.say("weiter")
    assert anna.last[-1].text == "Was möchten Sie als Nächstes tun?"
    assert telegram_api.calls_to("answerCallbackQuery") == []


async def test_a_button_of_an_earlier_question_gets_a_polite_answer_and_changes_nothing(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("/start")
    program_question = anna.last[-1]
    await anna.say("Thunderbird 60")  # typed: the program question keeps its buttons
    await anna.say("weiter")
    assert "Schritt 2 von 5" in anna.text

    query = anna.press("Android", program_question)
    await telegram_api.wait_for(lambda: program_question.buttons == [], "the old buttons to go")
    answers = [c.params for c in telegram_api.calls_to("answerCallbackQuery")]
    assert answers == [
        {
            "callback_query_id": query,
            "text": "Diese Schaltfläche ist nicht mehr aktuell. "
            "Bitte antworten Sie auf meine letzte Frage.",
        }
    ]
    await anna.say("nochmal")
    assert "Mozilla Thunderbird (60.3.1) – Schritt 2 von 5" in anna.text  # still Thunderbird


async def test_a_button_tapped_twice_counts_once(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("Thunderbird 60")
    step_one = anna.last[-1]
    first = anna.press("Erledigt – weiter")
    second = anna.press("Erledigt – weiter", step_one)  # before the keyboard is gone
    await anna.replies()
    assert "Schritt 2 von 5" in anna.text
    await telegram_api.wait_for(
        lambda: len(telegram_api.calls_to("answerCallbackQuery")) == 2, "both taps answered"
    )
    answers: dict[str, str] = {
        c.params["callback_query_id"]: c.params.get("text", "")
        for c in telegram_api.calls_to("answerCallbackQuery")
    }
    assert answers[first] == ""  # just acknowledged
    assert "nicht mehr aktuell" in answers[second]
    await anna.say("nochmal")
    assert "Schritt 2 von 5" in anna.text


async def test_a_deep_link_opens_its_guide_and_a_bad_one_gets_a_friendly_start(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("/start g_thunderbird")
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in anna.text

    for payload in ("g_thunder<bird>", "g_" + "x" * 70, "g_thunderbird extra", "g_nothing-known"):
        bert = chat(telegram_api, FakeUser(abs(hash(payload)) % 10**9 + 10**6, "Bert"))
        await bert.say(f"/start {payload}")
        assert "Hallo! Ich bin Lotse" in bert.text, payload
        assert bert.last[-1].text == "Welches Mailprogramm benutzen Sie?", payload


async def test_flood_control_in_the_middle_of_a_guide_delays_the_answer_but_loses_nothing(
    telegram_api: FakeTelegram, bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    anna = chat(telegram_api)
    await anna.say("Thunderbird 60")
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # silences PTB's notice about RetryAfter's type
    telegram_api.fail("sendMessage", code=429, retry_after=1)
    step_one = anna.last[-1]
    await anna.tap("Erledigt – weiter")
    assert "Schritt 2 von 5" in anna.text
    assert step_one.buttons == []
    await anna.tap("Erledigt – weiter")
    assert "Schritt 3 von 5" in anna.text

    texts = [call.params["text"] for call in telegram_api.calls_to("sendMessage")]
    step_two = [text for text in texts if "Schritt 2 von 5" in text]
    assert len(step_two) == 2  # refused once with 429, then sent again
    assert len([m for m in anna.api.messages_to(ANNA.id) if "Schritt 2 von 5" in m.text]) == 1


async def test_a_dropped_connection_is_retried(telegram_api: FakeTelegram, bot: RunningBot) -> None:
    anna = chat(telegram_api)
    await anna.say("Thunderbird 60")
    telegram_api.disconnect("sendMessage")
    await anna.say("weiter")
    assert "Schritt 2 von 5" in anna.text


async def test_two_users_at_once_each_get_their_own_answers_in_order(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna, bert = chat(telegram_api, ANNA), chat(telegram_api, BERT)
    for text in ("Thunderbird 60", "weiter", "weiter"):
        anna.send(text)
        bert.send({"Thunderbird 60": "Android"}.get(text, text))
    await anna.replies(mentions("Schritt 3 von 5"))
    await bert.replies(mentions("Schritt 3 von 6"))
    steps = [m.text.split("\n")[0] for m in telegram_api.messages_to(ANNA.id) if m.buttons]
    assert steps == [f"Mozilla Thunderbird (60.3.1) – Schritt {n} von 5" for n in (1, 2, 3)]
    assert all("Thunderbird" not in m.text for m in telegram_api.messages_to(BERT.id))


async def test_a_slow_turn_of_one_user_does_not_hold_up_another(
    telegram_api: FakeTelegram, bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = bot.channel.service
    handle = service.handle
    release = asyncio.Event()

    async def slow_for_anna(inbound: Inbound) -> list[Reply]:
        if inbound.user == str(ANNA.id):
            await release.wait()
        return await handle(inbound)

    monkeypatch.setattr(service, "handle", slow_for_anna)
    anna, bert = chat(telegram_api, ANNA), chat(telegram_api, BERT)
    anna.send("Thunderbird")
    await bert.say("Android")
    assert "Android" in bert.text
    assert anna.unseen() == []  # still thinking
    release.set()
    await anna.replies()
    assert "Mozilla Thunderbird" in anna.text


async def test_an_update_that_fails_gets_an_apology_and_the_bot_goes_on(
    telegram_api: FakeTelegram, bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = bot.channel.service
    handle = service.handle

    async def broken_on_kaputt(inbound: Inbound) -> list[Reply]:
        if inbound.text == "kaputt":
            raise RuntimeError("simulated bug")
        return await handle(inbound)

    monkeypatch.setattr(service, "handle", broken_on_kaputt)
    anna, bert = chat(telegram_api, ANNA), chat(telegram_api, BERT)
    anna.send("kaputt")
    await bert.say("Android")
    await anna.replies(mentions("schiefgegangen"))
    assert anna.text == (
        "Entschuldigung, da ist etwas schiefgegangen. Bitte versuchen Sie es gleich noch einmal."
    )
    await anna.say("Thunderbird 60")
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in anna.text
    await bert.say("weiter")
    assert "Schritt 2 von 6" in bert.text


async def test_html_special_characters_reach_the_user_as_written(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    written = "Mein Programm heißt <b>Outlook</b> & ich komme nicht weiter"
    await anna.say(written)
    assert "Welche Version von Microsoft Outlook haben Sie?" in anna.text
    transcript = await bot.store.transcript(CHANNEL, str(ANNA.id))
    assert transcript[0].text == written  # stored as written, not escaped

    # The knowledge base has its own: the iOS guide says "Passwörter & Accounts".
    await anna.say("/start g_ios")
    step = next(message for message in anna.last if "Passwörter & Accounts" in message.text)
    assert step.html is not None and "Passwörter &amp; Accounts" in step.html


async def test_a_long_reply_is_split_at_line_breaks_with_the_buttons_on_the_last_piece(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    lines = [f"Zeile {n}: <Einstellungen> & mehr – {'x' * 60}" for n in range(200)]
    reply = Reply("\n".join(lines), (Option("Weiter", "next_step"),))
    await bot.channel.send(bot.app.bot, ANNA.id, str(ANNA.id), [reply])

    sent = telegram_api.messages_to(ANNA.id)
    assert len(sent) == 5  # 16,800 characters
    assert all(len(message.text) <= 4096 for message in sent)
    assert all(set(message.text.split("\n")) <= set(lines) for message in sent)  # whole lines
    assert "\n".join(message.text for message in sent) == reply.text
    assert [bool(message.buttons) for message in sent] == [False, False, False, False, True]


async def test_the_users_telegram_language_picks_the_language_on_first_contact(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    emma = chat(telegram_api, EMMA)
    await emma.say("Hello")
    assert emma.last[-1].text == "Which mail program do you use?"
    await emma.tap("Mozilla Thunderbird")
    await emma.tap("Thunderbird 60")  # the version: the seed's guide
    assert [label for label, _data in emma.last[-1].buttons] == ["Done – next", "It doesn't work"]


async def test_the_command_menu_is_registered_in_german_and_english(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    german, english = telegram_api.commands[""], telegram_api.commands["en"]
    names = ["start", "neu", "pruefen", "mensch", "hilfe", "loeschen", "sprache", "bot"]
    assert [command["command"] for command in german] == names
    assert [command["command"] for command in english] == names
    assert german[1]["description"] == "Von vorne anfangen"
    assert english[1]["description"] == "Start over"


async def test_group_chats_are_ignored_unless_allowed(
    telegram_api: FakeTelegram, service: ConversationService
) -> None:
    allowed, other = -1001, -1002
    async with running_bot(telegram_api, service, allowed_groups=frozenset({allowed})):
        in_other = TelegramChat(telegram_api, ANNA, telegram_api.group_chat(other))
        in_other.send("Hallo")
        in_allowed = TelegramChat(telegram_api, ANNA, telegram_api.group_chat(allowed))
        await in_allowed.say("Hallo")
        assert "Welches Mailprogramm" in in_allowed.text
        await telegram_api.wait_for(lambda: telegram_api.pending_updates() == 0, "all read")
        assert telegram_api.messages_to(other) == []


async def test_a_user_who_blocked_the_bot_is_marked_and_not_messaged_until_they_write(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("Thunderbird 60")
    telegram_api.blocked_chats.add(ANNA.id)
    anna.send("weiter")
    await wait_until(lambda: bot.store.is_blocked(CHANNEL, str(ANNA.id)), "the user marked")
    refused = len(telegram_api.calls_to("sendMessage"))
    assert telegram_api.messages_to(ANNA.id)[-1].text.startswith("Mozilla Thunderbird")

    # Something the user did not ask for (an agent's answer, later) is not even tried.
    await bot.channel.send(bot.app.bot, ANNA.id, str(ANNA.id), [Reply("Nachricht vom Helpdesk")])
    assert len(telegram_api.calls_to("sendMessage")) == refused

    telegram_api.blocked_chats.clear()  # unblocked, and writes again
    await anna.say("nochmal")
    assert "Schritt 2 von 5" in anna.text
    assert not await bot.store.is_blocked(CHANNEL, str(ANNA.id))


async def test_a_photo_gets_a_polite_request_for_words(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("Thunderbird 60")
    telegram_api.user_sends_photo(ANNA)
    await anna.replies(mentions("Bilder, Dateien und Sprachnachrichten"))
    await anna.say("nochmal")
    assert "Schritt 1 von 5" in anna.text  # the guide goes on where it was


async def test_an_iphone_user_gets_the_configuration_profile_as_a_document(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("iPhone mit iOS 12")
    await anna.tap("Profil installieren")
    await anna.say("erika.muster@uni-beispiel.de")
    assert "So installieren Sie es" in anna.text
    ((chat_id, filename, content),) = telegram_api.documents
    assert chat_id == ANNA.id
    assert filename == "E-Mail-erika.muster.mobileconfig"
    assert plistlib.loads(content)["PayloadContent"][0]["EmailAddress"] == (
        "erika.muster@uni-beispiel.de"
    )


async def test_command_arguments_pass_the_same_gate_as_text_and_unknown_commands_are_answered(
    telegram_api: FakeTelegram, bot: RunningBot
) -> None:
    anna = chat(telegram_api)
    await anna.say("/hilfe mein Passwort ist Sommer Zeit 2024")
    assert "niemals Ihr Passwort" in anna.text
    assert "„weiter“" in anna.text
    await anna.say(
        "/mensch Kennwort: Blau#See7", until=lambda sent: any("Gern hilft" in m.text for m in sent)
    )
    assert "niemals Ihr Passwort" in anna.text
    await anna.say("/foo bar")
    assert "Diesen Befehl kenne ich nicht" in anna.text and "/mensch" in anna.text
    await anna.say("Hallo \ud800\x1b[31m Thunderbird 60")  # a lone surrogate, as JSON can carry
    assert "Mozilla Thunderbird (60.3.1) – Schritt 1 von 5" in anna.text

    stored = [m.text for m in await bot.store.transcript(CHANNEL, str(ANNA.id))]
    assert "/hilfe mein Passwort ist [Passwort entfernt]" in stored
    assert "/mensch Kennwort: [Passwort entfernt]" in stored
    assert "/foo bar" in stored
    assert "Hallo \ufffd Thunderbird 60" in stored
    joined = "\n".join(stored)
    assert "Sommer" not in joined and "Blau" not in joined and "\x1b" not in joined
