"""`nbo`: the command line of the product.

Settings are built once here, from `NBO_*` environment variables and the global flags, and
handed to each command.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from models.names import DEFAULT_MODEL, MODELS, POLICIES
from pipeline.connectors import load as connectors
from pipeline.connectors.files import ParsedFile
from pipeline.contracts import topics
from pipeline.contracts.schemas import export_json_schemas
from pipeline.errors import ConfigError, NboError
from pipeline.kafka import broker as broker_mod
from pipeline.kafka import clients as kafka_io
from pipeline.settings import Settings

if TYPE_CHECKING:  # the simulation is imported by `nbo demo` alone
    from pipeline.impact.report import Lift
    from pipeline.simulation.demo import DemoFigures, DemoReport

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="nbo: streaming Next Best Offer ranker."
)
topics_app = typer.Typer(no_args_is_help=True, help="Create and list the nbo topics.")
schema_app = typer.Typer(no_args_is_help=True, help="Record schemas for producers.")
load_app = typer.Typer(
    no_args_is_help=True, help="Load table-like data (offers, customers, rules)."
)
produce_app = typer.Typer(no_args_is_help=True, help="Produce stream records from a file.")
app.add_typer(topics_app, name="topics")
app.add_typer(schema_app, name="schema")
app.add_typer(load_app, name="load")
app.add_typer(produce_app, name="produce")
run_app = typer.Typer(no_args_is_help=True, help="Run a μ-product in the foreground.")
app.add_typer(run_app, name="run")
model_app = typer.Typer(no_args_is_help=True, help="Review and promote ranker models (MLflow).")
app.add_typer(model_app, name="model")
gateway_app = typer.Typer(no_args_is_help=True, help="The channels' API keys for the gateway.")
app.add_typer(gateway_app, name="gateway")

console = Console()
errors = Console(stderr=True)
_REJECTS_SHOWN = 20


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.callback()
def main(
    ctx: typer.Context,
    broker: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (NBO_BROKER_ADDRESS)")
    ] = None,
    topic_prefix: Annotated[str | None, typer.Option(help="topic name prefix")] = None,
    partitions: Annotated[int | None, typer.Option(help="partitions of new topics")] = None,
) -> None:
    """nbo: streaming Next Best Offer ranker."""
    overrides: dict[str, Any] = {
        "broker_address": broker,
        "topic_prefix": topic_prefix,
        "topic_partitions": partitions,
    }
    ctx.obj = Settings(**{key: value for key, value in overrides.items() if value is not None})


def quiet_library_deprecations() -> None:
    """authlib (under MLflow) forces its deprecation warnings on at import: not for our users."""
    import warnings

    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)


def run_cli() -> None:
    """Entry point that turns NboError into a clear message and its exit code (1, or 3 for an
    instance another process already is)."""
    quiet_library_deprecations()
    try:
        app(standalone_mode=False)
    except NboError as error:
        errors.print(f"[bold red]error:[/] {error}")
        sys.exit(error.exit_code)


@app.command("broker")
def run_broker(ctx: typer.Context) -> None:
    """Run an embedded broker (Kafka where Java 17+ is, else Tansu) until Ctrl-C."""
    settings = _settings(ctx)
    broker_mod.stop_on_sigterm()
    with (
        broker_mod.embedded_broker(settings) as broker,
        broker_mod.registered(settings, broker),
    ):
        outcome = topics.create_topics(settings, broker.address or "")
        console.print(
            f"[bold green]broker ready[/] on [bold]{broker.address}[/] (embedded {broker.engine})"
        )
        console.print(f"  {len(outcome)} topics ready; other nbo commands here find it.")
        console.print(f"  elsewhere: NBO_BROKER_ADDRESS={broker.address}")
        console.print(f"  Ctrl-C stops it (topics live {broker.keeps_topics}).")
        try:
            broker.wait()
        except KeyboardInterrupt:
            console.print("stopping broker")


@topics_app.command("create")
def topics_create(ctx: typer.Context) -> None:
    """Create every nbo topic that does not exist yet."""
    settings = _settings(ctx)
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        for name, outcome in topics.create_topics(settings, address).items():
            console.print(f"{name}: {outcome}")


@topics_app.command("list")
def topics_list(ctx: typer.Context) -> None:
    """List the topics on the broker with their partitions."""
    settings = _settings(ctx)
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        table = Table("topic", "partitions")
        for name, count in topics.list_topics(settings, address).items():
            table.add_row(name, str(count))
        console.print(table)


@schema_app.command("export")
def schema_export(directory: Path) -> None:
    """Write a JSON Schema file per record type into DIRECTORY."""
    for path in export_json_schemas(directory):
        console.print(str(path))


def _print_rejects(report: connectors.LoadReport | ParsedFile) -> None:
    for row in report.rejected[:_REJECTS_SHOWN]:
        errors.print(f"[yellow]rejected[/] {row}", highlight=False)
    hidden = len(report.rejected) - _REJECTS_SHOWN
    if hidden > 0:
        errors.print(f"[yellow]... and {hidden} more rejected rows[/]")


def _load(ctx: typer.Context, source: str, path: Path, strict: bool) -> None:
    settings = _settings(ctx)
    parsed = connectors.parse_source(source, path)
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        if strict and parsed.rejected:
            _print_rejects(parsed)
        progress = Progress(
            TextColumn(f"{path.name} →"),
            BarColumn(),
            MofNCompleteColumn(),
            console=errors,
            transient=True,
            disable=len(parsed.records) < 1000,
        )
        with progress:
            task = progress.add_task("load", total=len(parsed.records))
            report = connectors.load_file(
                settings,
                address,
                source,
                path,
                strict=strict,
                parsed=parsed,
                on_progress=lambda n: progress.advance(task, n),
            )
    _print_rejects(report)
    topics_text = ", ".join(f"{count} to {topic}" for topic, count in report.produced.items())
    console.print(
        f"{path.name}: loaded {report.loaded} ({topics_text or 'nothing'}), "
        f"rejected {len(report.rejected)} rows"
    )


StrictOption = Annotated[
    bool, typer.Option("--strict", help="refuse the whole load if any row is rejected")
]
FileArgument = Annotated[Path, typer.Argument(help="CSV, JSON Lines (or YAML for rules)")]


@load_app.command("offers")
def load_offers(ctx: typer.Context, file: FileArgument, strict: StrictOption = False) -> None:
    """Load the offer pool (a DWH batch export)."""
    _load(ctx, "offers", file, strict)


@load_app.command("customers")
def load_customers(ctx: typer.Context, file: FileArgument, strict: StrictOption = False) -> None:
    """Load customer profiles (a CRM export)."""
    _load(ctx, "customers", file, strict)


@load_app.command("rules")
def load_rules(ctx: typer.Context, file: FileArgument, strict: StrictOption = False) -> None:
    """Load validation rules and eligibilities (each goes to its topic by `kind`)."""
    _load(ctx, "rules", file, strict)


@produce_app.command("events")
def produce_events(ctx: typer.Context, file: FileArgument, strict: StrictOption = False) -> None:
    """Produce customer-journey events."""
    _load(ctx, "events", file, strict)


@produce_app.command("interactions")
def produce_interactions(
    ctx: typer.Context, file: FileArgument, strict: StrictOption = False
) -> None:
    """Produce channel interactions (impressions and responses)."""
    _load(ctx, "interactions", file, strict)


def _print_record(record: kafka_io.KafkaRecord) -> None:
    header = f"[dim]{record.topic}[{record.partition}]@{record.offset}[/] key=[bold]{record.key}[/]"
    console.print(header, highlight=False)
    try:
        console.print_json(data=record.json())
    except (ValueError, TypeError):
        console.print(repr(record.value))


@app.command("tail")
def tail(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help=f"one of: {', '.join(topics.TOPIC_NAMES)}")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep reading")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after N records")] = None,
) -> None:
    """Pretty-print the records on a topic, from the beginning."""
    settings = _settings(ctx)
    name = settings.topic_name(topics.spec(topic).logical)
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        for count, record in enumerate(kafka_io.consume(settings, address, name, follow=follow)):
            if limit is not None and count >= limit:
                break
            _print_record(record)


def _lift_text(lift: Lift) -> str:
    relative = lift.relative
    share = ""  # none when the baseline earned nothing (NaN)
    if not math.isnan(relative.mean):
        share = f", {relative.mean:+.0%} [{relative.low:+.0%}, {relative.high:+.0%}]"
    return f"{lift.absolute.mean:+.3g} [{lift.absolute.low:+.3g}, {lift.absolute.high:+.3g}]{share}"


def _demo_table(figures: DemoFigures, title: str) -> Table:
    table = Table("closed loop", "now", title=title, title_style="bold")
    recent, launch = figures.recent, figures.launch
    over = f"treatment, last {recent.decisions:,} shown"
    rows = [
        ("events", f"{figures.events:,}  ({figures.events_per_second:.0f}/s)"),
        ("decisions", f"{figures.decisions:,}"),
        (f"acceptance, learned policy ({over})", f"{recent.acceptance:.1%}"),
        ("acceptance, random valid offer", f"{recent.random_acceptance:.1%}"),
        ("acceptance, oracle", f"{recent.oracle_acceptance:.1%}"),
        (
            "expected value / decision",
            f"{recent.expected_value:.1f} (random {recent.random_expected_value:.1f}, "
            f"oracle {recent.oracle_expected_value:.1f}): {recent.value_vs_oracle:.2f} of the "
            f"oracle's, {recent.value_vs_random:.1f}× random",
        ),
        ("regret (value lost to oracle)", f"{figures.regret:,.0f}"),
        (
            "value lost to the best candidate, by part",
            ", ".join(
                f"{name.replace('_', ' ')} {share:.0%}"
                for name, share in recent.regret_shares().items()
            ),
        ),
        *(
            [
                (
                    f"new offer {launch.offer_id}: first when best",
                    f"{launch.put_first_when_best:.0%} of {launch.decisions_best:,}",
                )
            ]
            if launch is not None
            else []
        ),
        *(
            (
                f"value / decision, {group.group} (labels; simulation)",
                f"{group.measured} ({group.true_value:.3g}), {group.decisions:,} decisions",
            )
            for group in figures.impact
        ),
        *((f"lift over {lift.baseline}", _lift_text(lift)) for lift in figures.lifts),
        ("model version", f"{figures.model_version} (from {figures.first_model_version})"),
        ("lag (records waiting)", ", ".join(f"{name} {n:,}" for name, n in figures.lag.items())),
        ("dead letters", str(figures.dead_letters)),
        ("memory", ", ".join(f"{name} {mb:,} MB" for name, mb in figures.memory_mb.items())),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _progress_table(report: DemoReport) -> Table:
    return _demo_table(report.figures(), "nbo demo")


@app.command("demo")
def demo(
    ctx: typer.Context,
    events: Annotated[int | None, typer.Option(help="stop after N events")] = None,
    seconds: Annotated[float, typer.Option(help="stop after this many seconds")] = 120.0,
    customers: Annotated[int, typer.Option(help="simulated customers")] = 2000,
    seed: Annotated[int, typer.Option(help="seed of the simulated world")] = 7,
    world: Annotated[
        str, typer.Option(help="the simulated world: bank or households (pipeline.simulation)")
    ] = "bank",
    report: Annotated[Path | None, typer.Option(help="write the figures as JSON here")] = None,
    launch_at: Annotated[
        int,
        typer.Option(help="load a new offer, the best of its category, after N events; 0: never"),
    ] = 10_000,
) -> None:
    """The whole closed loop: broker, both μ-products and simulated customers and channels."""
    from rich.live import Live

    from pipeline.simulation.demo import DemoConfig, run_demo
    from pipeline.simulation.worlds import WORLDS

    if world not in WORLDS:
        raise ConfigError(f"unknown world {world!r}: choose one of {', '.join(WORLDS)}")
    settings = _settings(ctx)
    broker_mod.stop_on_sigterm()
    config = DemoConfig(events=events, seconds=seconds if events is None else 10**9,
                        customers=customers, seed=seed, launch_at=launch_at or None,
                        world=world)  # fmt: skip
    console.print("[bold]nbo demo[/]: starting the broker, the μ-products and the simulation…")
    announced: list[str] = []

    def announce_page(progress: DemoReport, printer: Console) -> None:
        """The page's address once, on a line of its own (a table cell would cut the key)."""
        if not announced and progress.page:
            announced.append(progress.page)
            printer.print(f"[bold]the bank's page[/] (open it in a browser): {progress.page}",
                          soft_wrap=True)  # fmt: skip

    if console.is_terminal and report is None:
        with Live(Table("closed loop", "now"), console=console, refresh_per_second=4) as live:

            def show(progress: DemoReport) -> None:
                announce_page(progress, live.console)
                live.update(_progress_table(progress))

            outcome = run_demo(settings, config, show)
    else:
        printed = [0]

        def every_5000_events(progress: DemoReport) -> None:
            announce_page(progress, console)
            if progress.events - printed[0] >= 5000:
                printed[0] = progress.events
                console.print(_progress_table(progress))

        outcome = run_demo(settings, config, every_5000_events)
    figures = outcome.figures()
    console.print(_demo_table(figures, f"summary: {figures.seconds:.0f} s, exit codes "
                                       f"{figures.exit_codes}"))  # fmt: skip
    if report is not None:
        report.write_text(json.dumps(figures.as_json(), indent=2))
        console.print(f"figures written to {report}")


