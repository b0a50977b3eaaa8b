"""Queries Tortoise builds once and the hot paths run many times.

Tortoise builds a query's SQL afresh with pypika every time it is awaited; on the claim
path that costs more than the database round trip (a ``select_related`` of three models
builds some 60 column terms, copying the query for each). A ``Prepared`` query is written
as an ordinary queryset whose variable parts are named parameters; it is built once per
dialect, its SQL kept, and each call binds new values and lets Tortoise turn the rows into
models as usual. Constants in the queryset are inlined when it is built (they are code,
not input); every value given at call time is a bound parameter.

    LEAD = Prepared(lambda p: Lead.filter(tenant_id=p.tenant_id, ref=p.ref).limit(1))
    lead = await LEAD.first(tenant_id=1, ref="L-1042")

This module reaches into Tortoise's internals, so pyproject.toml pins ``tortoise-orm ~=1.1.9``
(1.1.x patch releases only). Before allowing another version, check that these still exist
and mean the same, then run ``tests/test_prepared.py`` and ``bench/claims.py`` on both stores:
``AwaitableQuery._make_query()`` and ``.query`` (a pypika query with our ``Parameter``
placeholders intact in ``get_sql()``), ``_select_related_idx`` on a queryset,
``db.executor_class(model=, db=, select_related_idx=)`` with ``execute_select(sql, values)``,
``executor.regular_columns`` and ``_prepare_insert_statement(columns, ignore_conflicts=True)``,
``Model._choose_db(for_write=)``, ``db.capabilities.dialect``, ``Field.to_db_value(value,
instance)`` and ``db.execute_many``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pypika_tortoise.terms import Parameter
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.queryset import AwaitableQuery, UpdateQuery

_MARK = "__lyra_param_{}__"
_MARKS = re.compile(r"__lyra_param_(\w+?)__")


class _Params:
    """``p.name`` in a query's builder: a placeholder for the value called ``name``."""

    def __getattr__(self, name: str) -> Parameter:
        return Parameter(_MARK.format(name))


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    query: AwaitableQuery  # the built queryset: its model and row-to-model mapping


class Prepared:
    """One query shape, built by Tortoise once per dialect and run with fresh values."""

    def __init__(self, build: Callable[[Any], AwaitableQuery]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}
        self._model: Any = None
        self._writes = False

    def _compile(self, db: BaseDBAsyncClient) -> _Compiled:
        dialect = db.capabilities.dialect
        compiled = self._compiled.get(dialect)
        if compiled is None:
            query = self._build(_Params())
            query._db = db
            query._make_query()
            names: list[str] = []

            def placeholder(match: re.Match[str]) -> str:
                names.append(match.group(1))
                return "?" if dialect == "sqlite" else f"${len(names)}"

            sql = _MARKS.sub(placeholder, query.query.get_sql())
            compiled = self._compiled[dialect] = _Compiled(sql, tuple(names), query)
        return compiled

    def _bind(self, values: dict[str, Any]) -> tuple[BaseDBAsyncClient, _Compiled, list[Any]]:
        if self._model is None:
            query = self._build(_Params())
            self._model, self._writes = query.model, isinstance(query, UpdateQuery)
        db = self._model._choose_db(for_write=self._writes)
        compiled = self._compile(db)
        return db, compiled, [values[name] for name in compiled.names]

    async def all(self, **values: Any) -> list[Any]:
        """The models the query selects (``select_related`` ones attached)."""
        db, compiled, args = self._bind(values)
        query = compiled.query
        executor = db.executor_class(
            model=query.model,
            db=db,
            select_related_idx=getattr(query, "_select_related_idx", None),
        )
        return await executor.execute_select(compiled.sql, args)

    async def first(self, **values: Any) -> Any | None:
        rows = await self.all(**values)
        return rows[0] if rows else None

    async def rows(self, **values: Any) -> tuple[int, list[Any]]:
        """(rows affected or returned, rows): for counts, ``EXISTS`` and updates."""
        db, compiled, args = self._bind(values)
        return await db.execute_query(compiled.sql, args)

    async def scalar(self, **values: Any) -> Any:
        """The first column of the first row (``COUNT(*)``)."""
        _, rows = await self.rows(**values)
        return next(iter(dict(rows[0]).values())) if rows else None

    async def exists(self, **values: Any) -> bool:
        count, _ = await self.rows(**values)
        return bool(count)

    async def update(self, **values: Any) -> int:
        """Rows changed by an ``UPDATE``."""
        count, _ = await self.rows(**values)
        return count


_INSERTS: dict[tuple[type[Model], str], tuple[str, list[str]]] = {}


async def insert_skipping_duplicates(objects: list[Model], batch_size: int = 500) -> None:
    """``bulk_create(objects, batch_size, ignore_conflicts=True)`` with its statement built once.

    Tortoise caches the plain ``INSERT`` of a model but builds the conflict-ignoring one
    on every call; the outbox writes one after every command.
    """
    model = type(objects[0])
    db = model._choose_db(for_write=True)
    key = (model, db.capabilities.dialect)
    if key not in _INSERTS:
        executor = db.executor_class(model=model, db=db)
        columns = list(executor.regular_columns)
        statement = executor._prepare_insert_statement(columns, ignore_conflicts=True)
        _INSERTS[key] = (statement.get_sql(), columns)
    sql, columns = _INSERTS[key]
    fields = model._meta.fields_map
    rows = [[fields[c].to_db_value(getattr(obj, c), obj) for c in columns] for obj in objects]
    for start in range(0, len(rows), batch_size):
        await db.execute_many(sql, rows[start : start + batch_size])
