#!/usr/bin/env python3
"""Prove the project's ClickHouse SQL on a current ClickHouse release.

The integration tests run against Debian's ClickHouse 18.16; users run
current releases. This script runs the same SQL on the ClickHouse embedded in
the `chdb` package (26.x), in one in-process session:

1. every statement of deploy/clickhouse/schema.sql, twice (migrate runs on
   every start, so each statement must be idempotent); as `trackedge migrate`
   does, an `ALTER TABLE db.t ADD COLUMN c ...` runs only when
   system.columns lacks the column;
2. the upgrade of an older install: tests/fixtures/schema-v1.sql (the schema
   as first released) into a second database, then the schema over it,
   which must leave every table with the same columns, types and order as
   the fresh install;
3. a couple of sample rows into each event table, built from
   system.columns so they follow the schema;
4. every statement of every src/sql/**/*.sql file (the queries the Rust code
   sends), with bound parameters replaced by sample literals;
5. every ```sql block under "## Queries" in docs/analytics.md (the queries
   documented for analysts, written against the database `trackedge`).

File conventions (the same as `trackedge migrate`):
- statements are separated by a line holding only `;`;
- lines starting with `--` are comments;
- `{database}` is the database name;
- in query files, `?` is a parameter bound by the Rust `clickhouse` crate; a
  comment `-- params: String, DateTime, UInt64` gives their types in order
  (without it every `?` becomes 1). `??` is a literal `?`, and `?fields` is
  the crate's column list: it becomes the `-- fields: a, b` comment's list,
  else `*`. Server-side `{name:Type}` parameters get a sample of Type.

Prints `ok  FILE:LINE  ...` or `FAIL FILE:LINE  ...` per statement run and
ends with `chdb: N passed, M failed`; exits 1 if anything failed, 2 when it
could not run at all.

Run it through scripts/chdb-check.sh, which provides chdb in a virtualenv.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_DATETIME = "toDateTime('2026-01-01 00:00:00')"
SAMPLE_DATE = "toDate('2026-01-01')"
SAMPLE_DECIMAL = "toDecimal64('1.5', 4)"


@dataclass
class Statement:
    """One statement of a .sql file: its text and where it starts."""

    path: Path
    line: int  # 1-based line of the statement's first non-comment line
    sql: str  # without comment lines
    comments: list[str]  # the `--` lines that belong to it, without `--`

    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def split_statements(path: Path) -> list[Statement]:
    """Split a file on lines holding only `;`, dropping `--` comment lines."""
    statements: list[Statement] = []
    body: list[str] = []
    comments: list[str] = []
    first_line = 0

    def flush() -> None:
        nonlocal body, comments, first_line
        sql = "\n".join(body).strip()
        if sql:
            statements.append(Statement(path, first_line, sql, comments))
        body, comments, first_line = [], [], 0

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped == ";":
            flush()
        elif stripped.startswith("--"):
            comments.append(stripped[2:].strip())
        else:
            if stripped and not first_line:
                first_line = number
            body.append(raw)
    flush()
    return statements


def base_type(type_name: str) -> str:
    """`Nullable(LowCardinality(String))` -> `String`; `DateTime('UTC')` -> `DateTime`."""
    t = type_name.strip()
    while True:
        m = re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", t)
        if not m:
            break
        t = m.group(1).strip()
    return t


def sample_literal(type_name: str, variant: int = 0) -> str:
    """A SQL literal of the given ClickHouse type; `variant` varies the value."""
    t = base_type(type_name)
    name = t.split("(", 1)[0]
    if name in ("String", "FixedString"):
        return "'x'" if variant == 0 else f"'x{variant}'"
    if name == "DateTime":
        return SAMPLE_DATETIME
    if name == "Date":
        return SAMPLE_DATE
    if re.fullmatch(r"U?Int(8|16|32|64|128|256)", name):
        return str(1 + variant)
    if name.startswith("Decimal"):
        return SAMPLE_DECIMAL
    if name.startswith("Float"):
        return "1.5"
    if name == "UUID":
        return f"toUUID('00000000-0000-0000-0000-00000000000{1 + variant}')"
    if name == "Array":
        return f"[{sample_literal(t[len('Array(') : -1], variant)}]"
    if name == "Tuple":
        # A list the Rust code binds as a tuple, for `x IN ?`: one element.
        return f"({sample_literal(t[len('Tuple(') : -1], variant)})"
    raise ValueError(f"no sample value for type {type_name!r}")


def substitute_placeholders(sql: str, params: list[str] | None, fields: str) -> str:
    """Replace the clickhouse crate's `?` placeholders outside quotes and comments."""
    out: list[str] = []
    used = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            # A quoted string or identifier: copy through its closing quote,
            # honouring backslash escapes and doubled quotes.
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(sql[i:j])
            i = j
        elif sql.startswith("??", i):
            out.append("?")
            i += 2
        elif sql.startswith("?fields", i):
            out.append(fields)
            i += len("?fields")
        elif c == "?":
            if params is None:
                out.append("1")
            else:
                if used >= len(params):
                    raise ValueError(
                        f"more `?` placeholders than the {len(params)} types in `-- params:`"
                    )
                out.append(sample_literal(params[used]))
            used += 1
            i += 1
        else:
            out.append(c)
            i += 1
    if params is not None and used != len(params):
        raise ValueError(f"`-- params:` lists {len(params)} types but the query has {used} `?`")
    text = "".join(out)
    # Server-side parameters `{name:Type}` (not `{database}`, which has no colon).
    return re.sub(r"\{\s*\w+\s*:\s*([^{}]+?)\s*\}", lambda m: sample_literal(m.group(1)), text)


