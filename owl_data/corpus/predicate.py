"""What a ``--where`` predicate of ``owl-data show`` may call: no settings or introspection.

The gallery's sandbox (:func:`owl_data.corpus.gallery._sandbox`) already stops file,
extension and configuration access; this check closes the read-only side channel, a yes/no
oracle on the session such as ``current_setting('home_directory') = '/root'``. The predicate
is parsed by DuckDB itself (``json_serialize_sql`` of ``SELECT * FROM t WHERE (...)``) and
its syntax tree walked: it is refused when it calls a settings or introspection function,
scalar or table (:data:`REFUSED_FUNCTIONS`, or a name starting with one of
:data:`REFUSED_PREFIXES`: ``duckdb_settings()``, ``pragma_version()``...), or reads a table other than ``t`` (the catalog views ``duckdb_tables``,
``information_schema.*``, ``pg_settings``...).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import duckdb

__all__ = ["REFUSED_FUNCTIONS", "REFUSED_PREFIXES", "predicate_problem"]

REFUSED_FUNCTIONS = frozenset({
    "current_setting", "getenv", "getvariable", "current_database", "current_catalog", "current_schema",
    "current_schemas", "current_user", "current_role", "session_user", "user", "version", "which_secret",
    "current_query", "current_connection_id", "current_transaction_id", "txid_current", "database_size",
    "col_description", "obj_description", "shobj_description", "format_type", "format_pg_type",
    "in_search_path", "platform", "extension_versions", "query", "query_table",
})
REFUSED_PREFIXES = ("duckdb_", "pragma_", "pg_", "has_")


def _nodes(doc: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object of a syntax tree, depth first."""
    stack = [doc]
    while stack:
        d = stack.pop()
        if isinstance(d, dict):
            yield d
            stack.extend(d.values())
        elif isinstance(d, list):
            stack.extend(d)


def predicate_problem(where: str) -> str | None:
    """Why ``where`` may not run in the sandbox (one line), or None when it may.

    A predicate DuckDB cannot parse is left to the query itself (which names the syntax
    error); only what parses is judged here.
    """
    con = duckdb.connect()
    try:
        con.execute("SET enable_external_access = false")
        text = con.execute("SELECT json_serialize_sql(?)", [f"SELECT * FROM t WHERE ({where})"]).fetchone()[0]
    finally:
        con.close()
    tree = json.loads(text)
    if tree.get("error"):
        return None
    for node in _nodes(tree.get("statements", [])):
        name = node.get("function_name")
        if isinstance(name, str) and (name.lower() in REFUSED_FUNCTIONS or name.lower().startswith(REFUSED_PREFIXES)):
            return (f"where may not call {name}(): settings and introspection functions are refused; "
                    "filter on the task table's columns")
        if node.get("type") == "BASE_TABLE" and (node.get("table_name") != "t" or node.get("schema_name")):
            return (f"where may read only the task table (t), not {node.get('table_name')!r}; "
                    "filter on the task table's columns")
    return None
