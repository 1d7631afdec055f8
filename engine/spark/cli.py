"""``switchyard spark``: ``switchyard run`` on Apache Spark, in batch or as a stream.

Wired into :mod:`engine.cli` with :func:`add_spark_command` and :func:`run_spark`. Nothing here
imports pyspark until the command runs, so the other commands start as fast as before.
Exit codes as ``run``: 0 when every call was delivered (or a dry run), 1 when rules have errors,
a destination cannot deliver, or any call was refused or failed; 2 for usage errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def add_spark_command(subparsers: Any) -> None:
    """Add ``spark`` to the ``switchyard`` command's subparsers."""
    spark = subparsers.add_parser("spark", help="run the rules over events on Apache Spark (batch or stream)")
    spark.add_argument("rules", metavar="PATH", help="a rule file or a directory of them")
    spark.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="NDJSON files, folders or globs (any Hadoop-compatible URI); with --stream, the folder "
                            "to watch")
    spark.add_argument("--output", required=True, metavar="DIR",
                       help="where the outcome rows are written (must not exist; with --stream, one batch=N "
                            "folder per micro-batch)")
    spark.add_argument("--master", metavar="URL",
                       help="Spark master, e.g. local[4] (default: spark-submit's, else local[*])")
    spark.add_argument("--dry-run", action="store_true", help="write the calls without delivering them")
    spark.add_argument("--partitions", metavar="N", type=_positive,
                       help="partitions of events by person (default: the cluster's cores, or the input's splits)")
    spark.add_argument("--format", choices=("parquet", "json"), default="parquet",
                       help="format of the outcome rows (default: %(default)s)")
    spark.add_argument("--dead-letter", metavar="FILE",
                       help="also write what was not delivered as run's dead-letter records, for `switchyard replay`")
    spark.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON")
    spark.add_argument("--workspace", metavar="PATH",
                       help="the SQLite workspace for transport: workspace (local masters only)")
    stream = spark.add_argument_group("streaming")
    stream.add_argument("--stream", action="store_true",
                        help="route new files as they land in the INPUT folder (Structured Streaming)")
    stream.add_argument("--checkpoint", metavar="DIR", help="the stream's checkpoint folder (required with --stream)")
    stream.add_argument("--available-now", action="store_true",
                        help="with --stream, route the files there now and stop")
    stream.add_argument("--kafka", action="append", metavar="OPTION=VALUE", default=[],
                        help="read the stream from Kafka with Spark's Kafka source and this option (repeatable), "
                             "e.g. kafka.bootstrap.servers=host:9092, subscribe=events; INPUT is then ignored")


def run_spark(args: argparse.Namespace) -> int:
    """Run ``switchyard spark`` with parsed ``args``; the exit code."""
    from ..adapters import SetupError

    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("switchyard: `switchyard spark` needs pyspark: pip install 'switchyard[spark]'", file=sys.stderr)
        return EXIT_PROBLEMS
    from . import RulesRefused, route, session, ship, stream, summarize, write_dead_letters

    if not Path(args.rules).exists():
        print(f"switchyard: no such file or directory: {args.rules}", file=sys.stderr)
        return EXIT_USAGE
    if args.stream and not args.checkpoint:
        print("switchyard: --stream needs --checkpoint DIR", file=sys.stderr)
        return EXIT_USAGE
    # Said here, as run says it, rather than as a traceback from Spark: local paths only (hdfs://, s3a:// ...
    # are Spark's to read).
    for name in [] if args.kafka else args.inputs:
        if "://" not in name and not Path(name).exists():
            print(f"switchyard: no such file or directory: {name}", file=sys.stderr)
            return EXIT_USAGE
    if not args.stream and "://" not in args.output and Path(args.output).exists():
        print(f"switchyard: --output {args.output} exists; name a folder that does not", file=sys.stderr)
        return EXIT_USAGE
    kafka = dict(option.partition("=")[::2] for option in args.kafka)
    try:
        ship([args.rules], dry_run=args.dry_run)  # lint first: no JVM is started for rules with errors
    except RulesRefused as refused:
        return _refused(refused)
    spark = session(args.master or _default_master())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        if args.stream:
            query = stream(spark, args.rules, args.inputs[0], output=args.output, checkpoint=args.checkpoint,
                           format=args.format, dry_run=args.dry_run, partitions=args.partitions,
                           workspace=args.workspace, kafka=kafka or None, available_now=args.available_now,
                           on_batch=_print_batch)
            try:
                query.awaitTermination()
            except KeyboardInterrupt:
                query.stop()  # a micro-batch cut short is routed again by the next start
            rows = _written(spark, args.output, args.format)
            summary = summarize(rows, dry_run=args.dry_run)
        else:
            routed = route(spark, args.rules, args.inputs, output=args.output, format=args.format,
                           dry_run=args.dry_run, partitions=args.partitions, workspace=args.workspace)
            rows, summary = routed.outcomes, routed.summary
        if args.dead_letter is not None:
            write_dead_letters(rows, args.dead_letter)
    except RulesRefused as refused:
        return _refused(refused)
    except SetupError as error:
        print(f"switchyard: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        spark.stop()
    print(summary.render(args.dry_run, args.dead_letter or args.output), file=sys.stderr)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return EXIT_OK if not summary.undelivered else EXIT_PROBLEMS


def _written(spark: Any, output: str, format: str) -> Any:
    """The outcome rows a stream wrote to ``output``, read with their schema (a column null on every row is
    not in a JSON file); none when no micro-batch wrote any."""
    from pyspark.errors import AnalysisException

    from . import _schema

    try:
        return spark.read.schema(_schema()).format(format).load(output)
    except AnalysisException as error:
        if "PATH_NOT_FOUND" not in str(error):
            raise
        return spark.createDataFrame([], schema=_schema())


def _refused(refused: Any) -> int:
    """Print every problem of rules that cannot run, as ``switchyard lint`` does."""
    from ..diagnostics import format_text

    for problem in sorted(refused.problems, key=lambda p: (p.file, p.line, p.column)):
        print(format_text(problem), file=sys.stderr)
    print(f"switchyard: {refused}; nothing was routed", file=sys.stderr)
    return EXIT_PROBLEMS


def _default_master() -> str | None:
    """spark-submit's master when it started us (it opened the gateway), else every core of this machine."""
    import os

    return None if "PYSPARK_GATEWAY_PORT" in os.environ else "local[*]"


def main(argv: list[str] | None = None) -> int:
    """``switchyard spark`` alone: what ``spark-submit engine/spark/submit.py ...`` runs."""
    parser = argparse.ArgumentParser(prog="switchyard spark")
    add_spark_command(parser.add_subparsers(dest="command", required=True))
    return run_spark(parser.parse_args(["spark", *(sys.argv[1:] if argv is None else argv)]))


def _print_batch(batch_id: int, summary: Any) -> None:
    print(f"batch {batch_id}: {summary.events} events, {sum(summary.calls.values())} calls, "
          f"{summary.undelivered} not delivered", file=sys.stderr, flush=True)


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"needs at least 1, got {number}")
    return number