def split_type_list(text: str) -> list[str]:
    """Split `String, Array(UInt64), Decimal(18, 4)` on top-level commas."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


class Checker:
    """Runs statements in one chdb session and keeps the score."""

    def __init__(self, session, database: str) -> None:
        self.session = session
        self.database = database
        self.passed = 0
        self.failed = 0

    def run(self, label: str, sql: str, note: str = "") -> bool:
        try:
            self.session.query(sql, "CSV")
        except Exception as e:  # chdb raises its own error types; all mean failure
            self.failed += 1
            message = str(e).strip()
            print(f"FAIL {label}  {message.splitlines()[0] if message else type(e).__name__}")
            for line in sql.splitlines():
                print(f"       | {line}")
            return False
        self.passed += 1
        print(f"ok  {label}  {note or summary(sql)}")
        return True

    def fail(self, label: str, message: str) -> None:
        self.failed += 1
        print(f"FAIL {label}  {message}")

    def run_schema_statement(self, label: str, sql: str, note: str) -> bool:
        """Run one schema statement as `trackedge migrate` does: an
        `ADD COLUMN` only when the column is missing."""
        m = re.match(r"ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ADD\s+COLUMN\s+(\w+)\s", sql)
        if m:
            database, table, column = m.groups()
            if any(name == column for name, _ in self.columns(table, database)):
                self.passed += 1
                print(f"ok  {label}  (column exists, skipped) {note}")
                return True
        return self.run(label, sql, note)

    def columns(self, table: str, database: str | None = None) -> list[tuple[str, str]]:
        """Insertable (name, type) columns of a table, or [] if it does not exist."""
        database = database or self.database
        out = self.session.query(
            "SELECT name, type FROM system.columns "
            f"WHERE database = '{database}' AND table = '{table}' "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') "
            "ORDER BY position",
            "TabSeparated",
        )
        rows = []
        for line in str(out).splitlines():
            if line:
                name, type_name = line.split("\t", 1)
                rows.append((name, type_name))
        return rows


def summary(sql: str) -> str:
    first = " ".join(sql.split())
    return first if len(first) <= 70 else first[:67] + "..."


def insert_samples(checker: Checker, table: str) -> None:
    """Two rows into `table`, every value from its type (variant 0 and 1).

    Variant 0 uses the same values as the `-- params:` substitution ('x', 1,
    2026-01-01), so parameterised lookups find a row.
    """
    label = f"sample rows:{table}"
    try:
        cols = checker.columns(table)
    except Exception as e:
        checker.fail(label, f"cannot read system.columns: {e}")
        return
    if not cols:
        checker.fail(label, f"table {checker.database}.{table} does not exist after the schema ran")
        return
    try:
        rows = [
            "(" + ", ".join(sample_literal(t, variant) for _, t in cols) + ")"
            for variant in (0, 1)
        ]
    except ValueError as e:
        checker.fail(label, str(e))
        return
    names = ", ".join(f"`{name}`" for name, _ in cols)
    checker.run(
        label,
        f"INSERT INTO {checker.database}.{table} ({names}) VALUES {', '.join(rows)}",
        note=f"2 rows into {table}",
    )


def all_columns(checker: Checker, database: str) -> list[tuple[str, str, str]]:
    """(table, name, type) of every column of `database`, in table order."""
    out = checker.session.query(
        "SELECT table, name, type FROM system.columns "
        f"WHERE database = '{database}' ORDER BY table, position",
        "TabSeparated",
    )
    return [tuple(line.split("\t", 2)) for line in str(out).splitlines() if line]


def check_upgrade(checker: Checker, old_schema: Path, schema: list[Statement]) -> None:
    """Install the old schema into `{database}_upgrade`, migrate it, and
    compare its columns with the fresh install's."""
    upgraded = f"{checker.database}_upgrade"
    for st in split_statements(old_schema):
        checker.run(st.where(), st.sql.replace("{database}", upgraded), "(old) " + summary(st.sql))
    for st in schema:
        sql = st.sql.replace("{database}", upgraded)
        checker.run_schema_statement(st.where(), sql, "(upgrade) " + summary(sql))
    label = "upgrade:columns"
    fresh, after = all_columns(checker, checker.database), all_columns(checker, upgraded)
    if fresh == after:
        checker.passed += 1
        print(f"ok  {label}  an upgraded install has the fresh install's {len(fresh)} columns")
    else:
        missing = [c for c in fresh if c not in after]
        extra = [c for c in after if c not in fresh]
        checker.fail(label, f"upgraded columns differ: missing {missing}, extra {extra}, or order")


