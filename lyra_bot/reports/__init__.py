"""Owner reports: numbers per tenant and period from rows and audit events, never logs.

- ``periods``: ISO weeks and date ranges, bounded by local midnights of the tenant's zone.
- ``load``: the facts of a report in a fixed number of queries (none per partner).
- ``metrics``: the arithmetic, pure (every metric, the reliability score).
- ``report``: ``build_report(tenant, period, now)``, the entry point.
- ``exports``: the JSON document (``lyra.report/1``), flat rows, formula-safe CSV.
- ``view``, ``labels``, ``table``, ``chart``: the report for reading, in de/fr/it/en.

docs/reports.md defines each metric and the JSON schema.
"""
