"""The script ``spark-submit`` runs: ``switchyard spark`` with the arguments after it.

    spark-submit --master yarn "$(python -c 'import engine.spark.submit as s; print(s.__file__)')" \
        rules/ s3a://archive/events/ --output s3a://archive/outcomes/2025/

spark-submit runs a file, not a module, so this one imports Switchyard absolutely.
"""
import sys

from engine.spark.cli import main

if __name__ == "__main__":
    sys.exit(main())
