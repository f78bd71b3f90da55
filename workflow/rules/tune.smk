# Tuning (config `tune:`, contrastlab.plan.tuning): each tuned cell's trials, cheap runs scored on the
# validation split only and cached like any cell, then the selection its train jobs read.


rule tune_trial:
    input:
        prepared=trial_prepared,
    output:
        **layout.trial_files(R),
    params:
        cell=trial_config,
        state=trial_state,
        attempts=attempts_of("tune_trial"),
        code=tune_trial_code,
    threads: RUNTIME.threads
    resources:
        gpu=gpus_of_cell,
        mem_mb=RUNTIME.mem_mb,
        runtime=train_runtime,
    log:
        layout.job_log(R, "tune", "{cell}/trial{trial}"),
    benchmark:
        layout.job_benchmark(R, "tune", "{cell}/trial{trial}")
    conda:
        "../../environment.yml"
    script:
        "../scripts/tune_trial.py"


rule tune_select:
    input:
        trials=trial_metrics,
    output:
        layout.selection_file(R),
    params:
        values=trial_values,
        cell=tuned_cell_config,
        attempts=attempts_of("tune_select"),
        code=script_code("tune_select"),
    log:
        layout.job_log(R, "tune", "{cell}/select"),
    conda:
        "../../environment.yml"
    script:
        "../scripts/tune_select.py"
