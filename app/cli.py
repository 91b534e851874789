"""`driftline`: the one entry point. Each subcommand maps to a part of the system.

driftline up                        broker + champion + flows + gateway, in the foreground
driftline status [--no-lake]        each process alive, its lag and metrics; latest drift windows
driftline config                    the effective configuration, with each DRIFTLINE_* variable
driftline broker status|create-topics  whether the broker answers, its log's epoch; topics
driftline data load                 write the training, monitor and out-of-domain sets to the lake
driftline train [--only NAME] [--sample N]  train and register the four models in MLflow
driftline retrain [--model NAME] [--once]   retrain on drift alerts: shadow challengers
driftline models list|promote       registered versions and metrics; move an alias
driftline lake compact [--expire-days N]  merge small lake files; optionally expire snapshots
driftline simulate [--drift-at 0.5] replay the monitor set through the gateway (see --help)
driftline flow NAME                 run one flow with recovery on (see `driftline flow -h`)
driftline gateway                   run the HTTP gateway
driftline experiments list|show|put|delete [NAME] [--arm A=MODEL@ALIAS:W ...] [--mode bandit]
                                            [--shadow S=MODEL@ALIAS:SAMPLE ...]
driftline experiments rollout NAME show|pause|resume|abort   a rollout's state; steer it
driftline sql "SELECT ..."          query the lake (read-only, safe beside the writer)
driftline kcat ARGS...              kcat against the broker, with a compatible librdkafka
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence

from app.experiments import cmd_experiments, parse_arm, parse_shadow
from app.kcat import kcat
from app.topology import FLOWS
from driftline import logs, settings
from driftline.settings import GatewaySettings, Settings, SettingsError


def cmd_broker(s: Settings, args: argparse.Namespace) -> int:
    """Whether the broker answers, and the epoch of its log; or create the topics."""
    from broker.clients import broker_reachable, ensure_topics, epoch, wait_for_broker

    if args.action == "create-topics":
        wait_for_broker(s, timeout=120)
        print(json.dumps({"created": ensure_topics(s)}))
        return 0
    status: dict[str, object] = {"brokers": s.kafka.brokers, "reachable": broker_reachable(s)}
    if status["reachable"]:
        try:
            status["log_epoch"] = epoch(s)
        except Exception as exc:  # topics not created yet
            status["log_epoch"] = None
            status["reason"] = str(exc)
    print(json.dumps(status))
    return 0 if status["reachable"] else 1


def cmd_train(s: Settings, args: argparse.Namespace) -> int:
    from models import train

    if args.bootstrap:
        from models import registry

        served, alias = s.models.default_model, s.models.default_alias
        if registry.alias_version(s, served, alias) is not None:
            return 0
        quick = sorted({served, *train.QUICK})
        print(f"No {served}@{alias} yet: training {quick}...", flush=True)
        for model in train.train(s, only=quick, sample=s.models.bootstrap_sample or None):
            print(f"Registered {model.name} v{model.version} in {model.seconds:.0f}s", flush=True)
        return 0
    trained = train.train(
        s,
        sample=args.sample,
        make_champion=args.champion or None,
        only=args.only,
        algorithms=args.algorithm,
        feature_sets=args.features,
        verbose=0 if args.quiet else 1,
    )
    for model in trained:
        print(json.dumps({"name": model.name, "version": model.version, **model.metrics}))
    return 0


def cmd_data(s: Settings, args: argparse.Namespace) -> int:
    from models import data

    print(json.dumps(data.load(s, seed=args.seed)))
    return 0


def cmd_lake(s: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    import lakehouse
    from lakehouse import maintenance

    con = lakehouse.connect(s.lake)
    try:
        compacted = maintenance.compact(con)
        report: dict[str, int] = {
            "files_before": compacted.files_before,
            "files_merged": compacted.files_merged,
        }
        if args.expire_days is not None:
            expired = maintenance.expire(con, timedelta(days=args.expire_days))
            report |= {
                "snapshots_expired": expired.snapshots,
                "files_deleted": expired.files_deleted,
            }
    finally:
        con.close()
    print(json.dumps(report))
    return 0


def cmd_simulate(s: Settings, args: argparse.Namespace) -> int:
    from app import simulate

    options = simulate.Options(
        passes=args.passes,
        sample=args.sample,
        days=args.days,
        feedback=tuple(args.feedback),
        flip=tuple(args.flip),
        drift_at=args.drift_at,
        drift_source=args.drift_source,
        subjects=args.subjects,
        seed=args.seed,
    )
    outcome = simulate.simulate(s, options, args.gateway)
    print(json.dumps(outcome.summary()))
    return 0 if outcome.scored else 1


def cmd_models(s: Settings, args: argparse.Namespace) -> int:
    from models import registry

    if args.action == "promote":
        from mlflow.exceptions import MlflowException

        try:
            registry.set_alias(s, args.name, args.version, args.alias)
        except MlflowException as exc:
            print(exc.message, file=sys.stderr)
            return 1
        print(f"{args.name}@{args.alias} -> version {args.version}")
        return 0
    rows = registry.versions(s)
    if not rows:
        print("no registered models yet: run `driftline train`", file=sys.stderr)
        return 1
    columns = list(rows[0])
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def cmd_flow(s: Settings, args: argparse.Namespace) -> int:
    """One flow (or one process of a flow's cluster) with recovery on, in the foreground."""
    from app.topology import flow_command, metrics_env
    from broker.clients import ensure_topics, epoch

    ensure_topics(s)
    argv, env = flow_command(s, args.name, epoch(s))
    env |= metrics_env(s, args.name, args.process)
    if args.workers > 1:
        argv += ["-w", str(args.workers)]
    if args.addresses:
        argv += ["-i", str(args.process), "-a", args.addresses]
    os.execve(argv[0], argv, os.environ | env)


def cmd_gateway(s: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    refused = s.gateway.open_exposure()
    if refused:
        print(f"driftline: {refused}", file=sys.stderr)
        return 2

    if s.gateway.workers > 1:  # whichever worker answers /metrics reports all of them
        from gateway.metrics import prepare_multiprocess

        prepare_multiprocess(s.home / "run" / "gateway-metrics")
    # Workers share the one listening socket; uvicorn restarts a worker that dies.
    uvicorn.run(
        "gateway:from_environment",
        factory=True,
        host=s.gateway.host,
        port=s.gateway.port,
        workers=s.gateway.workers,
        access_log=s.gateway.access_log,
        timeout_keep_alive=s.gateway.keep_alive_seconds,
        log_config=None,
    )
    return 0


def cmd_sql(s: Settings, args: argparse.Namespace) -> int:
    import duckdb

    import lakehouse

    try:
        con = lakehouse.connect(s.lake, read_only=True)
    except duckdb.Error as exc:
        print(f"cannot open the lake at {s.lake.catalog}: {exc}", file=sys.stderr)
        return 1
    try:
        result = con.sql(args.query)
        if result is None:  # a statement without rows
            return 0
        if args.format == "csv":
            writer = csv.writer(sys.stdout)
            writer.writerow(result.columns)
            writer.writerows(result.fetchall())
        else:
            # Wrap to the terminal; piped output stays one line per row, easy to grep.
            width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 1_000_000
            result.show(max_rows=args.max_rows, max_width=width)
    except duckdb.Error as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def cmd_status(s: Settings, args: argparse.Namespace) -> int:
    from app import status

    return status.main(s, lake=not args.no_lake)


def cmd_up(s: Settings, args: argparse.Namespace) -> int:
    from app import supervisor

    if args.profile:
        s = settings.load(profile=args.profile)
    refused = None if args.servers_only else s.gateway.open_exposure()
    if refused:
        print(f"driftline: {refused}", file=sys.stderr)
        return 2
    return supervisor.up(s, servers_only=args.servers_only)


def cmd_config(s: Settings, args: argparse.Namespace) -> int:
    """Every setting: variable, effective value and meaning (or `--env`: shell assignments)."""
    rows = list(settings.describe(s))
    if args.env:
        for variable, value in s.to_env().items():
            print(f"{variable}={shlex.quote(value)}")
        return 0
    width = max(len(variable) for variable, _, _ in rows)
    for variable, value, meaning in rows:
        if variable == GatewaySettings.env_name("api_keys"):  # never printed
            value = f"({len(s.gateway.keys)} set)" if s.gateway.keys else ""
        print(f"{variable.ljust(width)}  {value!s:<40}  {meaning}".rstrip())
    return 0


# --- retraining on drift (issue 13, part 3) ---
def cmd_retrain(s: Settings, args: argparse.Namespace) -> int:
    from app import retrain

    handled = retrain.run(s, sys.stdout, model=args.model, once=args.once)
    print(f"{handled} retraining request(s) handled", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driftline", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    u = sub.add_parser("up", help="run the whole stack in the foreground")
    u.add_argument("--profile", choices=["embedded", "cluster"], help="as DRIFTLINE_PROFILE")
    u.add_argument(
        "--servers-only", action="store_true", help="only the broker and the other servers"
    )
    u.set_defaults(fn=cmd_up)

    st = sub.add_parser(
        "status",
        help="each process alive or not, its lag and metrics URL; each model's latest window",
    )
    st.add_argument(
        "--no-lake", action="store_true", help="models from the monitor's metrics, not the lake"
    )
    st.set_defaults(fn=cmd_status)

    c = sub.add_parser("config", help="print the effective configuration")
    c.add_argument("--env", action="store_true", help="as VARIABLE=value lines for a shell")
    c.set_defaults(fn=cmd_config)

    b = sub.add_parser("broker", help="the Kafka broker")
    b.add_argument("action", choices=["status", "create-topics"])
    b.set_defaults(fn=cmd_broker)

    d = sub.add_parser("data", help="data sets in the lake")
    d.add_argument("action", choices=["load"])
    d.add_argument("--seed", type=int, default=42, help="seed of the splits and folds")
    d.set_defaults(fn=cmd_data)

    t = sub.add_parser("train", help="train and register the models (all four by default)")
    t.add_argument("--sample", type=int, help="train on this many rows only")
    t.add_argument("--champion", action="store_true", help="move the champion alias to them")
    t.add_argument("--only", nargs="+", metavar="NAME", help="e.g. sentiment_logreg_tfidf")
    t.add_argument("--algorithm", nargs="+", choices=["logreg", "xgboost"])
    t.add_argument("--features", nargs="+", choices=["tfidf", "embeddings"])
    t.add_argument("--quiet", action="store_true", help="no line per grid-search fit")
    t.add_argument(
        "--bootstrap",
        action="store_true",
        help="only if the served model's alias is missing: the quick models (what `up` runs)",
    )
    t.set_defaults(fn=cmd_train)

    from app.simulate import Options

    defaults = Options()
    sim = sub.add_parser(
        "simulate",
        help="replay the monitor set through the gateway, with feedback and drift",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--passes", type=int, default=defaults.passes, help="feedback rounds")
    sim.add_argument("--sample", type=float, default=defaults.sample, help="share per pass")
    sim.add_argument("--days", type=float, default=defaults.days, help="event-time span")
    for name, meaning in (("feedback", "share given feedback"), ("flip", "share of wrong scores")):
        sim.add_argument(
            f"--{name}",
            type=float,
            nargs=2,
            default=getattr(defaults, name),
            metavar=("LO", "HI"),
            help=f"{meaning}, drawn per pass from [LO, HI]",
        )
    sim.add_argument(
        "--drift-at", type=float, help="share of the span after which texts drift; none if absent"
    )
    sim.add_argument("--drift-source", choices=["sms", "neutral"], default=defaults.drift_source)
    sim.add_argument("--subjects", type=int, default=defaults.subjects, help="user pool size")
    sim.add_argument("--seed", type=int, default=defaults.seed)
    sim.add_argument("--gateway", help="base URL; the configured gateway when absent")
    sim.set_defaults(fn=cmd_simulate)

    lake = sub.add_parser("lake", help="lake upkeep")
    lake.add_argument("action", choices=["compact"])
    lake.add_argument(
        "--expire-days",
        type=float,
        metavar="N",
        help="also drop snapshots older than N days and delete their files (ends time travel "
        "to them, including training lineage)",
    )
    lake.set_defaults(fn=cmd_lake)

    m = sub.add_parser("models", help="registered models").add_subparsers(
        dest="action", required=True
    )
    m.add_parser("list", help="every version: aliases, test metrics, training seconds")
    promote = m.add_parser("promote", help="move an alias; running flows follow it")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("alias")
    for action in m.choices.values():
        action.set_defaults(fn=cmd_models)

    f = sub.add_parser("flow", help="run one flow with recovery on")
    f.add_argument("name", choices=FLOWS)
    f.add_argument("--workers", type=int, default=1, help="Bytewax workers in this process")
    f.add_argument(
        "--addresses", help="host:port;host:port... of every process of the flow's cluster"
    )
    f.add_argument("--process", type=int, default=0, help="this process's index in --addresses")
    f.set_defaults(fn=cmd_flow)

    sub.add_parser("gateway", help="run the HTTP gateway").set_defaults(fn=cmd_gateway)

    e = sub.add_parser("experiments", help="list, show, create/replace or delete A/B experiments")
    e.add_argument("action", choices=["list", "show", "put", "delete", "rollout"])
    e.add_argument("name", nargs="?", help="experiment name (show, put, delete, rollout)")
    e.add_argument(
        "rollout_action",
        nargs="?",
        choices=["show", "pause", "resume", "abort"],
        help="rollout: show its state and decisions (default), or pause, resume or abort it",
    )
    e.add_argument(
        "--arm",
        action="append",
        type=parse_arm,
        help="put: NAME=MODEL@ALIAS[:WEIGHT] or NAME=MODEL/VERSION[:WEIGHT], repeatable",
    )
    e.add_argument(
        "--shadow",
        action="append",
        type=parse_shadow,
        help="put: a shadow arm, NAME=MODEL@ALIAS[:SAMPLE] or NAME=MODEL/VERSION[:SAMPLE]: it "
        "scores the share SAMPLE (default 1) of requests and never answers, repeatable",
    )
    e.add_argument("--mode", choices=["fixed", "bandit"], default="fixed")
    e.add_argument("--description", default="")
    e.set_defaults(fn=cmd_experiments)

    r = sub.add_parser(
        "retrain",
        help="retrain models on retraining requests and start them as shadow challengers",
    )
    r.add_argument("--model", help="only requests for this registered model")
    r.add_argument("--once", action="store_true", help="handle the requests there now, then exit")
    r.set_defaults(fn=cmd_retrain)

    q = sub.add_parser("sql", help="query the lake with DuckDB SQL")
    q.add_argument("query")
    q.add_argument("--max-rows", type=int, default=40, help="rows shown in table format")
    q.add_argument("--format", choices=["table", "csv"], default="table")
    q.set_defaults(fn=cmd_sql)

    # Listed for --help only: main() hands `kcat ...` to kcat before argparse sees its flags.
    sub.add_parser("kcat", help="kcat against the broker, e.g. driftline kcat -C -t TOPIC")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        s = settings.load()
    except SettingsError as exc:
        print(f"driftline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(s.log_level)
    if argv[:1] == ["kcat"]:
        return kcat(s, argv[1:])
    args = parser().parse_args(argv)
    return int(args.fn(s, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
