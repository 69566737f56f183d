"""The connection check: test the mail server's encrypted ports and explain the result.
Room: action handlers (below the conversation service, which calls them).

`check_server` (in `checker`) is the core; `command` is `lotse check`, `handler` the chat's
`RunCheck` service, `advice` the diagnosis of settings a user describes.
"""

from bot.check.checker import check_server
from bot.check.report import CheckReport

__all__ = ["CheckReport", "check_server"]
