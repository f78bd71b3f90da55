"""Aggregate: every cell's results -> the study's tables, figures, verdict and report page.

    collect   read the per-cell results (metrics, predictions, histories, t-SNE maps)
    compare   each cell's accuracy difference to its reference on the same test examples
    verdict   one line per comparison, and the report's first page
    tables    the tables of every study (Markdown + CSV + HTML) and their machinery
    figures   the figures of every study: forest plot, loss, gradient-norm and validation curves
    outputs   which tables and figures a grid produces (torch- and pandas-free: used at DAG build)
    run       `aggregate(runs, outputs, baseline)`: everything above, what the Snakemake rule calls

A family's own tables and figures are in contrastlab.objectives.families.<family>.report.
This __init__ imports nothing heavy: the Snakefile imports `outputs` while building the DAG.
"""
