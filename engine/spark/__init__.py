"""Run a rule set on Apache Spark, in batch or as a stream, with the answers of ``switchyard run``.

From a notebook or a ``spark-submit`` script::

    from engine.spark import route
    routed = route(spark, "rules/", ["s3a://archive/events/2025/*.ndjson"], output="s3a://archive/outcomes/")
    print(routed.summary.render(False, routed.output))
    routed.outcomes.where("outcome in ('refused', 'failed')").show()

``route`` also takes a DataFrame with a JSON string column (``column=``, default ``value``)
instead of a session and paths. The driver lints the rules and refuses to start on an error
(:class:`RulesRefused`, with every problem); events are partitioned by person and sorted by
time, each executor compiles the rules once and routes its partitions through the pipeline of
``switchyard run`` (:mod:`engine.spark.job`), and the outcome rows are written once to
``output``: ``routed.outcomes`` reads them back, so looking at them never delivers again.

:func:`stream` does the same for each micro-batch of a Structured Streaming source (new files
in a folder, or Kafka). pyspark is imported only by the functions that need it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..summary import Summary
from .job import (
    FIELDS,
    INTEGERS,
    Job,
    alias_links,
    dead_letter_record,
    joined_by_alias,
    keyed,
    partition_of,
    refuse_local_transports,
    route_partition,
)
from .job import summarize as summarize_counts
from .shipment import RulesRefused, Shipment, ship

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

__all__ = ["Routed", "RulesRefused", "Shipment", "FORMATS", "session", "read_events", "events_of", "outcomes",
           "check_adapters", "route", "summarize", "write_dead_letters", "stream", "ship"]

FORMATS = ("parquet", "json")
_ENGINE_HOME = str(Path(__file__).resolve().parent.parent.parent)  # the folder that holds engine/


@dataclass
class Routed:
    """What :func:`route` did: the outcome rows as written to ``output``, and the summary computed from them."""

    outcomes: DataFrame
    summary: Summary
    output: str


def session(master: str | None = None, app_name: str = "switchyard", conf: Mapping[str, str] | None = None
            ) -> SparkSession:
    """A SparkSession (the active one if there is one). With a ``local`` master, the Python workers run
    this interpreter with this Switchyard, as ``switchyard run`` would."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    if (master or "").startswith("local"):
        # pyspark starts its workers with PYSPARK_PYTHON (else a `python3` from PATH, which may lack
        # Switchyard's dependencies), read when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        path = os.environ.get("PYTHONPATH")
        builder = builder.config("spark.executorEnv.PYTHONPATH", _ENGINE_HOME + (os.pathsep + path if path else ""))
    for name, value in (conf or {}).items():
        builder = builder.config(name, value)
    return builder.getOrCreate()


