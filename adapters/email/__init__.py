"""The email channel, one module per role.

``parsing`` (MIME, charsets, machine mail) and ``quotes`` (new text vs. quoted mail) read a
mail; ``grammar`` reads its command words; ``identity`` finds who is speaking; ``processing``
turns one mail into commands on the bus; ``answers`` writes what the sender gets back;
``imap`` polls a mailbox, ``webhook`` takes pushed mail over HTTP, ``smtp`` sends the outbox.
"""
