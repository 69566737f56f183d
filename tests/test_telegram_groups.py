"""Lotse in an allowed Telegram group (LOTSE_TELEGRAM_ALLOWED_GROUPS), with the fake Bot API:
each member has a conversation of her own there, apart from her private chat with the bot, and
a tap on someone else's buttons is refused politely while her keyboard stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from bot.channels.telegram import ALLOWED_UPDATES, CHANNEL, TelegramChannel, build_application
from bot.config import Settings
from bot.conversation import ConversationService
from tests.servers.telegram_api import FakeTelegram, FakeUser, TelegramChat

GROUP = -1001
ANNA = FakeUser(1001, "Anna", "de")
CARLA = FakeUser(1003, "Carla", "de")


@asynccontextmanager
async def running_bot(api: FakeTelegram, service: ConversationService) -> AsyncIterator[None]:
    settings = Settings(
        telegram_token=SecretStr(api.token), telegram_base_url=api.base_url, _env_file=None
    )
    app = build_application(settings)
    TelegramChannel(service, allowed_groups=frozenset({GROUP})).install(app)
    await app.initialize()
    assert app.updater is not None
    await app.updater.start_polling(timeout=1, allowed_updates=ALLOWED_UPDATES)
    await app.start()
    try:
        yield
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


def in_group(api: FakeTelegram, user: FakeUser) -> TelegramChat:
    """A member writing in the group, having read what is there already."""
    chat = TelegramChat(api, user, api.group_chat(GROUP))
    chat.seen = len(api.messages_to(GROUP))
    return chat


async def test_a_private_conversation_does_not_continue_in_a_group_and_back(
    telegram_api: FakeTelegram, service: ConversationService
) -> None:
    api = telegram_api
    async with running_bot(api, service):
        private = TelegramChat(api, ANNA)
        await private.say("Thunderbird 60")
        assert "Schritt 1 von 5" in private.text
        anna = in_group(api, ANNA)
        await anna.say("weiter")  # in the group she has said nothing yet: no guide to go on with
        assert "Schritt 2" not in anna.text
        await anna.say("Outlook 2019")
        await private.say("weiter")  # her private guide is where she left it
        assert "Schritt 2 von 5" in private.text
        assert "Thunderbird" in private.text

    store = service.store
    assert await store.conversation(CHANNEL, str(ANNA.id)) is not None  # the key as before
    assert await store.conversation(CHANNEL, f"{GROUP}:{ANNA.id}") is not None


async def test_another_members_tap_on_her_buttons_is_refused_and_her_keyboard_stays(
    telegram_api: FakeTelegram, service: ConversationService
) -> None:
    api = telegram_api
    async with running_bot(api, service):
        anna = in_group(api, ANNA)
        await anna.say("Hallo")
        question = anna.last[-1]
        label, data = question.buttons[0]
        buttons = list(question.buttons)
        before = len(api.messages_to(GROUP))

        query = api.user_taps(CARLA, question, data)

        def answers() -> list[dict[str, str]]:
            calls = api.calls_to("answerCallbackQuery")
            return [call.params for call in calls if call.params["callback_query_id"] == query]

        await api.wait_for(lambda: bool(answers()), "the answer to Carla's tap")
        assert answers()[0]["text"].startswith(
            "Diese Schaltflächen gehören zum Gespräch einer anderen Person."
        )
        assert question.buttons == buttons  # Anna can still answer
        assert len(api.messages_to(GROUP)) == before
        assert await service.store.conversation(CHANNEL, f"{GROUP}:{CARLA.id}") is None

        await anna.tap(label)  # her own tap works as ever
        assert question.buttons == []
        assert len(api.messages_to(GROUP)) > before