def _configure_logging() -> None:
    """Rich lines on a terminal; one plain line per record otherwise, for log collectors."""
    import logging

    if errors.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=errors)
        logging.basicConfig(level="INFO", format="%(message)s", handlers=[handler])
    else:
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_stage(ctx: typer.Context, run: Callable[[Settings, str], None]) -> None:
    """Run a μ-product in the foreground until SIGTERM or Ctrl-C."""
    settings = _settings(ctx)
    _configure_logging()
    broker_mod.stop_on_sigterm()
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        run(settings, address)


@run_app.command("valid-offers")
def run_valid_offers(ctx: typer.Context) -> None:
    """The Valid Offers μ-product: events in, valid offers per customer out."""
    from pipeline.valid_offers import app as valid_offers

    _run_stage(ctx, valid_offers.run)


@run_app.command("ranker")
def run_ranker(ctx: typer.Context) -> None:
    """The Next Best Offer μ-product: valid offers in, ranked decisions and feedback out."""
    from pipeline.next_best_offer import app as next_best_offer

    _run_stage(ctx, next_best_offer.run)


@run_app.command("impact")
def run_impact(ctx: typer.Context) -> None:
    """The impact μ-product: decisions and labels in, the impact report logged to MLflow."""
    from pipeline.impact import app as impact_app

    _run_stage(ctx, impact_app.run)


