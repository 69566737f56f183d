"""Which language Lotse answers in: the user's first messages, a request, or the channel's code."""

from __future__ import annotations

from bot.conversation import ConversationService
from bot.turns import Inbound
from tests.support import Chat


async def test_an_english_message_on_a_channel_without_language_gets_english_guide_steps(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Hello, I need help with my email encryption")
    assert "Which mail program do you use?" in chat.text
    await chat.say("Thunderbird 60")
    assert "Step 1 of 5" in chat.text
    assert 'Open the account settings ("Konten-Einstellungen")' in chat.text
    assert "Erledigt" not in chat.options


async def test_a_german_user_on_an_english_phone_who_writes_german_is_answered_in_german(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    chat.replies = await service.handle(
        Inbound(chat.channel, chat.user, text="Hallo, ich habe Thunderbird 60", locale="en-US")
    )
    assert "Schritt 1 von 5" in chat.text
    assert "Rufen Sie über" in chat.text


async def test_names_versions_and_ok_do_not_change_the_channels_language(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    for text in ["hi", "Outlook 2016", "ok"]:
        chat.replies = await service.handle(
            Inbound(chat.channel, chat.user, text=text, locale="en")
        )
    assert "Step 1 of 4" in chat.text


async def test_english_please_and_deutsch_bitte_switch_at_any_time(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Hallo")
    await chat.say("English please")
    assert "from now on I'll write in English" in chat.text
    await chat.say("Thunderbird 60")
    assert "Step 1 of 5" in chat.text
    await chat.say("Deutsch bitte")
    assert "ab jetzt schreibe ich auf Deutsch" in chat.text
    assert "Schritt 1 von 5" in chat.text


async def test_a_user_who_chose_a_language_is_not_switched_back_by_what_they_write(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Thunderbird 60")
    await chat.say("can you speak english?")
    await chat.say("ich finde den Punkt nicht, wo ist das?")
    assert "the menu bar is hidden" in chat.text  # the step's help, in English
    await chat.say("weiter")
    assert "Step 2 of 5" in chat.text


async def test_a_quoted_german_error_does_not_switch_an_english_conversation(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("Hi, I use Thunderbird 60 on my laptop")
    await chat.say("it says: Die Verbindung zum Server wurde leider unterbrochen")
    await chat.say("next")
    assert "Step 2 of 5" in chat.text


async def test_a_pasted_english_error_does_not_settle_the_language_of_a_german_user(
    service: ConversationService,
) -> None:
    chat = Chat(service)
    await chat.say("530 5.7.0 Must issue a STARTTLS command first")
    await chat.say("ich habe Thunderbird")
    assert "Welche Version von Mozilla Thunderbird haben Sie?" in chat.text  # German
