rule train:
    input:
        unpack(train_inputs),
    output:
        **layout.stage_files(R, "train"),
    params:
        cell=cell_config,
        state=train_state,
        attempts=attempts_of("train"),
        run=tracked_run,
        code=train_code,
    threads: RUNTIME.threads
    resources:
        gpu=gpus_of_cell,
        mem_mb=RUNTIME.mem_mb,
        runtime=train_runtime,
    log:
        layout.log_file(R, "train"),
    benchmark:
        layout.benchmark_file(R, "train")
    conda:
        "../../environment.yml"
    script:
        "../scripts/train.py"