def read_events(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """NDJSON files (any Hadoop-compatible URI, folders and globs too) as lines, not parsed:
    ``value``, ``source`` (the file), the line's place in it (``block``, ``row``), and ``raw``.

    ``raw`` is the line's bytes when they are not UTF-8, else null. Spark keeps a line's bytes as read
    but hands Python the text with U+FFFD for each bad byte: ``u\\xff`` and ``u\\xfe`` would be one user id.
    The JVM finds such lines (their text written back differs from their bytes) and only those cross
    as bytes, which the executors refuse as unreadable, as ``run`` does.
    """
    from pyspark.sql import functions as F

    lines = spark.read.text(list(paths))
    read = F.col("value").cast("binary")
    return lines.select("value", F.col("_metadata.file_path").alias("source"),
                        F.col("_metadata.file_block_start").alias("block"),
                        F.monotonically_increasing_id().alias("row"),
                        F.when(F.encode(F.col("value"), "UTF-8") != read, read).alias("raw"))


def events_of(frame: DataFrame, column: str = "value", source: str | None = None) -> DataFrame:
    """A DataFrame with a JSON string ``column`` as the lines :func:`outcomes` takes; ``source`` names a
    column saying where each event came from (else none)."""
    from pyspark.sql import functions as F

    return frame.select(F.col(column).cast("string").alias("value"),
                        (F.col(source).cast("string") if source else F.lit(None).cast("string")).alias("source"),
                        F.lit(0).cast("long").alias("block"), F.monotonically_increasing_id().alias("row"),
                        F.lit(None).cast("binary").alias("raw"))


def outcomes(lines: DataFrame, shipment: Shipment, *, dry_run: bool = False, partitions: int | None = None,
             workspace: str | None = None) -> DataFrame:
    """The outcome rows of ``lines`` (from :func:`read_events` or :func:`events_of`), not computed yet.

    Unless ``dry_run``, **computing it delivers**: every action on the DataFrame sends the calls
    again. Write it once (as :func:`route` does) and read what was written.
    """
    spark = lines.sparkSession
    context = spark.sparkContext
    count = partitions or max(context.defaultParallelism, lines.rdd.getNumPartitions())
    if not dry_run:
        check_adapters(shipment, local=(context.master or "").startswith("local"), workspace=workspace)
    job = Job(shipment, dry_run=dry_run, store=workspace, rate_shares=max(1, min(count, context.defaultParallelism)))
    # Aliases are rare: the JVM picks the lines that may be one (the word, or an escape that may spell it:
    # "\u0061lias"), the executors read them, and the driver joins their ids.
    maybe = lines.value.contains('"alias"') | lines.value.contains("\\u")
    aliases = joined_by_alias(lines.where(maybe).rdd.mapPartitions(alias_links).collect())
    rows = (lines.rdd.mapPartitions(lambda items: keyed(items, aliases))
            .repartitionAndSortWithinPartitions(count, partitionFunc=partition_of)
            .mapPartitionsWithIndex(lambda index, items: route_partition(job, index, items)))
    # The rows' types are ours and fixed (job.INTEGERS); checking each row again in Python costs ~3 µs a row.
    return spark.createDataFrame(rows, schema=_schema(), verifySchema=False)


def check_adapters(shipment: Shipment, *, local: bool, workspace: str | None = None) -> None:
    """Open (and close) every destination's adapter here, as ``run`` does before the first event: a
    SetupError stops the job before any task starts. Local-disk transports are refused off ``local``."""
    from ..run import open_adapters

    rules = shipment.rules()
    refuse_local_transports(rules.destinations, local=local)
    for adapter in open_adapters(rules, store=workspace).values():
        adapter.close()


def route(source: SparkSession | DataFrame, rules: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
          inputs: Sequence[str] = (), *, output: str, format: str = "parquet", dry_run: bool = False,
          partitions: int | None = None, column: str = "value", workspace: str | None = None) -> Routed:
    """Route the events of ``inputs`` (NDJSON paths; with a session) or of a DataFrame's JSON ``column``
    through ``rules``; write the outcome rows to ``output`` (which must not exist) as ``format``.

    Raises :class:`RulesRefused` when the rules have errors, SetupError when a destination
    cannot deliver (a local-disk transport on a cluster).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    shipment, _, _ = ship(_paths(rules), dry_run=dry_run)
    from pyspark.sql import SparkSession

    if isinstance(source, SparkSession):
        spark, lines = source, read_events(source, inputs)
    else:
        spark, lines = source.sparkSession, events_of(source, column)
    rows = outcomes(lines, shipment, dry_run=dry_run, partitions=partitions, workspace=workspace)
    rows.write.format(format).mode("errorifexists").save(output)
    written = spark.read.schema(_schema()).format(format).load(output)
    return Routed(written, summarize(written, dry_run=dry_run), output)


def summarize(rows: DataFrame, *, dry_run: bool = False) -> Summary:
    """The delivery overview of ``switchyard run``, computed from outcome rows."""
    counts = rows.groupBy("kind", "event_bucket", "destination", "mapping", "outcome").count().collect()
    return summarize_counts((tuple(row) for row in counts), dry_run=dry_run)  # type: ignore[misc]


def write_dead_letters(rows: DataFrame, path: str | os.PathLike[str]) -> int:
    """Write the rows that were not delivered as ``switchyard run``'s dead-letter records (NDJSON, on the
    driver), for ``switchyard replay``; returns how many."""
    from ..events import to_line

    undelivered = rows.where("kind in ('invalid_payload', 'invalid_event', 'unreadable') "
                             "or (kind = 'call' and outcome in ('refused', 'failed'))")
    count = 0
    with open(path, "ab") as out:
        for row in undelivered.toLocalIterator():
            record = dead_letter_record(row.asDict())
            if record is not None:
                out.write(to_line(record))
                count += 1
    return count


def stream(spark: SparkSession, rules: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], folder: str,
           *, output: str, checkpoint: str, format: str = "parquet", dry_run: bool = False,
           partitions: int | None = None, workspace: str | None = None, kafka: Mapping[str, str] | None = None,
           available_now: bool = False, on_batch: Callable[[int, Summary], Any] | None = None) -> StreamingQuery:
    """Route each micro-batch of new NDJSON files in ``folder`` (or of a Kafka source: ``kafka`` holds its
    options, ``folder`` is then unused) and write its outcome rows to ``output/batch=N``.

    With the ``checkpoint`` folder, a restarted stream goes on after the last finished micro-batch;
    one interrupted by a crash is routed (and delivered) again, at least once. ``available_now``
    routes what is there and stops. ``on_batch(batch_id, summary)`` is called after each batch.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    shipment, _, _ = ship(_paths(rules), dry_run=dry_run)
    if kafka:
        reader = spark.readStream.format("kafka")
        for name, value in kafka.items():
            reader = reader.option(name, value)
        lines = reader.load().selectExpr("CAST(value AS STRING) AS value",
                                         "concat(topic, ':', partition) AS source",
                                         "CAST(partition AS LONG) AS block", "offset AS row")
    else:
        lines = spark.readStream.format("text").load(folder).selectExpr(
            "value", "_metadata.file_path AS source", "_metadata.file_block_start AS block")

    def route_batch(batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        if "row" not in batch.columns:
            batch = batch.withColumn("row", F.monotonically_increasing_id())
        rows = outcomes(batch.select("value", "source", "block", "row"), shipment, dry_run=dry_run,
                        partitions=partitions, workspace=workspace)
        target = f"{output.rstrip('/')}/batch={batch_id}"
        # A batch run again after a crash replaces what its first run wrote.
        rows.write.format(format).mode("overwrite").save(target)
        if on_batch is not None:
            on_batch(batch_id, summarize(spark.read.schema(_schema()).format(format).load(target), dry_run=dry_run))

    writer = lines.writeStream.foreachBatch(route_batch).option("checkpointLocation", checkpoint)
    if available_now:
        writer = writer.trigger(availableNow=True)
    return writer.start()


def _paths(rules: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    return [rules] if isinstance(rules, (str, os.PathLike)) else list(rules)


def _schema() -> Any:
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    types = {32: IntegerType(), 64: LongType()}
    return StructType([StructField(name, types[INTEGERS[name]] if name in INTEGERS else StringType(), True)
                       for name in FIELDS])
