"""Runs carelens KPI SQL on Apache Spark (local mode) over the same snapshot and prints the
result rows as JSON: the cross-check that the catalogue's SQL is portable.

usage: python spark_check.py SNAPSHOT_DIR SQL_FILE
"""
import json, sys
from pathlib import Path

from pyspark.sql import SparkSession

snap, sql = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
spark = (SparkSession.builder.master("local[2]").appName("carelens-kpi-check")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
manifest = json.loads((snap / "manifest.json").read_text())
for table, t in manifest["tables"].items():
    if t["files"]:
        spark.read.parquet(str(snap / table)).createOrReplaceTempView(table)
rows = [r.asDict() for r in spark.sql(sql).collect()]
print(json.dumps(rows, default=str))
spark.stop()