@run_app.command("learner")
def run_learner(ctx: typer.Context) -> None:
    """The learner μ-product: every ranker's feedback in, one model out on `models`."""
    from pipeline.learner import app as learner

    _run_stage(ctx, learner.run)


@run_app.command("gateway")
def run_gateway(ctx: typer.Context) -> None:
    """The gateway μ-product: channels' HTTP requests in, events and interactions out."""
    from pipeline.gateway import app as gateway

    _run_stage(ctx, gateway.run)


@gateway_app.command("add-key")
def gateway_add_key(ctx: typer.Context, channel: str) -> None:
    """A new API key for CHANNEL, printed once (only its hash is kept)."""
    from pipeline.gateway.keys import add_key

    path = _settings(ctx).gateway_keys_file
    new = add_key(path, channel)
    errors.print(f"key {new.key_id} for channel {new.channel}, stored hashed in {path}")
    print(new.secret)


@gateway_app.command("revoke-key")
def gateway_revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Remove key KEY_ID: a running gateway refuses it within a second."""
    from pipeline.gateway.keys import revoke_key

    revoke_key(_settings(ctx).gateway_keys_file, key_id)
    errors.print(f"key {key_id} revoked")


@app.command("status")
def status(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(help="seconds between the two looks")] = 3.0,
    metrics: Annotated[
        list[str] | None,
        typer.Option(help="a μ-product's metrics address (NBO_METRICS_PORT), repeatable"),
    ] = None,
) -> None:
    """Each μ-product's consumer group: lag, oldest waiting record, progress (exit 2: stalled);
    with --metrics, the rates and counts its metrics give over the same interval."""
    from pipeline.kafka import progress
    from pipeline.monitoring.reading import Samples

    settings = _settings(ctx)
    endpoints = metrics or []
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        before = [Samples.scrape(url) for url in endpoints]
        looks = progress.status(settings, address, interval)
        after = [Samples.scrape(url) for url in endpoints]
    if endpoints:
        console.print(_metrics_table(endpoints, before, after))
    title = "nbo status (lag, oldest waiting record)"
    table = Table("group", "partition", "committed", "end", "lag", "oldest s",
                  f"done in {interval:.0f} s", title=title)  # fmt: skip
    for look in looks:
        for now, moved in look.partitions():
            table.add_row(
                look.group,
                now.name,
                f"{now.committed:,}",
                f"{now.end:,}",
                f"{now.lag:,}",
                "" if now.oldest_age is None else f"{now.oldest_age:.1f}",
                f"{moved:,}",
            )
    if not any(look.after for look in looks):
        raise NboError(
            f"no source topics of the μ-products here (prefix {settings.topic_prefix!r}): "
            "run `nbo topics create`, or set NBO_TOPIC_PREFIX"
        )
    console.print(table)
    idle = [look for look in looks if look.waiting_without_progress()]
    for look in idle:
        errors.print(
            f"[bold red]{look.stage}[/]: records waiting and no progress in {interval:.0f} s on "
            + ", ".join(p.name for p in look.waiting_without_progress())
        )
    if idle:
        raise typer.Exit(2)


def _metrics_table(urls: list[str], before: list[Any], after: list[Any]) -> Table:
    """What each μ-product's metrics say over the interval: the dashboard's numbers."""
    table = Table("metrics at", "μ-product", "in/s", "out/s", "decisions/s", "labels told/s",
                  "learned/s", "dead letters", "champion age s", "stalled",
                  title="nbo status (metrics)")  # fmt: skip
    for url, then, now in zip(urls, before, after, strict=True):
        published = now.total("nbo_champion_published_timestamp_seconds")
        dead = now.total("nbo_dead_letters_total")
        table.add_row(
            url,
            now.stage(),
            f"{now.rate(then, 'nbo_records_in_total'):,.1f}",
            f"{now.rate(then, 'nbo_records_out_total'):,.1f}",
            f"{now.rate(then, 'nbo_decisions_total'):,.1f}",
            f"{now.rate(then, 'nbo_labels_told_total'):,.1f}",
            f"{now.rate(then, 'nbo_labels_learned_total'):,.1f}",
            f"{dead:,.0f} (+{dead - then.total('nbo_dead_letters_total'):,.0f})",
            f"{time.time() - published:,.0f}" if published else "",
            "yes" if now.total("nbo_stalled") else "no",
        )
    return table


@app.command("impact")
def impact(ctx: typer.Context) -> None:
    """What the model earns over the control group's baselines, from the decisions and labels
    on the topics: per group, decisions, acceptance and value per decision, and the lift, each
    with its 95% interval."""
    from pipeline.impact.reading import read_impact

    settings = _settings(ctx)
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        report = read_impact(
            settings, address, lambda problem: errors.print(f"left out: {problem}")
        )
    groups = Table("group", "decisions", "acceptance", "value / decision", title="impact")
    for group in report.groups():
        groups.add_row(group.name, f"{group.decisions:,}", str(group.acceptance), str(group.value))
    console.print(groups)
    lifts = Table("treatment over", "lift in value / decision (absolute, relative)")
    for lift in report.lifts():
        lifts.add_row(lift.baseline, _lift_text(lift))
    console.print(lifts)
    if not report.groups():
        errors.print("no decision on next_best_offers yet")


@app.command("explain")
def explain(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="customer id")],
    event: Annotated[
        str | None, typer.Option(help="a given event id (default: the latest)")
    ] = None,
) -> None:
    """Why was each offer offered or not to CUSTOMER at their latest (or a given) event?"""
    settings = _settings(ctx)
    with broker_mod.broker_address(settings, start_embedded=False) as address:
        found = None
        for record in kafka_io.consume(settings, address, settings.topic_name("valid_offers")):
            value = record.json()
            if record.key == customer and (event is None or value.get("event_id") == event):
                found = value
        offers = {
            record.key: record.json()
            for record in kafka_io.consume(settings, address, settings.topic_name("offers"))
        }
    if found is None:
        at_event = f" at event {event}" if event else ""
        errors.print(f"no valid_offers record for customer {customer}{at_event}")
        raise typer.Exit(1)
    console.print(
        f"customer [bold]{customer}[/] at event {found['event_id']} ({found['event_type']}, "
        f"{found['channel']}, {found['timestamp']})"
    )
    offered = Table("offered", "category", "value", "days since trigger", "impressions")
    for candidate in found["candidates"]:
        offer = offers.get(candidate["offer_id"]) or {}
        offered.add_row(
            candidate["offer_id"],
            offer.get("category", "?"),
            f"{offer.get('value', 0):.0f}",
            "-"
            if candidate["days_since_trigger"] is None
            else f"{candidate['days_since_trigger']:.1f}",
            str(candidate["impressions"]),
        )
    console.print(offered)
    excluded = Table("not offered", "rule", "kind", "why")
    for exclusion in found["excluded"]:
        excluded.add_row(
            ", ".join(exclusion["offer_ids"]),
            f"{exclusion['rule_id']} v{exclusion['rule_version']}",
            exclusion["kind"],
            exclusion["reason"],
        )
    console.print(excluded)
    versions = ", ".join(
        f"{rule} v{version}" for rule, version in sorted(found["rule_versions"].items())
    )
    console.print(f"[dim]rules in force: {versions}[/]")


# -- model review -----------------------------------------------------------------------------


def _registry(settings: Settings) -> Any:
    from pipeline.review import registry

    registry.configure(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    return registry


@model_app.command("list")
def model_list(ctx: typer.Context) -> None:
    """Every registered version of nbo-ranker, newest first, with its aliases."""
    registry = _registry(_settings(ctx))
    table = Table("version", "aliases", "ranker", "run", "created (UTC)")
    for row in registry.list_versions():
        table.add_row(
            row.version,
            ", ".join(row.aliases),
            row.ranker_version,
            row.run_id,
            row.created.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@model_app.command("promote")
def model_promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="registered version number")],
    alias: Annotated[str, typer.Option("--as", help="champion or challenger")] = "champion",
) -> None:
    """Make VERSION the champion (or the challenger); running rankers switch to it."""
    from mlflow.exceptions import MlflowException

    registry = _registry(_settings(ctx))
    try:
        registry.promote(version, alias)
    except (MlflowException, ValueError) as error:
        raise NboError(f"cannot promote version {version}: {error}") from error
    console.print(f"nbo-ranker version {version} is now the {alias}")


@app.command("ui")
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="port of the MLflow UI")] = 5000,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="server worker processes")] = 1,
    start_timeout: Annotated[
        float, typer.Option(help="seconds to wait for the tracking API to answer")
    ] = 120.0,
) -> None:
    """Open the MLflow UI on nbo's model store (runs, metrics, plots, registry)."""
    import signal

    from pipeline.cli import tracking_ui

    settings = _settings(ctx)
    _registry(settings)  # the store and the experiment exist before the UI opens
    command = tracking_ui.server_command(
        settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir, host, port, workers
    )
    server = tracking_ui.start(command)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on the way out
    try:
        took = tracking_ui.wait_until_ready(server, tracking_ui.api_url(host, port), start_timeout)
        console.print(
            f"MLflow UI ready on http://{host}:{port} after {took:.1f} s (Ctrl-C stops it)"
        )
        if code := server.wait():
            raise NboError(f"the MLflow server exited with code {code}")
    except KeyboardInterrupt:
        pass
    finally:
        tracking_ui.stop(server)


