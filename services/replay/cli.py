"""`onewindow replay …` and `onewindow offsets …`: re-drive history safely.

Every command validates its arguments before it reads or writes anything; a bad one exits 2 with a
message. Long work shows a progress bar (on stderr); --dry-run says what would happen and writes nothing.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Callable, Iterator

import typer

replay_app = typer.Typer(help="Replay the event log: copy, publish, rebuild the audit, what-if routing, "
                              "one case's history.", no_args_is_help=True)
offsets_app = typer.Typer(help="Consumer-group offsets: lag, reset.", no_args_is_help=True)

Topics = Annotated[list[str] | None, typer.Option("--topic", help="a topic to read (repeatable)")]
AllCaseTopics = Annotated[bool, typer.Option("--all-case-topics", help="every topic a case's events travel on")]
FromOffset = Annotated[int | None, typer.Option(help="start at this offset in every partition")]
Since = Annotated[str | None, typer.Option(help="start at this time (ISO 8601 with offset, e.g. 2026-11-23T08:00+08:00)")]
Until = Annotated[str | None, typer.Option(help="leave out records after this time (ISO 8601 with offset)")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="say what would happen; write nothing")]


def fail(message: str) -> None:
    """Exit 2 with a message on stderr."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name}: {value!r} is not an ISO 8601 time")
    if t.tzinfo is None:
        fail(f"{name}: {value!r} has no UTC offset (add Z or +08:00)")
    return t


def settings_and_client():
    from shared.settings import tool_settings

    s = tool_settings()
    return s, s.kafka_client_options()


def run_async(coro):
    """Run a command's work; a LogError becomes exit 2 with its message."""
    from shared.messaging.log import LogError

    try:
        return asyncio.run(coro)
    except LogError as exc:
        fail(str(exc))


