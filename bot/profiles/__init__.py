"""Machine-readable forms of `server.yaml`: Apple profiles, Thunderbird autoconfig, Outlook
Autodiscover. All are built from `server.yaml` only, so an admin's change reaches the chat
guide, the connection check and every profile at once. Room: action handlers (below the
conversation service, which calls them)."""