def documented_queries(path: Path) -> list[tuple[str, str]]:
    """The ```sql blocks after the "## Queries" heading, with where each starts."""
    out: list[tuple[str, str]] = []
    in_queries = False
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("## "):
            in_queries = line.strip() == "## Queries"
        elif in_queries and line.strip() == "```sql":
            block, start = [], number + 1
        elif block is not None and line.strip() == "```":
            out.append((f"{path.relative_to(ROOT)}:{start}", "\n".join(block)))
            block = None
        elif block is not None:
            block.append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", type=Path, default=ROOT / "deploy/clickhouse/schema.sql")
    parser.add_argument("--sql-dir", type=Path, default=ROOT / "src/sql")
    parser.add_argument(
        "--old-schema", type=Path, default=ROOT / "tests/fixtures/schema-v1.sql"
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs/analytics.md")
    parser.add_argument("--database", default="trackedge")
    args = parser.parse_args()

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.database):
        print(f"chdb-check: invalid database name {args.database!r}", file=sys.stderr)
        return 2
    if not args.schema.is_file():
        print(f"chdb-check: schema file {args.schema} not found", file=sys.stderr)
        return 2

    try:
        from chdb import session as chdb_session
    except ImportError as e:
        print(f"chdb-check: cannot import chdb ({e}); run scripts/chdb-check.sh", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="chdb-check-") as tmp:
        sess = chdb_session.Session(tmp)
        try:
            version = str(sess.query("SELECT version()", "TabSeparated")).strip()
            print(f"chdb: ClickHouse {version}")
            checker = Checker(sess, args.database)

            schema = split_statements(args.schema)
            for attempt in (1, 2):
                for st in schema:
                    sql = st.sql.replace("{database}", args.database)
                    note = summary(sql) if attempt == 1 else "(again) " + summary(sql)
                    checker.run_schema_statement(st.where(), sql, note)

            if args.old_schema.is_file():
                check_upgrade(checker, args.old_schema, schema)
            else:
                checker.fail(str(args.old_schema), "old schema file not found")

            for table in ("clicks", "orphan_hits", "conversions", "postback_deliveries", "partner_payments",
                          "partner_bonuses"):
                insert_samples(checker, table)

            query_files = sorted(args.sql_dir.rglob("*.sql")) if args.sql_dir.is_dir() else []
            for path in query_files:
                for st in split_statements(path):
                    params = None
                    fields = "*"
                    for comment in st.comments:
                        m = re.match(r"params\s*:\s*(.*)$", comment, re.IGNORECASE)
                        if m:
                            params = split_type_list(m.group(1))
                        m = re.match(r"fields\s*:\s*(.*)$", comment, re.IGNORECASE)
                        if m:
                            fields = m.group(1).strip() or "*"
                    try:
                        sql = substitute_placeholders(st.sql, params, fields)
                    except ValueError as e:
                        checker.fail(st.where(), str(e))
                        continue
                    checker.run(st.where(), sql.replace("{database}", args.database))

            if args.docs.is_file():
                for where, sql in documented_queries(args.docs):
                    checker.run(where, sql.replace("trackedge.", f"{args.database}."))
            else:
                checker.fail(str(args.docs), "analytics document not found")
        finally:
            sess.close()

    print(f"chdb: {checker.passed} passed, {checker.failed} failed")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
