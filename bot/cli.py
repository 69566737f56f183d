"""The `lotse` command: chat in the terminal, inspect understanding, check the knowledge base."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.app import build_app
from bot.channels.console import ConsoleChannel
from bot.config import ConfigurationError, Settings
from bot.i18n import Translator, translator
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.render import guide_text, settings_text
from bot.knowledge.schema import SCHEMA_FILE, schema_text
from bot.profiles.export import export as export_autoconfig
from bot.storage.store import Store
from bot.understanding.lexicon import LexiconUnderstander
from bot.understanding.training_data import NLU_DIR
from bot.understanding.training_data import export as export_training_data

__all__ = ["main", "run_channel"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lotse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="chat with Lotse in the terminal")
    chat.add_argument("--user", default=None, help="whose conversation (default: your login)")
    chat.add_argument("--json", action="store_true", help="print each reply as a JSON line")
    chat.add_argument("--locale", choices=["de", "en"], default=None)

    understand = commands.add_parser("understand", help="show how messages are understood")
    understand.add_argument("--json", action="store_true", help="one JSON line per message")

    kb = commands.add_parser("kb", help="the knowledge base")
    kb_commands = kb.add_subparsers(dest="kb_command", required=True)
    validate = kb_commands.add_parser("validate", help="check every file; exit 1 on problems")
    validate.add_argument("directory", nargs="?", type=Path, default=None)
    schema = kb_commands.add_parser("schema", help="write knowledge/schema.json for editors")
    schema.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    diff = kb_commands.add_parser("diff", help="what users would see differently")
    diff.add_argument("old", help="a knowledge directory or a git revision")
    diff.add_argument("new", nargs="?", default=None, help="directory or revision (default: now)")
    translations = kb_commands.add_parser(
        "translations", help="list missing or stale English texts with the hash to store"
    )
    translations.add_argument("directory", nargs="?", type=Path, default=None)
    translations.add_argument(
        "--accept",
        action="store_true",
        help="after reviewing the English texts: store the new hashes of the stale ones",
    )
    show = kb_commands.add_parser(
        "show", help="print a guide as the bot shows it, or what a settings card holds"
    )
    show.add_argument("guide")
    show.add_argument("--locale", choices=["de", "en"], default="de")
    show.add_argument("--protocol", choices=["imap", "pop3"], default=None)
    show.add_argument("--knowledge", type=Path, default=None)

    check = commands.add_parser("check", help="test the mail server's encrypted ports")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--knowledge", type=Path, default=None, help="knowledge directory")
    check.add_argument("--ca-file", type=Path, default=None, help="trust these CAs (PEM)")
    check.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    check.add_argument("--locale", choices=["de", "en"], default=None)

    commands.add_parser("telegram", help="run the bot on Telegram (LOTSE_TELEGRAM_TOKEN)")
    commands.add_parser("matrix", help="run the bot on Matrix (LOTSE_MATRIX_*)")
    commands.add_parser(
        "serve", help="production: every configured channel, periodic jobs, HTTP (/healthz)"
    )

    nlu = commands.add_parser("nlu", help="the Rasa NLU project in nlu/")
    nlu_commands = nlu.add_subparsers(dest="nlu_command", required=True)
    nlu_export = nlu_commands.add_parser(
        "export", help="write lookup tables and synonyms from knowledge/ into nlu/data/"
    )
    nlu_export.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    evaluate = nlu_commands.add_parser("evaluate", help="accuracy of a back end on a test file")
    evaluate.add_argument("--backend", choices=["lexicon", "rasa", "combined"], default="combined")
    evaluate.add_argument("file", type=Path)

    autoconfig = commands.add_parser("autoconfig", help="mail client autoconfiguration files")
    autoconfig_commands = autoconfig.add_subparsers(dest="autoconfig_command", required=True)
    autoconfig_export = autoconfig_commands.add_parser(
        "export", help="write Thunderbird autoconfig and Outlook Autodiscover files into DIR"
    )
    autoconfig_export.add_argument("directory", type=Path)

    db = commands.add_parser("db", help="the database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply all migrations")

    from bot.evaluation.command import add_arguments as add_eval_commands
    from bot.tickets.commands import add_commands as add_ticket_commands

    add_ticket_commands(commands)  # tickets, handoff-link, purge
    add_eval_commands(commands)  # eval conversations
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    tr = translator(settings.locale)  # for agents and admins, as on the agents' desk
    try:
        if args.command == "chat":
            return asyncio.run(_chat(settings, args))
        if args.command == "understand":
            return _understand(settings, args)
        if args.command == "kb":
            return _kb(settings, args, tr)
        if args.command == "check":
            from bot.check.command import run_check_command

            return run_check_command(settings, args)
        if args.command in ("telegram", "matrix"):
            return run_channel(settings, args.command)
        if args.command == "serve":
            from bot.serve.process import run_serve

            return run_serve(settings)
        if args.command == "nlu":
            from bot.understanding.commands import run_nlu_command

            return run_nlu_command(settings, args)
        if args.command in ("tickets", "handoff-link", "purge"):
            return asyncio.run(_tickets(settings, args))
        if args.command == "eval":
            from bot.evaluation.command import run_eval_command

            return run_eval_command(settings, args)
        if args.command == "autoconfig":
            server = load_knowledge(settings.knowledge_dir).server
            for written in export_autoconfig(server, args.directory):
                print(written)
            return 0
        return asyncio.run(_db_upgrade(settings))
    except KnowledgeError as error:
        print(tr.gettext("Die Wissensbasis ist fehlerhaft:"), file=sys.stderr)
        print(error.report(), file=sys.stderr)
        return 1
    except ConfigurationError as error:
        print(error, file=sys.stderr)
        return 2


def run_channel(settings: Settings, name: str) -> int:
    """`lotse telegram`, `lotse matrix`: only that channel (and the periodic jobs), no HTTP
    server; run until SIGINT/SIGTERM. Exit code 2 for settings that cannot work, 1 when the
    channel fails."""
    from bot.serve.channels import kind
    from bot.serve.process import run_serve

    problem = kind(name).configuration_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    return run_serve(settings, only=name, http=False)


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    app = await build_app(settings)
    try:
        channel = ConsoleChannel(
            app.service, user=args.user or getpass.getuser(), as_json=args.json, locale=args.locale
        )
        await channel.run()
    finally:
        await app.close()
    return 0


async def _tickets(settings: Settings, args: argparse.Namespace) -> int:
    from bot.tickets.commands import run as run_ticket_command

    app = await build_app(settings, check=False)
    try:
        return await run_ticket_command(settings, app.tickets, args, app.agents_translator)
    finally:
        await app.close()


def _understand(settings: Settings, args: argparse.Namespace) -> int:
    understander = LexiconUnderstander(load_knowledge(settings.knowledge_dir))
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        result = understander.understand_now(text)
        if args.json:
            print(json.dumps(result.as_json(), ensure_ascii=False), flush=True)
        else:
            entities = ", ".join(f"{k}={v}" for k, v in result.entities.items())
            print(f"{result.intent} ({result.confidence:.2f}) {entities} guide={result.guide}")
    return 0


def _kb(settings: Settings, args: argparse.Namespace, tr: Translator) -> int:
    if args.kb_command == "validate":
        directory = args.directory or settings.knowledge_dir
        knowledge = load_knowledge(directory, require_translations=True)
        print(
            f"{directory}: OK – {len(knowledge.programs)} programs, "
            f"{len(knowledge.guides)} guides, {len(knowledge.faq)} FAQ entries "
            f"(revision {knowledge.revision})"
        )
        # Names, aliases and versions also feed Rasa's lookup tables: say when they moved
        # (only in a checkout: an installed bot, as in the Docker image, has no nlu/ project).
        nlu_data = NLU_DIR / "data"
        if nlu_data.is_dir() and not export_training_data(knowledge, nlu_data).is_current():
            print(
                tr.gettext(
                    "Namen, Aliasse oder Versionen haben sich geändert: bitte `lotse nlu export` "
                    "ausführen und committen; das Rasa-Modell wird danach neu trainiert "
                    "(scripts/nlu prepare)."
                )
            )
        return 0
    if args.kb_command == "schema":
        return _kb_schema(settings.knowledge_dir, check=args.check)
    if args.kb_command == "diff":
        from bot.knowledge.diff import run_diff

        return run_diff(settings.knowledge_dir, args.old, args.new)
    if args.kb_command == "translations":
        from bot.knowledge.review import run_translations

        directory = args.directory or settings.knowledge_dir
        return run_translations(directory, accept=args.accept, tr=tr)
    knowledge = load_knowledge(args.knowledge or settings.knowledge_dir)
    every = {**knowledge.guides, **knowledge.unpublished}
    guide = every.get(args.guide)
    if guide is None and args.guide in knowledge.cards:
        print(_card_preview(knowledge, args.guide, args.protocol, args.locale))
        return 0
    if guide is None:
        known = ", ".join([*every, *knowledge.cards])
        print(f"unknown guide or card '{args.guide}'; known: {known}", file=sys.stderr)
        return 1
    if not guide.published:
        print(
            tr.gettext("({guide}: published: false – Nutzern noch nicht angeboten)").format(
                guide=args.guide
            )
        )
    print(guide_text(guide.localized(args.locale), args.protocol, translator(args.locale)))
    return 0


def _card_preview(knowledge: KnowledgeBase, card_id: str, protocol: str | None, locale: str) -> str:
    """What a settings card holds, for admins (the engine words it for users)."""
    card = knowledge.settings_card(card_id, protocol)
    lines = [f"== {card.name.get(locale)} (card {card_id})"]
    if card.discontinued:
        lines.append("discontinued: true")
    lines += [f"note: {note.get(locale)}" for note in card.notes]
    lines.append(f"setup: {', '.join(card.setup) or '–'}")
    lines.append(f"login name: {card.login_name} (e.g. {card.login_example})")
    lines.append(settings_text(knowledge, protocol, translator(locale)))
    return "\n".join(lines)


def _kb_schema(directory: Path, *, check: bool) -> int:
    path = directory / SCHEMA_FILE
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == schema_text():
        print(f"{path} is up to date")
        return 0
    if check:
        print(f"{path} is stale: run `lotse kb schema`", file=sys.stderr)
        return 1
    path.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


async def _db_upgrade(settings: Settings) -> int:
    store = await Store.open(settings.database_url, migrate=False)
    try:
        await store.upgrade()
    finally:
        await store.close()
    print("database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
