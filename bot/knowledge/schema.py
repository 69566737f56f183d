"""JSON Schema of the knowledge files, generated from the models for editors' completion.

Every YAML file in `knowledge/` starts with `# yaml-language-server: $schema=schema.json`, so
editors with the YAML language server (VS Code, vim, Emacs) complete keys and flag mistakes
while admins type. `lotse kb schema` rewrites `knowledge/schema.json`; a test fails when it is
stale.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bot.knowledge.models import (
    CardsFile,
    DevicesFile,
    FaqFile,
    ProgramFile,
    ServerFile,
    TroubleshootingFile,
)

__all__ = ["EDITOR_COMMENT", "SCHEMA_FILE", "knowledge_schema", "schema_text"]

SCHEMA_FILE = "schema.json"
EDITOR_COMMENT = f"# yaml-language-server: $schema={SCHEMA_FILE}"


def knowledge_schema() -> dict[str, Any]:
    files: list[type[BaseModel]] = [
        ServerFile,
        ProgramFile,
        FaqFile,
        CardsFile,
        DevicesFile,
        TroubleshootingFile,
    ]
    _, top = models_json_schema([(model, "validation") for model in files])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Lotse knowledge file",
        "description": (
            "server.yaml, faq.yaml, cards.yaml, devices.yaml, troubleshooting.yaml, "
            "or one program family with its guides"
        ),
        "anyOf": [{"$ref": f"#/$defs/{model.__name__}"} for model in files],
        "$defs": top["$defs"],
    }


def schema_text() -> str:
    return json.dumps(knowledge_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
