"""`onewindow router …`: train, evaluate, activate the triage model, and classify reports in batch —
with exactly the live router's decision function and reference data, no broker or database needed
(except `train --from-events`, which reads the operators' corrections from the topics)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Iterable

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.router import domain, triage

router_app = typer.Typer(help="The router's triage: train, evaluate, activate the model; classify reports.",
                         no_args_is_help=True)
EVAL_DIVISION = "339901001001"  # a village of the sample city: every unit kind serves it
FROZEN = "FROZEN.json"


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _model(manifest: Path | None) -> triage.TriageModel:
    try:
        return triage.TriageModel.load(manifest) if manifest else triage.load_active()
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"cannot load the triage model: {exc}")


# ---------------------------------------------------------------- train


@router_app.command("train")
def train_cmd(
    corpus: Annotated[Path, typer.Option(help="the corpus folder (train/ and learned/ are read)")] = triage.CORPUS,
    out: Annotated[Path, typer.Option(help="where the artifact and manifest are written")] = triage.REFERENCE,
    c: Annotated[float, typer.Option(min=0.01, max=1000, help="inverse regularisation strength")] = 1.0,
    from_events: Annotated[bool, typer.Option(help="first add operators' corrections from the topics")] = False,
    from_file: Annotated[Path | None, typer.Option(help="recorded events (JSON lines) instead of the topics")] = None,
) -> None:
    """Train a model from the corpus (reproducible: same data, same bytes). It is not live until activated."""
    catalogue = domain.load_catalogue()
    if from_events or from_file:
        _learn_from_events(corpus, from_file)
    files = triage.training_files(corpus)
    if not files:
        _fail(f"no training files under {corpus}/train")
    try:
        examples = triage.read_examples(files, set(catalogue.kinds))
    except triage.CorpusError as exc:
        _fail(str(exc))
    counts = Counter(e.category for e in examples)
    thin = sorted(code for code in catalogue.kinds if counts[code] < 2)
    if thin:
        _fail(f"categories with fewer than 2 examples: {', '.join(thin)}")
    started = time.perf_counter()
    trained = triage.train(examples, catalogue.kinds, catalogue.version, c=c)
    path = triage.write(trained, out)
    m = trained.manifest
    typer.echo(json.dumps({"version": m["version"], "sha256": m["sha256"], "manifest": str(path),
                           "examples": len(examples), "categories": len(counts), "corpus_sha256": m["corpus_sha256"],
                           "threshold": m["threshold"], "out_of_fold": m["out_of_fold"],
                           "seconds": round(time.perf_counter() - started, 1)}, ensure_ascii=False, indent=2))


def _learn_from_events(corpus: Path, from_file: Path | None) -> None:
    """Write operators' corrections as training examples (learned/) and the unlabelled ones (review/)."""
    from shared import topics
    from shared.messaging.log import LogError, LogRecord, Range, read, reader, resolve

    async def from_topics():
        from shared.settings import tool_settings

        s = tool_settings()
        consumer = reader(s.kafka_bootstrap_servers, **s.kafka_client_options())
        await consumer.start()
        try:
            rng = await resolve(consumer, Range([topics.CASES_RECEIVED, topics.ROUTER_DECISIONS]))
            return [r async for batch in read(consumer, rng) for r in batch]
        finally:
            await consumer.stop()

    try:
        if from_file:
            if not from_file.is_file():
                _fail(f"no such file: {from_file}")
            records = [LogRecord.from_json(line) for line in from_file.read_text(encoding="utf-8").splitlines()
                       if line.strip()]
        else:
            records = asyncio.run(from_topics())
    except (LogError, ValueError) as exc:
        _fail(str(exc))
    examples, review = triage.examples_from_corrections(records)
    learned = corpus / "learned" / "corrections.jsonl"
    learned.parent.mkdir(parents=True, exist_ok=True)
    known = {}
    if learned.exists():
        for line in learned.read_text(encoding="utf-8").splitlines():
            if line.strip():
                o = json.loads(line)
                known[o["source"]] = o
    for e in examples:  # one label per case: a later correction replaces an earlier one
        known[e.source] = {"text": e.text, "category": e.category, "channel": e.channel, "source": e.source}
    learned.write_text("".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n"
                               for _, o in sorted(known.items())), encoding="utf-8")
    review_path = corpus / "review" / "unlabelled.jsonl"
    review_path.parent.mkdir(parents=True, exist_ok=True)
    review_path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in review),
                           encoding="utf-8")
    typer.echo(f"corrections: {len(examples)} labelled examples → {learned} ({len(known)} in all); "
               f"{len(review)} to label by hand → {review_path}", err=True)


# ---------------------------------------------------------------- activate


