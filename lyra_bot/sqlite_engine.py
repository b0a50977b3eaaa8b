"""Tortoise SQLite backend whose transactions begin with ``BEGIN IMMEDIATE``.

Tortoise serializes transactions inside one process with a lock, but a second process (the
CLI next to ``lyra-bot run``) would start a deferred transaction, read, and then fail with
"database is locked" on its first write. Taking the write lock at ``BEGIN`` makes it wait
for the busy timeout instead.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        # Autocommit connection (isolation_level=None): no implicit transaction to end first.
        try:
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
