# Snakemake adapter: rule aggregate -> the comparison tables under results/tables/
from contrastlab.aggregate import PROBE_METRICS, TEST_METRICS, collect, summary, write_table
from contrastlab.logs import job_logging

with job_logging(snakemake.log[0]):
    df = collect(snakemake.params.rows)
    numeric, shown = summary(df, TEST_METRICS + PROBE_METRICS + ["train_time_s", "peak_memory_mb"])
    write_table(numeric, shown, snakemake.output.md, snakemake.output.csv, "All cells",
                "Test metrics and probes of the [CLS] representation; mean ± std over seeds.")