@router_app.command("activate")
def activate_cmd(
    version: Annotated[str, typer.Argument(help="the trained model's version (triage-…)")],
    by: Annotated[str, typer.Option(help="who decides (recorded)")],
    note: Annotated[str, typer.Option(help="why, e.g. the what-if and eval figures (recorded)")],
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="override the calibrated threshold")] = None,
    directory: Annotated[Path, typer.Option(help="the model folder")] = triage.REFERENCE,
) -> None:
    """Make a trained model the live one: an explicit act, recorded in activations.jsonl."""
    if not (directory / f"{version}.json").is_file():
        _fail(f"no trained model {version} in {directory}")
    catalogue = domain.load_catalogue()
    model = _model(directory / f"{version}.json")
    try:
        domain.check_model(model, catalogue)
    except ValueError as exc:
        _fail(str(exc))
    record = triage.activate(version, by, note, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             threshold, directory)
    typer.echo(json.dumps(record, ensure_ascii=False))


# ---------------------------------------------------------------- classify


class ClassifyLine(BaseModel):
    """One report to classify."""

    model_config = ConfigDict(extra="forbid")
    id: str | int
    text: Annotated[str, Field(min_length=1, max_length=20000)]
    division_code: Annotated[str, Field(pattern=r"^\d{6}(\d{3}(\d{3})?)?$")]
    category: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    risk_flags: list[Annotated[str, Field(max_length=64)]] = []
    channel: str = "window"


def _decision_line(id_, decision: domain.Plan | domain.ManualQueue) -> dict:
    if isinstance(decision, domain.ManualQueue):
        return {"id": id_, "decision": "manual", "unit_kind": None, "category": None,
                "confidence": None, "risk": None, "lead_unit": None, "reason": decision.reason,
                "candidates": [c.__dict__ for c in decision.candidates], "model_version": decision.model_version}
    t = decision.triage
    return {"id": id_, "decision": "dispatch", "unit_kind": decision.lead.kind.value,
            "category": decision.category.code, "confidence": decision.confidence, "risk": decision.risk.value,
            "lead_unit": decision.lead.id,
            "assist_units": [a.unit.id for a in decision.assignments[1:]],
            "rule_ids": list(decision.rule_ids),
            "features": list(t.features) if t else [], "model_version": t.model_version if t else None}