# -- offline replay -----------------------------------------------------------------------------


# What `nbo replay` and `nbo replay-feedback` evaluate
ModelOption = Annotated[
    str,
    typer.Option(
        help=f"{', '.join(MODELS)}, package.module:attribute, or a registered version: "
        "models:/nbo-ranker/N or models:/nbo-ranker@champion"
    ),
]
FeaturesOption = Annotated[
    str | None,
    typer.Option(
        help="feature set of a fresh model: default, or package.module:attribute "
        "(a registered version reads its own)"
    ),
]


def _registry_for(model: str, settings: Settings) -> None:
    """Point MLflow at the registry when `model` names a registered version."""
    if model.startswith("models:/"):
        _registry(settings)


@app.command("replay")
def replay(
    ctx: typer.Context,
    log_file: Annotated[Path, typer.Argument(help="logged feedback: .csv or .jsonl")],
    items: Annotated[Path, typer.Option(help="offer attributes: .csv or .jsonl")],
    mapping: Annotated[Path | None, typer.Option(help="YAML: which column is which")] = None,
    model: ModelOption = DEFAULT_MODEL,
    features: FeaturesOption = None,
    policy: Annotated[
        str, typer.Option(help=f"{', '.join(POLICIES)}, or package.module:attribute")
    ] = "greedy",
    seed: Annotated[int, typer.Option(help="seed of the model, policy and bootstrap")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write results here")] = None,
    rows_out: Annotated[
        Path | None, typer.Option("--rows", help="CSV: per evaluated round, what the policy did")
    ] = None,
    resamples: Annotated[int, typer.Option(min=10, help="bootstrap resamples per interval")] = 200,
    mlflow_run: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="log a run")] = True,
    register: Annotated[bool, typer.Option(help="register the replayed model")] = False,
) -> None:
    """Would this model and policy have done better on what was logged? (off-policy estimates)"""
    from pipeline.offline import replay as replay_mod
    from pipeline.offline import report as replay_report

    settings = _settings(ctx)
    _registry_for(model, settings)
    result = replay_mod.replay_file(
        log_file, items, mapping, model=model, features=features, policy=policy, seed=seed
    )
    if not result.rows:
        first = (
            f"; line {result.rejected[0].line}: {result.rejected[0].reason}"
            if result.rejected
            else ""
        )
        raise NboError(
            f"{log_file}: nothing to evaluate ({len(result.rejected)} rows rejected{first})"
        )
    estimates = result.estimates(resamples=resamples, seed=seed)
    _print_replay(result, estimates)
    for warning in result.warnings():
        errors.print(f"[bold yellow]warning:[/] {warning}")
    figures = replay_report.figures(result, estimates)
    if mlflow_run:
        from pipeline.review.tracking import log_offline_run

        run_id, version = log_offline_run(
            settings.mlflow_tracking_uri,
            settings.mlflow_artifacts_dir,
            run_name=f"replay-{log_file.stem}-{model}-{policy}",
            params={
                "log": str(log_file),
                "model": model,
                "feature_set": result.model.features.label,
                "policy": policy,
                "seed": seed,
            },
            metrics=figures,
            curve=result.curve,
            ranker=result.model,
            register=register,
        )
        registered = f", registered as version {version}" if version else ""
        console.print(f"[dim]MLflow run {run_id}{registered}[/]")
    if json_out is not None:
        report = replay_report.report(result, estimates)
        json_out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
        console.print(f"[dim]results written to {json_out}[/]")
    if rows_out is not None:
        replay_report.write_rows(result, rows_out)
        console.print(f"[dim]{len(result.rows):,} evaluated rounds written to {rows_out}[/]")


