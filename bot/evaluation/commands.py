"""`lotse eval …`: measure a part of the bot on labelled data and print the figures.

`lotse eval redaction [--corpus FILE]` exits 1 when a password was left in or an ordinary
message raised a false alarm, so it can gate a change to the redaction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.evaluation import redaction


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluation = commands.add_parser("eval", help="measure the bot on labelled data")
    evaluations = evaluation.add_subparsers(dest="eval_command", required=True)
    redacting = evaluations.add_parser(
        "redaction", help="password redaction: precision, recall and every miss"
    )
    redacting.add_argument(
        "--corpus", type=Path, default=redaction.CORPUS, help="labelled messages (YAML)"
    )


def run(args: argparse.Namespace) -> int:
    report = redaction.evaluate(args.corpus)
    print(redaction.format_report(report))
    return 0 if not report.leaks and not report.false_alarms else 1