def classify_lines(lines: Iterable[str], catalogue: domain.Catalogue, units: domain.UnitDirectory,
                   model: triage.TriageModel, divisions) -> Iterable[dict]:
    """One output per input line, in order: the decision, or an error for a bad line (the rest go on)."""
    parsed: list[tuple[int, ClassifyLine | dict]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = ClassifyLine.model_validate_json(line)
            if divisions.get(item.division_code) is None:
                raise ValueError(f"unknown division {item.division_code}")
            parsed.append((n, item))
        except (ValidationError, ValueError) as exc:
            id_ = None
            try:
                obj = json.loads(line)
                id_ = obj.get("id") if isinstance(obj, dict) else None
            except ValueError:
                pass
            msg = exc.errors(include_url=False, include_input=False) if isinstance(exc, ValidationError) else str(exc)
            parsed.append((n, {"id": id_, "line": n, "error": msg if isinstance(msg, str) else
                               "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in msg)}))
    todo = [p for _, p in parsed if isinstance(p, ClassifyLine)]
    predictions = dict(zip((id(p) for p in todo), model.predict([p.text for p in todo]))) if todo else {}
    now = datetime.now(timezone.utc)
    for _, p in parsed:
        if isinstance(p, dict):
            yield p
            continue
        facts = domain.CaseFacts(p.text, p.category, p.division_code, p.risk_flags, now, channel=p.channel)
        try:
            yield _decision_line(p.id, domain.route(facts, catalogue, units, model, predictions[id(p)]))
        except domain.UnknownCategory as exc:
            yield {"id": p.id, "error": str(exc)}


@router_app.command("classify")
def classify_cmd(
    file: Annotated[Path | None, typer.Argument(help="JSON lines (default: standard input)")] = None,
    model: Annotated[Path | None, typer.Option(help="a model manifest instead of the live model")] = None,
) -> None:
    """Classify reports: one JSON line in ({"id","text","division_code"[,"category","risk_flags"]}),
    one JSON line out, same order; a bad line gets {"error": …} and the rest continue."""
    from shared.divisions import load_divisions

    if file is not None and not file.is_file():
        _fail(f"no such file: {file}")
    catalogue, units, m = domain.load_catalogue(), domain.load_units(), _model(model)
    lines = file.read_text(encoding="utf-8").splitlines() if file else sys.stdin.read().splitlines()
    for out in classify_lines(lines, catalogue, units, m, load_divisions()):
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- eval


def file_hashes(files: list[Path]) -> dict[str, str]:
    """sha256 of each file, by name."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def evaluate(examples: list[triage.Example], catalogue: domain.Catalogue, units: domain.UnitDirectory,
             model: triage.TriageModel, division: str = EVAL_DIVISION) -> dict:
    """Route each example alone (as the router does a single case) and score the decisions. Reports
    outside the catalogue are scored apart: right when they reach the manual queue."""
    kinds = catalogue.kinds
    outside = [e for e in examples if e.category == triage.OUT_OF_SCOPE]
    examples = [e for e in examples if e.category != triage.OUT_OF_SCOPE]
    confusion: dict[str, Counter] = defaultdict(Counter)
    right_kind = right_cat = manual = wrong = 0
    wrong_cases = []
    started = time.process_time()
    now = datetime.now(timezone.utc)
    for e in examples:
        d = domain.route(domain.CaseFacts(e.text, None, division, [], now, channel=e.channel or "hotline"),
                         catalogue, units, model)
        gold = kinds[e.category]
        if isinstance(d, domain.ManualQueue):
            manual += 1
            confusion[gold]["manual"] += 1
            continue
        got = d.lead.kind.value
        confusion[gold][got] += 1
        right_cat += d.category.code == e.category or (d.triage is not None and d.triage.category.code == e.category)
        if got == gold:
            right_kind += 1
        else:
            wrong += 1
            wrong_cases.append({"text": e.text[:80], "gold": e.category, "got": d.category.code,
                                "p": d.confidence})
    cpu = time.process_time() - started
    n = len(examples)
    to_manual = sum(isinstance(domain.route(domain.CaseFacts(e.text, None, division, [], now, channel=e.channel
                                                              or "hotline"), catalogue, units, model),
                               domain.ManualQueue) for e in outside)
    return {
        "outside_catalogue": {"examples": len(outside), "to_manual_queue": to_manual},
        "examples": n,
        "kind_accuracy": round(right_kind / n, 4),
        "category_accuracy": round(right_cat / n, 4),
        "manual_share": round(manual / n, 4),
        "confident_wrong_share": round(wrong / n, 4),
        "ms_per_case_cpu": round(cpu * 1000 / n, 3),
        "confusion_by_kind": {g: dict(sorted(c.items())) for g, c in sorted(confusion.items())},
        "confidently_wrong": wrong_cases,
    }


@router_app.command("eval")
def eval_cmd(
    heldout: Annotated[list[Path] | None, typer.Option(help="held-out JSON-lines files (default: the frozen set)")] = None,
    model: Annotated[Path | None, typer.Option(help="a model manifest instead of the live model")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures as JSON")] = None,
    show_wrong: Annotated[int, typer.Option(help="confidently wrong cases listed")] = 10,
) -> None:
    """Score the router on held-out text it never trained on: kind and category accuracy, manual share,
    confidently wrong share, the confusion matrix by kind, CPU time per case; and the model's start-up."""
    from shared.divisions import load_divisions  # noqa: F401  (the same reference data the router loads)

    files = heldout or triage.heldout_files()
    if not files:
        _fail("no held-out files")
    for f in files:
        if not f.is_file():
            _fail(f"no such file: {f}")
    catalogue, units = domain.load_catalogue(), domain.load_units()
    t0 = time.perf_counter()
    m = _model(model)
    m.predict(["预热"])
    load_seconds = time.perf_counter() - t0
    try:
        examples = triage.read_examples(files, set(catalogue.kinds))
    except triage.CorpusError as exc:
        _fail(str(exc))
    if not any(e.category != triage.OUT_OF_SCOPE for e in examples):
        _fail("no examples of catalogue items to evaluate")
    hashes = file_hashes(files)
    frozen_path = triage.CORPUS / "heldout" / FROZEN
    frozen = json.loads(frozen_path.read_text(encoding="utf-8")) if frozen_path.exists() else {}
    figures = evaluate(examples, catalogue, units, m)
    figures |= {"model_version": m.version, "threshold": m.threshold, "model_load_seconds": round(load_seconds, 2),
                "heldout_sha256": hashes,
                "heldout_frozen": frozen.get("files") == hashes}
    wrong = figures.pop("confidently_wrong")
    typer.echo(json.dumps({k: v for k, v in figures.items() if k != "confusion_by_kind"}, ensure_ascii=False, indent=2))
    cols = ["police", "court", "petition", "mediation", "manual"]
    typer.echo("\nconfusion by unit kind (rows: right kind; columns: decision)")
    typer.echo(f"{'':>10} " + " ".join(f"{c:>9}" for c in cols))
    for g, row in figures["confusion_by_kind"].items():
        typer.echo(f"{g:>10} " + " ".join(f"{row.get(c, 0):>9}" for c in cols))
    if wrong and show_wrong:
        typer.echo(f"\nconfidently wrong ({len(wrong)}):")
        for w in wrong[:show_wrong]:
            typer.echo(f"  {w['gold']} → {w['got']} ({w['p']}): {w['text']}")
    if json_out:
        json_out.write_text(json.dumps(figures | {"confidently_wrong": wrong}, ensure_ascii=False, indent=2) + "\n",
                            encoding="utf-8")
