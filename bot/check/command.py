"""`lotse check`: check the server from the knowledge base, print the result, exit 0/1/2.

`--json` prints the report's JSON (one object, the output contract in `report`); without it a
German (or `--locale en`) summary and the details. Exit status: 0 all endpoints ok, 1 warnings,
2 errors (also when the check cannot start, e.g. an unreadable `--ca-file`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot.check import texts
from bot.check.checker import check_server
from bot.check.report import EXIT_CODES
from bot.config import Settings
from bot.i18n import translator
from bot.knowledge.loader import load_knowledge

__all__ = ["run_check_command"]


def run_check_command(settings: Settings, args: argparse.Namespace) -> int:
    knowledge = load_knowledge(args.knowledge or settings.knowledge_dir)
    timeout = args.timeout if args.timeout is not None else settings.check_timeout
    ca_file = args.ca_file or settings.check_ca_file
    tr = translator(args.locale or settings.locale)
    if ca_file is not None and not ca_file.is_file():
        print(f"--ca-file {ca_file}: no such file", file=sys.stderr)
        return 2
    if timeout <= 0:
        print("--timeout must be positive", file=sys.stderr)
        return 2
    report = asyncio.run(check_server(knowledge.server, timeout=timeout, ca_file=ca_file))
    if args.json:
        print(json.dumps(report.as_json(tr), ensure_ascii=False))
    else:
        print(texts.summary(report, tr))
        for block in texts.details(report, tr):
            print()
            print(block)
    return EXIT_CODES[report.overall]