@contextmanager
def progress_bar(label: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(started(total), advance(n)) for a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield (lambda total: bar.update(task, total=total)), (lambda n: bar.advance(task, n))


def topic_list(topic: list[str] | None, all_case_topics: bool) -> list[str]:
    from shared import topics

    if all_case_topics and topic:
        fail("give --topic or --all-case-topics, not both")
    chosen = list(topics.CASE_TOPICS) if all_case_topics else list(dict.fromkeys(topic or []))
    if not chosen:
        fail("give --topic (repeatable) or --all-case-topics")
    return chosen


@replay_app.command("copy")
def copy_cmd(
    topic: Topics = None,
    all_case_topics: AllCaseTopics = False,
    from_offset: FromOffset = None,
    since: Since = None,
    until: Until = None,
    case: Annotated[list[str] | None, typer.Option(help="keep this case's events (repeatable)")] = None,
    event_type: Annotated[list[str] | None, typer.Option("--type", help="keep this event type (repeatable)")] = None,
    division: Annotated[str | None, typer.Option(help="keep cases in this division code (and below)")] = None,
    to_file: Annotated[Path | None, typer.Option(help="write JSON lines to this new file")] = None,
    to_prefix: Annotated[str | None, typer.Option(help="write to <prefix><topic>, e.g. sandbox.")] = None,
    to_topic: Annotated[str | None, typer.Option(help="write everything to this one topic")] = None,
    allow_live_topic: Annotated[bool, typer.Option("--allow-live-topic", help="allow a target the system reads")] = False,
    dry_run: DryRun = False,
) -> None:
    """Copy events unchanged (key, headers, timestamp) to a sandbox topic or a JSON-lines file."""
    from services.replay.copy import Filters, copy
    from shared.messaging.log import Range

    if division is not None and not division.isdigit():
        fail(f"--division {division!r} is not a division code")
    rng = Range(topic_list(topic, all_case_topics), from_offset, parse_time(since, "--since"),
                parse_time(until, "--until"))
    filters = Filters(frozenset(case or ()), frozenset(event_type or ()), division)
    s, client = settings_and_client()
    with progress_bar("copy") as (started, advance):
        r = run_async(copy(s.kafka_bootstrap_servers, rng, filters, to_file=to_file, to_prefix=to_prefix,
                           to_topic=to_topic, allow_live=allow_live_topic, dry_run=dry_run, progress=advance,
                           started=started, **client))
    verb = "would write" if dry_run else "wrote"
    typer.echo(f"read {r.read}, kept {r.kept}, {verb} {r.kept if dry_run else r.written}"
               + (f" to {', '.join(r.targets)}" if r.targets else ""))


@replay_app.command("publish")
def publish_cmd(
    file: Annotated[Path, typer.Argument(help="a JSON-lines file written by `replay copy --to-file`")],
    to_prefix: Annotated[str | None, typer.Option(help="publish each record to <prefix><its topic>")] = None,
    to_topic: Annotated[str | None, typer.Option(help="publish every record to this topic")] = None,
    allow_live_topic: Annotated[bool, typer.Option("--allow-live-topic", help="allow a target the system reads")] = False,
    dry_run: DryRun = False,
) -> None:
    """Publish a JSON-lines file to topics (checked whole first: a bad line publishes nothing)."""
    from services.replay.copy import publish

    s, client = settings_and_client()
    with progress_bar("publish") as (_started, advance):
        r = run_async(publish(s.kafka_bootstrap_servers, file, to_prefix=to_prefix, to_topic=to_topic,
                              allow_live=allow_live_topic, dry_run=dry_run, progress=advance, **client))
    typer.echo(f"{'would publish' if dry_run else 'published'} {r.kept if dry_run else r.written} records"
               f" to {', '.join(r.targets) or '-'}")


@replay_app.command("rebuild-audit")
def rebuild_audit_cmd(
    schema: Annotated[str, typer.Option(help="a new schema to rebuild into")],
    compare_with: Annotated[str | None, typer.Option(help="the live audit schema to compare with")] = "audit",
    dry_run: DryRun = False,
) -> None:
    """Rebuild the audit trace from the case topics into a fresh schema and compare it with the live one
    (counts per type, events only in one, chain heads). Exit 1 if they differ."""
    from shared import topics
    from services.replay.rebuild import compare_audit, rebuild_audit

    s, client = settings_and_client()
    with progress_bar("rebuild") as (started, advance):
        r = run_async(rebuild_audit(s.kafka_bootstrap_servers, s.database_url, schema, list(topics.CASE_TOPICS),
                                    dry_run=dry_run, progress=advance, started=started, **client))
    if dry_run:
        typer.echo(f"would read {r.read} records from {len(topics.CASE_TOPICS)} topics into schema {schema}")
        return
    typer.echo(f"read {r.read} records, recorded {r.recorded} events, {r.not_events} not CloudEvents")
    if not compare_with:
        return
    c = run_async(compare_audit(s.database_url, compare_with, schema, r.ends))
    from rich.console import Console
    from rich.table import Table

    t = Table("event type", compare_with, schema, title="events per type (up to the rebuild's end offsets)")
    for type_, (a, b) in c.counts.items():
        t.add_row(type_, str(a), str(b), style=None if a == b else "red")
    Console().print(t)
    typer.echo(f"cases {c.cases[0]} / {c.cases[1]}; chain heads equal {c.heads_equal}, differing {c.heads_differ}"
               " (same events, other arrival order)")
    typer.echo("match" if c.matches else f"DIFFERENT — first difference: {c.first_difference}")
    raise typer.Exit(0 if c.matches else 1)


@replay_app.command("what-if")
def what_if_cmd(
    catalogue: Annotated[Path | None, typer.Option(help="the candidate catalogue (TOML)")] = None,
    units: Annotated[Path | None, typer.Option(help="the candidate unit directory (TOML)")] = None,
    model: Annotated[Path | None, typer.Option(help="the candidate triage model (its manifest, triage-….json)")] = None,
    from_file: Annotated[Path | None, typer.Option(help="recorded events (JSON lines) instead of the topic")] = None,
    from_offset: FromOffset = None,
    since: Since = None,
    until: Until = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write one row per changed case")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write a report page")] = None,
    show: Annotated[int, typer.Option(help="cases listed per group in the terminal")] = 3,
) -> None:
    """Decide recorded received cases with the live and a candidate catalogue, units and/or triage model;
    report what would change (category, unit kind, unit, level, risk colour), grouped by the rule that
    made the difference."""
    from rich.console import Console
    from rich.table import Table

    from services.replay import whatif
    from services.replay.copy import read_lines
    from services.router import domain, triage
    from shared import topics
    from shared.messaging.log import Range, read, reader, resolve

    if catalogue is None and units is None and model is None:
        fail("give a candidate --catalogue, --units and/or --model")
    if from_file and (from_offset is not None or since or until):
        fail("--from-file reads the whole file; range options apply to the topic")
    for p in (catalogue, units, model):
        if p is not None and not p.is_file():
            fail(f"no such file: {p}")
    try:
        baseline = (domain.load_catalogue(), domain.load_units(), triage.load_active())
        candidate = (domain.load_catalogue(catalogue) if catalogue else baseline[0],
                     domain.load_units(units) if units else baseline[1],
                     triage.TriageModel.load(model) if model else baseline[2])
        domain.check_model(candidate[2], candidate[0])
    except Exception as exc:  # a broken candidate file: say why
        fail(f"cannot load the candidate: {type(exc).__name__}: {str(exc)[:500]}")

    async def records():
        if from_file:
            return list(read_lines(from_file))
        s, client = settings_and_client()
        rng = Range([topics.CASES_RECEIVED], from_offset, parse_time(since, "--since"), parse_time(until, "--until"))
        rng.validate()
        consumer = reader(s.kafka_bootstrap_servers, **client)
        await consumer.start()
        try:
            await resolve(consumer, rng)
            return [r async for batch in read(consumer, rng) for r in batch]
        finally:
            await consumer.stop()

    recs = run_async(records())
    cases, skipped = whatif.received_cases(recs)
    cases.sort(key=lambda c: (c.received_at, c.case_number))
    seen, changes = whatif.compare(cases, baseline, candidate)
    before = f"{baseline[0].version}+{baseline[2].version}"
    after = f"{candidate[0].version}+{candidate[2].version}"
    t = Table("cause", "cases", "fields", "examples",
              title=f"what-if {before} → {after}: {seen} cases, {len(changes)} change"
                    f" ({skipped} other records skipped)")
    for cause, items in whatif.groups(changes):
        fields = sorted({f for c in items for f in c.fields})
        t.add_row(cause, str(len(items)), " ".join(fields), " ".join(c.case_number for c in items[:show]))
    Console(width=160).print(t)
    if csv_out:
        csv_out.write_text(whatif.to_csv(changes), encoding="utf-8")
    if html_out:
        html_out.write_text(whatif.to_html(seen, changes, before, after),
                            encoding="utf-8")


