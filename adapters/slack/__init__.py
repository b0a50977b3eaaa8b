"""Slack: the bolt app (``app``), Block Kit (``blocks``), who is clicking (``identity``),
rendering of posted messages (``messages``) and the outbox transport (``transport``)."""
