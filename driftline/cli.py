"""`driftline`: the one entry point. Each subcommand maps to a part of the system.

driftline up                        broker + champion + flows + gateway, in the foreground
driftline broker start|stop|status  the embedded Kafka broker (tansu)
driftline data load                 write the training, monitor and out-of-domain sets to the lake
driftline train [--only NAME] [--sample N]  train and register the four models in MLflow
driftline models list|promote       registered versions and metrics; move an alias
driftline lake compact [--expire-days N]  merge small lake files; optionally expire snapshots
driftline simulate [--drift-at 0.5] replay the monitor set through the gateway (see --help)
driftline flow NAME                 run one flow with recovery on (see `driftline flow -h`)
driftline gateway                   run the HTTP gateway
driftline experiments list|show|put|delete [NAME] [--arm A=MODEL@ALIAS:W ...] [--mode bandit]
driftline sql "SELECT ..."          query the lake (read-only, safe beside the writer)
driftline kcat ARGS...              kcat against the broker, with a compatible librdkafka
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from driftline import broker, logs, settings
from driftline.settings import Settings
from driftline.stack import FLOWS


def cmd_broker(s: Settings, args: argparse.Namespace) -> int:
    if args.action == "start":
        state = broker.start(s)
        print(json.dumps(broker.status(s) | {"started": state is not None}))
    elif args.action == "stop":
        print("stopped" if broker.stop(s) else "no managed broker running")
    else:
        status = broker.status(s)
        print(json.dumps(status))
        return 0 if status["reachable"] else 1
    return 0


def cmd_train(s: Settings, args: argparse.Namespace) -> int:
    from models import train

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

    con = lakehouse.connect(s)
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
    from driftline import simulate

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
    from driftline import stack

    argv, env = stack.flow_command(s, args.name)
    if args.workers > 1:
        argv += ["-w", str(args.workers)]
    os.execve(argv[0], argv, env)


def cmd_gateway(s: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from gateway import create_app

    uvicorn.run(create_app(s), host=s.gateway_host, port=s.gateway_port, log_config=None)
    return 0


def cmd_sql(s: Settings, args: argparse.Namespace) -> int:
    import duckdb

    import lakehouse

    try:
        con = lakehouse.connect(s, read_only=True)
    except duckdb.Error as exc:
        print(f"cannot open the lake at {s.catalog}: {exc}", file=sys.stderr)
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


def kcat_env(s: Settings) -> dict[str, str]:
    """Environment in which Debian's kcat uses the confluent-kafka wheel's newer librdkafka.

    Debian's own librdkafka fails against tansu ("Read underflow"); the wheel's works.
    """
    import importlib.util

    spec = importlib.util.find_spec("confluent_kafka")
    assert spec is not None and spec.origin is not None
    libs = Path(spec.origin).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka-*.so.1"))
    if not found:
        raise RuntimeError(f"no librdkafka in {libs}")
    lib_dir = s.home / "kcat-lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    link = lib_dir / "librdkafka.so.1"
    link.unlink(missing_ok=True)
    link.symlink_to(found[0])
    return os.environ | {"LD_LIBRARY_PATH": str(lib_dir)}


def kcat(s: Settings, kcat_args: Sequence[str]) -> int:
    """Replace this process with kcat; its arguments pass through untouched."""
    kcat = shutil.which("kcat")
    if kcat is None:
        print("kcat is not installed: apt-get install kcat (make install does it)", file=sys.stderr)
        return 1
    extra = list(kcat_args)
    if "-b" not in extra:
        extra = ["-b", s.brokers, *extra]
    os.execve(kcat, [kcat, *extra], kcat_env(s))


def parse_arm(spec: str) -> dict[str, object]:
    """`NAME=MODEL@ALIAS[:WEIGHT]` or `NAME=MODEL/VERSION[:WEIGHT]` as an arm's fields.

    >>> parse_arm("A=sentiment_logreg_tfidf@champion:0.7")
    {'name': 'A', 'model': 'sentiment_logreg_tfidf', 'weight': 0.7, 'alias': 'champion'}
    >>> parse_arm("B=sentiment_xgboost_minilm/3")
    {'name': 'B', 'model': 'sentiment_xgboost_minilm', 'weight': 1.0, 'version': '3'}
    """
    name, sep, rest = spec.partition("=")
    address, _, weight = rest.partition(":")
    model, at, alias = address.partition("@")
    if not at:
        model, _, version = address.partition("/")
    if not (sep and name and model and (alias if at else version)):
        raise argparse.ArgumentTypeError(f"arm {spec!r}: expected NAME=MODEL@ALIAS[:WEIGHT]")
    arm: dict[str, object] = {"name": name, "model": model, "weight": float(weight or 1)}
    return arm | ({"alias": alias} if at else {"version": version})


def cmd_experiments(s: Settings, args: argparse.Namespace) -> int:
    from driftline.ab import Experiment
    from driftline.ab.store import ExperimentStore, current, missing_models

    if args.action != "list" and not args.name:
        print(f"experiments {args.action} needs a NAME", file=sys.stderr)
        return 2
    store = ExperimentStore.of(s)
    if args.action == "delete":
        deleted = store.delete(args.name)
        print("deleted" if deleted else f"no stored experiment {args.name!r}")
        return 0 if deleted else 1
    if args.action == "put":
        if not args.arm:
            print("put needs at least one --arm", file=sys.stderr)
            return 2
        experiment = Experiment(
            name=args.name, arms=args.arm, mode=args.mode, description=args.description
        )
        missing = missing_models(s, experiment)
        if missing:
            print("; ".join(missing), file=sys.stderr)
            return 1
        store.put(experiment)
        print(experiment.model_dump_json(indent=2))
        return 0
    found = current(s, store)
    if args.action == "show":
        if args.name not in found:
            print(f"no experiment {args.name!r}", file=sys.stderr)
            return 1
        print(found[args.name].model_dump_json(indent=2))
        return 0
    for e in found.values():
        arms = ", ".join(
            f"{a.name}={a.model}{'@' + a.alias if a.alias else '/' + str(a.version)}:{a.weight:g}"
            for a in e.arms
        )
        print(f"{e.name}\t{e.mode}\t{arms}")
    return 0


def cmd_up(s: Settings, args: argparse.Namespace) -> int:
    from driftline import stack

    return stack.up(s)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driftline", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="run the whole stack in the foreground").set_defaults(fn=cmd_up)

    b = sub.add_parser("broker", help="the embedded Kafka broker")
    b.add_argument("action", choices=["start", "stop", "status"])
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
    t.set_defaults(fn=cmd_train)

    from driftline.simulate import Options

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
    f.set_defaults(fn=cmd_flow)

    sub.add_parser("gateway", help="run the HTTP gateway").set_defaults(fn=cmd_gateway)

    e = sub.add_parser("experiments", help="list, show, create/replace or delete A/B experiments")
    e.add_argument("action", choices=["list", "show", "put", "delete"])
    e.add_argument("name", nargs="?", help="experiment name (show, put, delete)")
    e.add_argument(
        "--arm",
        action="append",
        type=parse_arm,
        help="put: NAME=MODEL@ALIAS[:WEIGHT] or NAME=MODEL/VERSION[:WEIGHT], repeatable",
    )
    e.add_argument("--mode", choices=["fixed", "bandit"], default="fixed")
    e.add_argument("--description", default="")
    e.set_defaults(fn=cmd_experiments)

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
    logs.configure()
    if argv[:1] == ["kcat"]:
        return kcat(settings.load(), argv[1:])
    args = parser().parse_args(argv)
    return int(args.fn(settings.load(), args) or 0)


if __name__ == "__main__":
    sys.exit(main())
