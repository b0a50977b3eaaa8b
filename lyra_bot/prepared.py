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

Rows become models through a plan made once per query (``_Loader``): Tortoise's executor
splits every column name of a ``select_related`` row again for each row, reads the
``USE_TZ`` environment variable for every datetime and parses SQLite's timestamps with a
pure-Python ISO 8601 parser; on the claim path that cost three times the round trip.

This module reaches into Tortoise's internals, so pyproject.toml pins ``tortoise-orm ~=1.1.9``
(1.1.x patch releases only). Before allowing another version, check that these still exist
and mean the same, then run ``tests/test_prepared.py`` and ``bench/claims.py`` on both stores:
``AwaitableQuery._make_query()`` and ``.query`` (a pypika query with our ``Parameter``
placeholders intact in ``get_sql()``), ``_select_related_idx`` on a queryset,
``db.executor_class(model=, db=, select_related_idx=)`` with ``execute_select(sql, values)``,
``executor.regular_columns`` and ``_prepare_insert_statement(columns, ignore_conflicts=True)``,
``Model._choose_db(for_write=)``, ``db.capabilities.dialect``, ``Field.to_db_value(value,
instance)`` and ``db.execute_many``; for the loader and ``insert``: ``Model._meta``'s
``db_native_fields``, ``db_default_fields``, ``db_complex_fields``, ``db_fields``,
``db_pk_column``, ``generated_db_fields``, ``db_default_db_columns``, the instance flags set
by ``Model._init_from_db`` (``_partial``, ``_saved_in_db``, ``_custom_generated_pk``,
``_await_when_save``), related models kept as ``_<name>``, ``executor.insert_query`` and
``tortoise.timezone.get_use_tz``/``get_default_timezone``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pypika_tortoise.terms import Parameter
from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields import DatetimeField
from tortoise.fields.base import Field
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
    loader: _Loader | None = field(default=None, compare=False)


def _converter(field_: Field, kind: str) -> Callable[[Any], Any] | None:
    """How a non-null column value becomes the attribute's value (None: as it comes)."""
    if kind == "native":
        return None
    if kind == "default":
        return field_.field_type
    if isinstance(field_, DatetimeField):
        return _datetime_converter(field_)
    return field_.to_python_value


def _datetime_converter(field_: DatetimeField) -> Callable[[Any], Any]:
    """``DatetimeField.to_python_value`` with the settings read once and the C parser."""
    use_tz, zone = timezone.get_use_tz(), timezone.get_default_timezone()

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return field_.to_python_value(value)
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(zone) if use_tz else value.replace(tzinfo=None)
        return field_.to_python_value(value)

    return convert


class _Loader:
    """Turns a query's rows into models as Tortoise does, with a plan made on the first row.

    The plan lists, per model in the row (the queried one, then each ``select_related``
    one), the column positions, attribute names and converters; ``.only()`` models are
    marked partial, as Tortoise marks them.
    """

    def __init__(self, query: AwaitableQuery) -> None:
        model = query.model  # type: ignore[attr-defined]
        related = getattr(query, "_select_related_idx", None) or [(model, None, None, None, ())]
        self._related = related
        self._plan: list[tuple] | None = None

    def _make_plan(self, keys: Sequence[str]) -> list:
        plan, start = [], 0
        for n, (model, count, *_, full_path) in enumerate(self._related):
            count = len(keys) if count is None else count
            meta = model._meta
            kinds = {
                key: (attr, _converter(f, kind))
                for kind, fields_ in (
                    ("native", meta.db_native_fields),
                    ("default", meta.db_default_fields),
                    ("complex", meta.db_complex_fields),
                )
                for key, attr, f in fields_
            }
            columns = []
            for i in range(start, start + count):
                name = keys[i] if n == 0 else keys[i].split(".", 1)[1]
                if name in kinds:
                    columns.append((i, *kinds[name]))
            partial = len(columns) != len(meta.db_fields)
            custom_pk = meta.db_pk_column not in meta.generated_db_fields
            # the queried model is found under its own path, a related one under its parent's
            path, attr = (tuple(full_path[:-1]), full_path[-1]) if n else (tuple(full_path), None)
            plan.append((model, start, count, columns, partial, custom_pk, path, attr))
            start += count
        return plan

    def load(self, rows: Sequence[Any]) -> list[Model]:
        if not rows:
            return []
        if self._plan is None:
            self._plan = self._make_plan(list(rows[0].keys()))
        out = []
        for row in rows:
            values = tuple(row)
            made: dict[tuple, Any] = {}
            main: Any = None
            for model, start, count, columns, partial, custom_pk, path, attr in self._plan:
                if attr is not None and count and not any(values[start : start + count]):
                    obj = None
                else:
                    obj = model.__new__(model)
                    state = obj.__dict__
                    state["_partial"] = partial
                    state["_saved_in_db"] = True
                    state["_custom_generated_pk"] = custom_pk
                    state["_await_when_save"] = {}
                    for i, name, convert in columns:
                        value = values[i]
                        state[name] = value if convert is None or value is None else convert(value)
                if attr is None:
                    made[path] = main = obj
                    continue
                target = made.get(path)
                if target is not None:
                    target.__dict__[f"_{attr}"] = obj
                if obj is not None:
                    made[(*path, attr)] = obj
            out.append(main)
        return out


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
            loader = None if getattr(query, "_prefetch_map", None) else _Loader(query)
            compiled = self._compiled[dialect] = _Compiled(sql, tuple(names), query, loader)
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
        if compiled.loader is not None:
            _, rows = await db.execute_query(compiled.sql, args)
            return compiled.loader.load(rows)
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
_PLAIN_INSERTS: dict[tuple[type[Model], str], tuple[str, list[Field]]] = {}


async def insert(obj: Model) -> None:
    """``obj.save()`` of a new row: Tortoise's cached ``INSERT``, without building an
    executor and running the save hooks for each row (Lyra registers no signals).

    Models whose primary key is not generated, or with database-side defaults, are saved
    by Tortoise itself.
    """
    model = type(obj)
    db = model._choose_db(for_write=True)
    key = (model, db.capabilities.dialect)
    cached = _PLAIN_INSERTS.get(key)
    if cached is None:
        executor = db.executor_class(model=model, db=db)
        meta = model._meta
        if obj._custom_generated_pk or meta.db_default_db_columns:
            await obj.save(force_create=True)
            return
        fields_ = [meta.fields_map[c] for c in executor.regular_columns]
        cached = _PLAIN_INSERTS[key] = (executor.insert_query, fields_)
    sql, fields_ = cached
    result = await db.execute_insert(
        sql, [f.to_db_value(getattr(obj, f.model_field_name), obj) for f in fields_]
    )
    if isinstance(result, int):  # SQLite: the new row id
        obj.pk = result
    elif result is not None:  # PostgreSQL: the RETURNING row (the generated columns)
        reverse = model._meta.fields_db_projection_reverse
        for column, value in dict(result).items():
            if column in reverse:
                name = reverse[column]
                setattr(obj, name, model._meta.fields_map[name].to_python_value(value))
    obj._saved_in_db = True


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
