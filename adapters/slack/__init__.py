"""Slack: the bolt app put together (``app``) from its roles (``endpoint``, ``inbox``,
``workers``, ``listeners``, ``answers``, ``modals``, ``home``), Block Kit (``blocks``), who is
clicking (``identity``), rendering of posted messages (``messages``) and the outbox
transport (``transport``)."""
