"""Hand-over to helpdesk agents: tickets, ticket mail, hand-back links, retention.
Room: action handlers (below the conversation service, which calls them)."""
