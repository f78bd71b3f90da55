"""Aggregate: every cell's results -> the comparison tables and figures of the study.

    collect   read the per-cell results (metrics, predictions, histories, t-SNE maps)
    compare   each cell's accuracy difference to its reference on the same test examples
    tables    the README's tables (Markdown + CSV + HTML): one row per cell, mean ± std over seeds
    figures   the study's figures: t-SNE grid, multi-layer bars, curves, cost bars, forest plot
    outputs   which tables and figures a grid produces (torch-, pandas-free: used at DAG build)
    run       `aggregate(rows, outputs)`: everything above, what the Snakemake rule calls

This __init__ imports nothing heavy: the Snakefile imports `outputs` while building the DAG.
"""
