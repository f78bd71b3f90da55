"""The study: config keys, the grid of cells, the checks at DAG build, output paths, the report contract, tuning trials, power and cost."""
