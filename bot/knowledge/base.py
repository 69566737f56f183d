"""The loaded knowledge base: one immutable object the engine and understanding read from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.knowledge.models import FaqEntry, Guide, Helpdesk, Program, ProgramFile, Server


@dataclass(frozen=True)
class KnowledgeBase:
    server: Server
    helpdesk: Helpdesk
    programs: dict[str, Program]
    guides: dict[str, Guide]
    faq: list[FaqEntry]
    revision: str
    # guide id -> program id, and program id -> its guides in file order
    program_of_guide: dict[str, str] = field(default_factory=dict)
    guides_of_program: dict[str, list[Guide]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        server: Server,
        helpdesk: Helpdesk,
        programs: Sequence[ProgramFile],
        faq: Sequence[FaqEntry],
        revision: str,
    ) -> KnowledgeBase:
        programs = sorted(programs, key=lambda file: (file.program.order, file.program.name))
        return cls(
            server=server,
            helpdesk=helpdesk,
            programs={file.program.id: file.program for file in programs},
            guides={guide.id: guide for file in programs for guide in file.guides},
            faq=list(faq),
            revision=revision,
            program_of_guide={g.id: file.program.id for file in programs for g in file.guides},
            guides_of_program={file.program.id: list(file.guides) for file in programs},
        )

    def program_for(self, guide_id: str) -> Program:
        return self.programs[self.program_of_guide[guide_id]]
