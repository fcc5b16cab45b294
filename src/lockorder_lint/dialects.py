"""Which databases a piece of code runs on.

Code often branches on the dialect (``if session.bind.dialect.name == "sqlite":``), and
SQLAlchemy-style packages keep one module tree per backend (``dialects/mssql/``). What such code
does on a database the project does not target (config ``dialects``) is not checked: SQLite has
no row locks, SQL Server does not abort a transaction on a failed statement, and so on.
"""

from __future__ import annotations

import ast

from lockorder_lint.names import called_name

# Names the checker knows; "mariadb" is folded into "mysql".
KNOWN = frozenset({"postgresql", "mysql", "sqlite", "oracle", "mssql"})
_ALIASES = {"mariadb": "mysql", "postgres": "postgresql", "psycopg2": "postgresql", "pymysql": "mysql"}
# ``self.using_sqlite``-style flags, by the dialect they stand for.
_FLAG_WORDS = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql", "postgres": "postgresql",
               "postgresql": "postgresql", "mssql": "mssql", "oracle": "oracle"}  # fmt: skip


def normalise(name: str) -> str:
    name = name.lower()
    return _ALIASES.get(name, name)


def _is_dialect_name(node: ast.AST) -> bool:
    """``dialect``, ``dialect_name``, ``conn.dialect.name``, ``op.get_bind().dialect.name``,
    ``get_dialect_name(session)``, ``session.bind.dialect.name``, ``self.db_type`` (MLflow's store)."""
    if isinstance(node, ast.Name):
        return node.id in ("dialect", "dialect_name", "db_dialect", "backend", "db_type")
    if isinstance(node, ast.Attribute):
        if node.attr in ("dialect_name", "dialect", "db_type"):
            return True
        return node.attr == "name" and isinstance(node.value, ast.Attribute) and node.value.attr == "dialect"
    if isinstance(node, ast.Call):
        name = called_name(node)
        return name in ("get_dialect_name", "dialect_name", "get_dialect")
    return False


def _flag_dialect(node: ast.AST) -> str | None:
    """``self.using_sqlite``, ``is_mysql``, ``settings.USING_SQLITE``: a flag naming one dialect."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    if name is None:
        return None
    lowered = name.lower()
    for prefix in ("using_", "is_", "use_", "on_"):
        if lowered.startswith(prefix) and lowered[len(prefix) :] in _FLAG_WORDS:
            return _FLAG_WORDS[lowered[len(prefix) :]]
    return None


def dialects_where_true(test: ast.AST) -> frozenset[str] | None:
    """The dialects for which a test like ``dialect == "sqlite"`` holds; None when the test is
    not about the dialect."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = dialects_where_true(test.operand)
        return None if inner is None else KNOWN - inner
    flag = _flag_dialect(test)
    if flag is not None:
        return frozenset({flag})
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    left, right = test.left, test.comparators[0]
    if _is_dialect_name(right) and not _is_dialect_name(left):
        left, right = right, left
    if not _is_dialect_name(left):
        return None
    values: list[ast.AST] = [right]
    if isinstance(right, (ast.Tuple, ast.List, ast.Set)):
        values = list(right.elts)
    names: set[str] = set()
    for value in values:
        named_as = _constant_dialect(value)
        if named_as is None:
            return None
        names.add(named_as)
    if not names:
        return None
    named = frozenset(names)
    op = test.ops[0]
    if isinstance(op, (ast.Eq, ast.In, ast.Is)):
        return named
    if isinstance(op, (ast.NotEq, ast.NotIn, ast.IsNot)):
        return KNOWN - named
    return None


def _constant_dialect(value: ast.AST) -> str | None:
    """``"sqlite"``, or a constant named for one dialect (MLflow's ``db_types.SQLITE``)."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return normalise(value.value)
    name = (
        value.attr if isinstance(value, ast.Attribute) else value.id if isinstance(value, ast.Name) else None
    )
    if name is not None and name.isupper() and normalise(name) in KNOWN:
        return normalise(name)
    return None


def module_dialect(module: str) -> str | None:
    """The backend a module belongs to by its package path (``sqlalchemy.dialects.mssql.pyodbc``,
    ``myapp.backends.sqlite``), if it names one."""
    parts = module.split(".")
    for index, part in enumerate(parts[:-1]):
        if part in ("dialects", "backends", "dialect"):
            candidate = normalise(parts[index + 1])
            if candidate in KNOWN:
                return candidate
    return None
