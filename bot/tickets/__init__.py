"""Hand-over to helpdesk agents: tickets, ticket mail, hand-back links, retention."""
