"""Drift checks of the deployment files against the code, without a Docker engine: every service,
command, port, health check, dependency and environment variable in docker-compose.yml (and the
security override) must be one the code really has; the Dockerfile is multi-stage and non-root; the
ACL script gives each department exactly its own topics."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer
import yaml
from dockerfile_parse import DockerfileParser

from services.cli import app
from shared import devstack, topics
from shared.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SECURE = yaml.safe_load((ROOT / "deploy" / "compose.secure.yml").read_text())
ONEWINDOW_SERVICES = ["topics-init", *devstack.SERVICE_PORTS, "simulator"]
OTEL_VARS = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}


def _settings_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names |= set(alias.choices) if alias is not None else {f"ONEWINDOW_{name.upper()}"}
    return names


def _cli_accepts(args: list[str]) -> None:
    command = typer.main.get_command(app)
    with command.make_context("onewindow", list(args), resilient_parsing=False) as ctx:
        sub = command.get_command(ctx, args[0])
        rest = args[1:]
        while isinstance(sub, click.Group):
            sub_ctx = sub.make_context(args[0], rest, parent=ctx)
            sub, rest = sub.get_command(sub_ctx, rest[0]), rest[1:]
        sub.make_context(sub.name, rest, parent=ctx)  # raises on an unknown option or a bad value


@pytest.mark.parametrize("service", ONEWINDOW_SERVICES)
def test_every_onewindow_service_runs_a_real_command_with_real_settings(service, monkeypatch):
    spec = COMPOSE["services"][service]
    assert spec["image"] == "onewindow:latest" and spec["build"]["dockerfile"] == "deploy/Dockerfile"
    _cli_accepts(spec["command"])
    env = {k: str(v) for k, v in spec["environment"].items()}
    unknown = set(env) - _settings_env_names() - OTEL_VARS
    assert not unknown, f"{service} sets variables no code reads: {unknown}"
    assert "KAFKA_BOOTSTRAP_SERVERS" in env
    if service in devstack.SERVICE_PORTS:  # own login for the service, the owner's only to migrate
        assert env["DATABASE_URL"].startswith(f"postgresql://onewindow_{service}:${{ONEWINDOW_{service.upper()}_DB")
        assert env["MIGRATION_DATABASE_URL"].startswith("postgresql://onewindow:")
    else:  # the topics job and the simulator never touch the database
        assert not {"DATABASE_URL", "MIGRATION_DATABASE_URL"} & set(env)
    for k, v in env.items():
        monkeypatch.setenv(k, re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", v))
    Settings()  # the values parse


@pytest.mark.parametrize(("service", "port"), list(devstack.SERVICE_PORTS.items()))
def test_services_listen_where_the_health_checks_and_ports_say(service, port):
    spec = COMPOSE["services"][service]
    assert spec["command"] == ["run", service, "--host", "0.0.0.0", "--port", str(port)]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"])
    assert all(p.endswith(f":{port}") for p in spec.get("ports", []))
    assert spec["restart"] == "unless-stopped"
    deps = spec["depends_on"]
    assert deps["kafka"]["condition"] == deps["postgres"]["condition"] == "service_healthy"
    assert deps["topics-init"]["condition"] == deps["db-logins"]["condition"] == "service_completed_successfully"


def test_every_service_login_gets_its_password_from_the_db_logins_job():
    job = COMPOSE["services"]["db-logins"]
    assert job["restart"] == "no" and job["entrypoint"] == ["bash", "/deploy/db-logins.sh"]
    script = (ROOT / "deploy" / "db-logins.sh").read_text()
    services = re.search(r"^for service in (.*); do$", script, re.M).group(1).split()
    assert services == list(devstack.SERVICE_PORTS)
    for service in services:
        assert f"${{ONEWINDOW_{service.upper()}_DB_PASSWORD:?" in job["environment"][f"{service.upper()}_DB_PASSWORD"]
        # the service logs in with the same password the job sets
        assert f"${{ONEWINDOW_{service.upper()}_DB_PASSWORD:?" in COMPOSE["services"][service]["environment"]["DATABASE_URL"]


def test_infrastructure_and_profiles():
    services = COMPOSE["services"]
    assert {"kafka", "postgres", "otel-collector", "jaeger"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics-init creates
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["topics-init"]["restart"] == "no"
    assert (ROOT / "deploy" / "otel-collector.yaml").exists()
    assert all(s["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector:")
               for n, s in services.items() if n in ONEWINDOW_SERVICES)


def test_dockerfile_is_multi_stage_non_root_and_carries_no_secrets():
    df = DockerfileParser(path=str(ROOT / "deploy" / "Dockerfile"))
    froms = [i for i in df.structure if i["instruction"] == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    users = [i["value"] for i in df.structure if i["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert "onewindow" in df.structure[-2]["value"] + df.structure[-1]["value"]  # ENTRYPOINT/CMD
    run_lines = " ".join(i["value"] for i in df.structure if i["instruction"] == "RUN")
    assert "-c requirements.lock" in run_lines, "the image installs the locked versions"
    assert not [k for k in df.envs if re.search(r"PASSWORD|TOKEN|SECRET", k)], "no credentials in the image"


def test_security_override_gives_every_service_its_own_principal_from_a_file():
    for service in ONEWINDOW_SERVICES:
        env = SECURE["services"][service]["environment"]
        assert env["ONEWINDOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["ONEWINDOW_KAFKA_PASSWORD_FILE"].startswith("/run/secrets/")
        assert "ONEWINDOW_KAFKA_PASSWORD" not in env, "passwords come from files"
        assert set(env) <= _settings_env_names()
    assert SECURE["services"]["kafka"]["environment"]["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"


def test_each_department_may_touch_only_its_own_topics():
    script = (ROOT / "deploy" / "kafka-acls.sh").read_text()
    for kind in ("police", "court", "petition"):
        grants = sorted(re.findall(rf"^allow {kind} (\w+) ([\w.]+)$", script, re.M))
        court = [("Read", "court.mediation"), ("Write", "court.referrals")] if kind == "court" else []
        assert grants == sorted([("Read", f"dispatch.{kind}"), ("Read", f"rejections.{kind}"),
                                 ("Write", f"feedback.{kind}"), *court])
        assert re.findall(rf"^group {kind} (.*)$", script, re.M) == [f"{kind}- prefixed"]


def test_topics_have_retention_set_in_one_place():
    assert set(topics.RETENTION_MS) == set(topics.ALL_TOPICS)
