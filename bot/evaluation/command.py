"""`lotse eval conversations`: run the conversation corpus through a throwaway service.
`lotse eval redaction`: password redaction on its labelled corpus (bot/evaluation/redaction.py);
exits 1 when a password was left in or an ordinary message raised a false alarm.

The service is the real one (store, understanding, engine, tickets) on a temporary SQLite
file, with nothing that leaves the machine: no connection check is registered (users who ask
for one get the helpdesk hint) and tickets queue no mail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from bot.app import build_app
from bot.channels.console import parse_line
from bot.config import Settings
from bot.engine.decision import Reply
from bot.evaluation import redaction
from bot.evaluation.conversations import CorpusError, CorpusReport, load_corpus, run_corpus
from bot.knowledge.loader import KnowledgeError

__all__ = ["CORPUS_DIR", "add_arguments", "evaluate_corpus", "run_eval_command"]

CORPUS_DIR = Path(__file__).resolve().parents[2] / "tests" / "conversations"


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluation = commands.add_parser("eval", help="measure the bot on test corpora")
    kinds = evaluation.add_subparsers(dest="eval_command", required=True)
    conversations = kinds.add_parser(
        "conversations", help="the share of corpus conversations that end helpfully"
    )
    conversations.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    conversations.add_argument("--kind", action="append", help="only these kinds")
    redacting = kinds.add_parser(
        "redaction", help="password redaction: precision, recall and every miss"
    )
    redacting.add_argument("--corpus", type=Path, default=redaction.CORPUS)


async def evaluate_corpus(
    settings: Settings, corpus: Path, kinds: list[str] | None = None
) -> CorpusReport:
    conversations = [c for c in load_corpus(corpus) if not kinds or c.kind in kinds]
    with tempfile.TemporaryDirectory(prefix="lotse-eval-") as directory:
        # Nothing leaves the machine: a throwaway database, no ticket mail, no hand-back links.
        throwaway = settings.model_copy(
            update={
                "database_url": f"sqlite:///{Path(directory) / 'eval.sqlite3'}",
                "helpdesk_email": None,
                "handoff_secret": None,
            }
        )
        app = await build_app(throwaway, check=False)

        async def handle(user: str, line: str, locale: str | None) -> list[Reply]:
            return await app.service.handle(parse_line(user, line, locale))

        try:
            return await run_corpus(conversations, handle)
        finally:
            await app.close()


def run_eval_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.eval_command == "redaction":
        redacted = redaction.evaluate(args.corpus)
        print(redaction.format_report(redacted))
        return 0 if not redacted.leaks and not redacted.false_alarms else 1
    try:
        report = asyncio.run(evaluate_corpus(settings, args.corpus, args.kind))
    except (CorpusError, KnowledgeError) as error:
        print(error, file=sys.stderr)
        return 2
    print(report.format())
    return 0
