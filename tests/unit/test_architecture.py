"""The shape every service keeps (docs/architecture.md): SQL only in storage modules, HTTP only in
api modules (and the entry point that builds the app), I/O-free domain modules, one event-handler map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["intake", "router", "mediation", "audit"]
SHAPE = ["entry.py", "api.py", "handlers.py", "domain.py", "storage.py"]
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|COPY|TRUNCATE|LOCK)\s", re.I)
DB_CALLS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "copy_records_to_table", "copy_to_table"}
HTTP_MODULES = ("fastapi", "starlette", "uvicorn")
IO_MODULES = ("asyncpg", "aiokafka", "faststream", "fastapi", "starlette", "httpx", "shared.db", "shared.messaging")


def modules(service: str) -> list[Path]:
    return sorted((ROOT / "services" / service).rglob("*.py"))


def sql_in(tree: ast.AST) -> list[str]:
    """SQL statements written as string literals, and calls that send SQL to a connection."""
    found = [n.value.strip()[:40] for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.match(n.value)]
    found += [f".{n.func.attr}()" for n in ast.walk(tree) if isinstance(n, ast.Call)
              and isinstance(n.func, ast.Attribute) and n.func.attr in DB_CALLS]
    return found


def imports_of(tree: ast.AST) -> list[str]:
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_shape(service):
    present = {p.name for p in (ROOT / "services" / service).glob("*.py")}
    assert set(SHAPE) <= present, f"services/{service} lacks {sorted(set(SHAPE) - present)}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_grants_its_own_login_what_it_uses(service):
    text = (ROOT / "services" / service / "grants.sql").read_text(encoding="utf-8")
    grants = " ".join(line.split("--")[0] for line in text.splitlines())  # the statements, not the comments
    assert 'TO :"role"' in grants and "DELETE" not in grants and "TRUNCATE" not in grants


@pytest.mark.parametrize("service", SERVICES)
def test_sql_lives_only_in_storage(service):
    offenders = {str(p.relative_to(ROOT)): found for p in modules(service) if p.name != "storage.py"
                 if (found := sql_in(ast.parse(p.read_text(encoding="utf-8"))))}
    assert offenders == {}


@pytest.mark.parametrize("service", SERVICES)
def test_http_lives_only_in_api(service):
    offenders = {str(p.relative_to(ROOT)): [m for m in imports_of(ast.parse(p.read_text(encoding="utf-8")))
                                            if m.split(".")[0] in HTTP_MODULES]
                 for p in modules(service) if p.name not in ("api.py", "entry.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("service", SERVICES)
def test_domain_is_plain_python(service):
    tree = ast.parse((ROOT / "services" / service / "domain.py").read_text(encoding="utf-8"))
    assert [m for m in imports_of(tree) if m.startswith(IO_MODULES) or ".storage" in m or ".api" in m] == []


def test_the_checks_do_find_what_they_forbid():
    tree = ast.parse('async def f(conn):\n    return await conn.fetch("SELECT 1")\nimport fastapi\n')
    assert sql_in(tree) == ["SELECT 1", ".fetch()"]
    assert imports_of(tree) == ["fastapi"]
    assert sql_in(ast.parse('x = "select the unit above"')) == ["select the unit above"]  # errs towards strict


def test_domain_modules_load_no_io_library_even_indirectly():
    import subprocess
    import sys

    probe = ("import sys\n"
             "import services.intake.domain, services.router.domain, services.router.workflow, services.router.triage\n"
             "import services.mediation.domain, services.audit.domain\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'asyncpg', 'aiokafka', 'faststream', 'fastapi',"
             " 'starlette', 'httpx'}))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
