"""Room: channels. One module per chat platform (and its formatting), each a thin
translation between the platform and the conversation service; `base.py` is the lifecycle
`lotse serve` runs them by. Channels import neither the agents' chats nor the process."""
