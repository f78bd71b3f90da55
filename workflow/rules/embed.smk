rule embed:
    input:
        prepared=prepared_of_cell,
        weights=layout.stage_files(R, "train")["weights"],
    output:
        **layout.stage_files(R, "embed"),
    params:
        cell=cell_config,
        probe=PLAN.study.probe.model_dump(include={"split", "max_samples", "layers"}),
        attempts=attempts_of("embed"),
        code=script_code("embed"),
    threads: RUNTIME.threads
    resources:
        gpu=gpus_of_cell,
        mem_mb=RUNTIME.mem_mb,
    log:
        layout.log_file(R, "embed"),
    benchmark:
        layout.benchmark_file(R, "embed")
    conda:
        "../../environment.yml"
    script:
        "../scripts/embed.py"