@replay_app.command("case")
def case_cmd(
    case_id: Annotated[str, typer.Argument(help="the case id (the events' key)")],
    schema: Annotated[str, typer.Option(help="the audit schema")] = "audit",
) -> None:
    """A case's history from the topics beside its audit timeline; flags what one has and the other lacks.
    Exit 1 if they differ."""
    from rich.console import Console
    from rich.table import Table

    from services.replay.rebuild import case_history
    from shared import topics

    s, client = settings_and_client()
    lines = run_async(case_history(s.kafka_bootstrap_servers, s.database_url, schema, case_id,
                                   list(topics.CASE_TOPICS), **client))
    if not lines:
        fail(f"no events for case {case_id} in the topics or the audit trace")
    t = Table("time", "type", "topic", "topics", "audit", title=f"case {case_id}")
    for h in lines:
        t.add_row(h.time, h.type.removeprefix("org.onewindow."), h.topic, "✓" if h.in_topics else "MISSING",
                  "✓" if h.in_audit else "MISSING", style=None if h.in_topics and h.in_audit else "red")
    Console(width=160).print(t)
    missing = sum(1 for h in lines if not (h.in_topics and h.in_audit))
    typer.echo(f"{len(lines)} events; {missing} in only one of them")
    raise typer.Exit(1 if missing else 0)


@offsets_app.command("show")
def offsets_show(
    group: Annotated[str, typer.Option(help="the consumer group (a service's: intake, router, audit, …)")],
    topic: Topics = None,
) -> None:
    """Committed offset, end offset and lag per partition."""
    from rich.console import Console
    from rich.table import Table

    from shared import topics
    from shared.messaging.log import LogError, existing_topics, group_lag

    s, client = settings_and_client()

    async def work():
        known = await existing_topics(s.kafka_bootstrap_servers, **client)
        wanted = list(dict.fromkeys(topic)) if topic else [t for t in topics.ALL_TOPICS if t in known]
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise LogError(f"unknown topic(s): {', '.join(unknown)}")
        return await group_lag(s.kafka_bootstrap_servers, group, wanted, **client)

    rows = run_async(work())
    if not topic:
        rows = [r for r in rows if r.committed is not None]
    t = Table("topic", "partition", "committed", "end", "lag", title=f"group {group}")
    for r in rows:
        t.add_row(r.topic, str(r.partition), "-" if r.committed is None else str(r.committed), str(r.end), str(r.lag))
    Console(width=160).print(t)
    typer.echo(f"total lag {sum(r.lag for r in rows)}")


@offsets_app.command("reset")
def offsets_reset(
    group: Annotated[str, typer.Option(help="the consumer group")],
    topic: Annotated[list[str], typer.Option("--topic", help="a topic to reset (repeatable)")],
    to_earliest: Annotated[bool, typer.Option("--to-earliest")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest")] = False,
    to_offset: Annotated[int | None, typer.Option("--to-offset", help="this offset in every partition")] = None,
    to_time: Annotated[str | None, typer.Option("--to-time", help="the first record at/after this time")] = None,
    dry_run: DryRun = False,
) -> None:
    """Move a stopped group's offsets (like kafka-consumer-groups --reset-offsets); refuses while a member
    of the group is alive."""
    from shared.messaging.log import reset_group

    chosen = [name for name, on in (("earliest", to_earliest), ("latest", to_latest),
                                    ("offset", to_offset is not None), ("time", to_time is not None)) if on]
    if len(chosen) != 1:
        fail("give exactly one of --to-earliest, --to-latest, --to-offset, --to-time")
    at = parse_time(to_time, "--to-time")
    s, client = settings_and_client()
    new = run_async(reset_group(s.kafka_bootstrap_servers, group, list(dict.fromkeys(topic)), chosen[0],
                                offset=to_offset, at=at, dry_run=dry_run, **client))
    for tp in sorted(new):
        typer.echo(f"{tp.topic}\t{tp.partition}\t{new[tp]}")
    typer.echo(f"{'would reset' if dry_run else 'reset'} group {group} on {len(new)} partitions")
