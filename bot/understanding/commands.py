"""`lotse nlu export` and `lotse nlu evaluate`: the bot's side of the Rasa project in `nlu/`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.config import Settings
from bot.knowledge.loader import load_knowledge
from bot.understanding.evaluation import ExamplesFileError, evaluate_backend, load_examples
from bot.understanding.rasa import RasaUnavailable
from bot.understanding.training_data import NLU_DIR, export

__all__ = ["run_nlu_command"]


def run_nlu_command(settings: Settings, args: argparse.Namespace) -> int:
    knowledge = load_knowledge(settings.knowledge_dir)
    if args.nlu_command == "export":
        result = export(knowledge, NLU_DIR / "data")
        if args.check:
            if result.is_current():
                return 0
            print(f"{result.path} is stale: run `lotse nlu export`", file=sys.stderr)
            return 1
        changed = result.write()
        print(f"{result.path}: {'written' if changed else 'unchanged'}")
        return 0
    if args.nlu_command == "evaluate":
        try:
            examples = load_examples(args.file, knowledge)
            report = asyncio.run(
                evaluate_backend(args.backend, examples, knowledge, settings.rasa_url)
            )
        except ExamplesFileError as error:
            print(error, file=sys.stderr)
            return 1
        except RasaUnavailable as error:
            print(f"{error} (start it with scripts/nlu serve)", file=sys.stderr)
            return 2
        print(report.format())
        return 0
    raise ValueError(f"unknown nlu command {args.nlu_command!r}")