@app.command("replay-feedback")
def replay_feedback(
    ctx: typer.Context,
    model: ModelOption = DEFAULT_MODEL,
    features: FeaturesOption = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--file", help="feedback records as JSON Lines; default: the topic"),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write results here")] = None,
) -> None:
    """Would this model have predicted the customers' answers on `feedback` better than the
    models that decided? (progressive validation on the same labels)"""
    from pipeline.connectors.files import read_rows
    from pipeline.offline import feedback_replay

    settings = _settings(ctx)
    _registry_for(model, settings)
    if from_file is not None:
        records = [(f"{from_file}:{line}", row) for line, row in read_rows(from_file)]
    else:
        with broker_mod.broker_address(settings, start_embedded=False) as address:
            topic = settings.topic_name("feedback")
            records = [
                (f"{topic}[{r.partition}]@{r.offset}", r.json())
                for r in kafka_io.consume(settings, address, topic)
            ]
    result = feedback_replay.replay_feedback(records, model, features)
    if not result.rounds:
        raise NboError(f"nothing to replay: {len(records)} feedback records, none usable")
    table = Table("P(accept) of", "log loss", "ROC AUC")
    for name, predictions in (
        (f"target {result.target.version}", result.predicted),
        ("the deciding models", result.deployed),
    ):
        figures = predictions.figures()
        table.add_row(name, f"{figures['log_loss']:.4f}", f"{figures['roc_auc']:.4f}")
    console.print(f"replayed {result.rounds:,} labels ({len(result.rejected)} rejected)")
    console.print(table)
    for rejected in result.rejected[:_REJECTS_SHOWN]:
        errors.print(f"[yellow]record {rejected.line}:[/] {rejected.reason}")
    if json_out is not None:
        json_out.write_text(json.dumps(result.report(), indent=2) + "\n")


def _print_replay(result: Any, estimates: list[Any]) -> None:
    console.print(
        f"replayed {result.rounds_learned:,} shows ({len(result.log):,} evaluated, "
        f"{len(result.rejected)} rejected); policy {result.policy}, model {result.model.version}"
    )
    console.print(
        f"progressive validation: log loss {result.log_loss:.4f}, ROC AUC {result.roc_auc:.4f}"
    )
    table = Table("estimator", "value", "95% interval", "rounds used")
    for estimate in estimates:
        label = (
            "logging policy (observed)" if estimate.estimator == "logging" else estimate.estimator
        )
        table.add_row(
            label,
            f"{estimate.value:.4f}",
            f"[{estimate.low:.4f}, {estimate.high:.4f}]",
            f"{estimate.rounds:,}",
        )
    console.print(table)
    if not result.uniform_logging:
        console.print("[dim]replay (rejection) method left out: the log is not uniformly random[/]")
    for rejected in result.rejected[:_REJECTS_SHOWN]:
        errors.print(f"[yellow]line {rejected.line}:[/] {rejected.reason}")
