"""What benchmarks/RESULTS.md says about each benchmark's JSON: its section, and its rows of the
Goals table. benchmarks/run_all.py runs the benchmarks and writes the page from these."""
from __future__ import annotations

from _common import BEFORE_COMMIT

# ---- sections --------------------------------------------------------------------------------

def verdict(met) -> str:
    return "—" if met is None else ("**MET**" if met else "**MISSED**")


def section_trainer(r: dict) -> list[str]:
    c, q = r["contenders"], r["ratios"]
    lines = [f"{r['n_train']} training examples x {r['epochs']} epoch(s), batch {r['batch_size']} x grad-accum "
             f"{r['grad_accum']}, max_len {r['max_len']}, top {r['trainable_layers']} layers trainable, "
             f"{r['threads']} threads per contender; {r['n_test']} test examples; turns of "
             f"{r['segment_steps']} optimizer steps, round robin over all contenders.", "",
             "| contender | samples/s (median turn) | samples/s (total) | training s | turns | test accuracy |",
             "|---|---:|---:|---:|---:|---:|"]
    for n, x in c.items():
        lines.append(f"| {x.get('label', n)} | {x['median_turn_samples_per_s']:.2f} | {x['samples_per_s']:.2f} | "
                     f"{x['train_s']:.1f} | {x['turns']} | {x['accuracy']:.4f} |")
    lines += ["", "| ratio (ours over) | goal | measured | total-time ratio | accuracy diff (tol.) | verdict |",
              "|---|---:|---:|---:|---:|---|"]
    for n, x in q.items():
        goal = f">= {x['goal']:.1f}x" if x.get("goal") else "—"
        lines.append(f"| {x['what']} | {goal} | {x['ratio']:.2f}x | {x['ratio_total_time']:.2f}x | "
                     f"{x['accuracy_diff']:+.4f} (±{r['accuracy_tolerance']:.4f}) | {verdict(x['met'])} |")
    lines += ["", "A goal is MET when the ratio reaches it and the test accuracies agree within the tolerance. "
              "The not-judged row gives the Trainer our bf16 model set-up (eager attention, frozen linears stored "
              "in bf16): the gap between it and the judged bf16 row is what that set-up is worth, the rest is "
              "the loop."]
    return lines


def section_precision_speed(r: dict) -> list[str]:
    splits = r["splits"]
    lines = [f"Real optimizer steps of {r['step_size']} examples (epoch 0 of the default prepared data, max_len "
             f"{r['max_len']}), run by `contrastlab.training.train.Trainer.step`; per cell four contenders (fp32 / bf16 x "
             f"{' / '.join(splits)}) given the same {r['steps_per_round']} step(s) per round, {r['repeats']} "
             f"interleaved rounds (rotated order), {r['threads']} threads; samples/s = median over rounds. "
             f"config.yaml's default: {r['default_precision']}, {r['default_split']}.", "",
             "| cell | family | " + " | ".join(f"fp32 {s} | bf16 {s}" for s in splits)
             + " | " + " | ".join(f"bf16/fp32 {s}" for s in splits) + f" | bf16 {r['default_split']} / fp32 16x2 |",
             "|---|---|" + "---:|" * (3 * len(splits) + 1)]
    for c in r["cells"]:
        k = c["contenders"]
        rates = " | ".join(f"{k[f'fp32 {s}']['samples_per_s']:.1f} | {k[f'bf16 {s}']['samples_per_s']:.1f}" for s in splits)
        ratios = " | ".join(f"{c['bf16_over_fp32'][s]:.2f}x" for s in splits)
        lines.append(f"| {c['cell']} | {c['family']} | {rates} | {ratios} | {c['new_default_over_old']:.2f}x |")
    lines += ["", "| goal | measured | verdict |", "|---|---:|---|"]
    for g in r.get("goals", []):
        lines.append(f"| {g['what']} >= {g['goal']}x | {g['ratio']:.3f}x | {verdict(g['met'])} |")
    lines += ["", "The last column is the speed-up of the new default recipe over the old one (fp32, 16 x 2) "
              "at the same 32 examples per step."]
    return lines + avx2_row(r.get("avx2_only"))


def avx2_row(a: dict | None) -> list[str]:
    """precision_speed's AVX2-only row: bf16 on torch's fallback, forced on this CPU."""
    if not a:
        return []
    c, env = a["cell"], " ".join(f"{k}={v}" for k, v in a["env"].items())
    (split, ratio), = c["bf16_over_fp32"].items()
    k = c["contenders"]
    return ["", f"**AVX2-only CPU** (emulated here: `{env}`, which turns oneDNN's bf16 kernels off: its check then "
            f"says {a['bf16']['onednn_flag']}, and a bf16 Linear takes {a['bf16']['slowdown_vs_fp32']:.1f}x fp32's "
            f"time){where(a)}: baseline, {split}, {a['repeats']} rounds of {a['steps_per_round']} step: fp32 "
            f"{k[f'fp32 {split}']['samples_per_s']:.1f}/s, bf16 {k[f'bf16 {split}']['samples_per_s']:.1f}/s: "
            f"**bf16/fp32 {ratio:.3f}x**. `train.precision: auto` runs fp32 there, and an explicit bf16 stops at "
            "the job's start unless `runtime.allow_slow_precision: true`."]


def where(r: dict) -> str:
    """", on <cpu> (load ...)" when a result carries its own machine (measured apart from the rest)."""
    m = r.get("machine")
    return f", on {m['cpu']} (load average {m['load_avg'][0]:.1f} on {m['cores']} cores)" if m else ""


def section_grid_speedups(r: dict) -> list[str]:
    """grid_speedups.py: what each idea gains for the default grid on an AVX2-only CPU."""
    b = r["bf16"]
    how = (f"emulated with `{' '.join(f'{k}={v}' for k, v in b['isa_env'].items())}`" if b.get("isa_env")
           else "on this CPU as it is")
    runs = r.get("runs") or {"every idea": r}
    lines = [f"The default baseline cell in fp32 (what `auto` runs without native bf16), {how}{where(r)}; "
             + "; ".join(f"{k}: {v['steps']} real steps per round, {v['repeats']} rounds" for k, v in runs.items())
             + "; medians.", "",
             "| idea | measured | gain | kept |", "|---|---|---:|---|"]
    if "frozen" in r:
        f = r["frozen"]
        lines.append(f"| frozen layers cached (embeddings + {f['frozen_layers']} lowest layers) | step "
                     f"{f['step_s']:.3f} s, of which their forward {f['frozen_forward_s']:.3f} s "
                     f"({f['frozen_share']:.0%}) | {f['gain_per_cell']:.2f}x per non-LoRA cell | not built |")
    if "threads" in r:
        t = r["threads"]["median"]
        lines.append(f"| two 1-thread jobs vs one 2-thread job | {t['two 1-thread jobs']:.1f} vs "
                     f"{t['one 2-thread job']:.1f} examples/s | {r['threads']['two_1thread_over_one_2thread']:.2f}x | "
                     "on (runtime.threads: 1) |")
    if "compile" in r:
        c = r["compile"]
        lines.append(f"| torch.compile (training) | step {c['compile']['median_step_s']:.3f} vs eager "
                     f"{c['eager']['median_step_s']:.3f} s; first step {c['compile']['first_step_s']:.0f} s | "
                     f"{1 / c['compiled_over_eager_step']:.2f}x per step | off |")
    if "buckets" in r:
        k = r["buckets"]
        pad = k["padded_tokens"]
        lines.append(f"| length-grouped steps vs random (already on) | padded tokens {pad['grouped']:,} vs "
                     f"{pad['random']:,} ({k['tokens']:,} real) | {k['random_over_grouped_time']:.2f}x | on |")
    return lines + [""] + [f"- {n}" for n in r.get("notes", [])]


def section_flops(r: dict, passive: dict | None) -> list[str]:
    p = r["precisions"]
    lines = [f"{r['steps']} real optimizer steps of the default baseline cell ({r['samples_per_round']} samples, "
             f"batch {r['batch_size']} x {r['grad_accum']}, micro-batch shapes {r['micro_batch_shapes']}), "
             f"{r['threads']} threads, {r['repeats']} interleaved rounds of the training steps in fp32 and in bf16 "
             f"and of a {r['peak_mm_n']}² `torch.mm` in fp32 and in bf16 (the peaks).", "",
             "| figure | fp32 | bf16 |", "|---|---:|---:|",
             f"| attention kernel | {p['fp32']['attention']} | {p['bf16']['attention']} |",
             f"| training FLOPs per round (FlopCounterMode) | {p['fp32']['train_flops'] / 1e9:.1f} GFLOP | "
             f"{p['bf16']['train_flops'] / 1e9:.1f} GFLOP |",
             f"| achieved FLOP/s while training (median round) | {p['fp32']['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s | "
             f"{p['bf16']['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s |",
             f"| peak matmul FLOP/s of its dtype (median) | {p['fp32']['peak_flops_per_s'] / 1e9:.1f} GFLOP/s | "
             f"{p['bf16']['peak_flops_per_s'] / 1e9:.1f} GFLOP/s |",
             f"| **fraction of its peak** (goal: fp32 >= {p['fp32']['goal']}, bf16 >= {p['bf16']['goal']}) | "
             f"**{p['fp32']['fraction_of_peak']:.3f}** {verdict(p['fp32']['met'])} | "
             f"**{p['bf16']['fraction_of_peak']:.3f}** {verdict(p['bf16']['met'])} |",
             f"| training samples/s (same rounds) | {p['fp32']['samples_per_s']:.1f} | {p['bf16']['samples_per_s']:.1f} |",
             f"| matmul at the model's own shapes, fraction of its peak | "
             f"{p['fp32']['model_shape_mm_fraction_of_peak']:.2f} | {p['bf16']['model_shape_mm_fraction_of_peak']:.2f} |"]
    if passive:
        pp = passive["precisions"]
        lines.append(f"| fraction of peak with `OMP_WAIT_POLICY=PASSIVE` (separate run) | "
                     f"{pp['fp32']['fraction_of_peak']:.3f} | {pp['bf16']['fraction_of_peak']:.3f} |")
    lines += [f"| padding share of the tokens (dynamic padding) | {r['padding_share']:.3f} | (same steps) |",
              f"| bf16 peak over fp32 peak | | {r['bf16_peak_over_fp32_peak']:.2f}x |", "",
              "Where the training time goes (torch.profiler, self time of the same steps):", ""]
    cats = list(dict.fromkeys([*p["fp32"]["profile"]["share"], *p["bf16"]["profile"]["share"]]))
    head = "| category | fp32 | bf16 |" + (" fp32 PASSIVE | bf16 PASSIVE |" if passive else "")
    lines += [head, "|---|---:|---:|" + ("---:|---:|" if passive else "")]
    for k in cats:
        row = f"| {k} | {p['fp32']['profile']['share'].get(k, 0):.1%} | {p['bf16']['profile']['share'].get(k, 0):.1%} |"
        if passive:
            pp = passive["precisions"]
            row += f" {pp['fp32']['profile']['share'].get(k, 0):.1%} | {pp['bf16']['profile']['share'].get(k, 0):.1%} |"
        lines.append(row)
    return lines


def section_accuracy(r: dict) -> list[str]:
    scope = (f"`--quick` ({r['max_steps']} optimizer steps on 128 examples: a smoke test, not the figure to judge)"
             if r.get("quick") else
             (f"{r['max_steps']} optimizer steps" if r.get("max_steps") else f"{r['epochs']} epochs")
             + f" of {r['batch_size']} x {r['grad_accum']}, the default study's recipe")
    lines = [f"Each cell trained by `contrastlab.training.train.train` on the default prepared data in fp32 and in bf16, same "
             f"seed ({r['seed']}) and config otherwise; {scope}. Δ = bf16 − fp32 test accuracy, "
             + (f"paired bootstrap 95% interval over the test examples ({r['n_boot']} draws; recorded before the "
                "t interval of contrastlab.analysis.stats)" if "n_boot" in r else
                "paired t 95% interval over the test examples (contrastlab.analysis.stats.paired_difference)")
             + ", McNemar p on the same predictions. "
             "One seed per arm: the interval covers the test-set sampling, not training's seed-to-seed spread.", "",
             "| cell | family | n test | fp32 acc | bf16 acc | Δ (bf16 − fp32) | 95% interval | McNemar p | "
             "discordant (fp32 only / bf16 only right) | verdict |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for c in r["cells"]:
        one = [p for p in ("fp32", "bf16") if (c[p].get("collapsed") or {}).get("one_class")]
        note = f" (one class: {', '.join(one)})" if one else ""
        mc = c["mcnemar"]
        lines.append(f"| {c['cell']} | {c['family']} | {c['n_test']} | {c['fp32']['accuracy']:.4f} | "
                     f"{c['bf16']['accuracy']:.4f} | {c['diff']:+.4f} | [{c['lo']:+.4f}, {c['hi']:+.4f}] | "
                     f"{c['mcnemar_p']:.3f} | {mc['b10']} / {mc['b01']} | {c['verdict']}{note} |")
    worse = r.get("worse") or []
    lines += ["", f"Goal: no cell worse in bf16 beyond its 95% interval: {len(r['cells']) - len(worse)} of "
              f"{len(r['cells'])} within; worse: {', '.join(worse) or 'none'} — {verdict(r['met'])}."]
    return lines


def section_family(r: dict) -> list[str]:
    m = r.get("meta", {})
    lines = [f"From `family_cost.py`: device {m.get('device')}, precision {m.get('precision', 'fp32')}, clock "
             f"{m.get('clock')}, {m.get('torch_threads')} threads, {m.get('repeats')} interleaved repeats, batch "
             f"{m.get('batch_shape')}" + (" (`--quick`)" if m.get("quick") else "") + ".",
             "", "| variant | step-time ratio to baseline | target | verdict | median step s | peak RSS MB | RSS growth MB |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for v in r.get("variants", []):
        def f(key, fmt):
            return format(v[key], fmt) if v.get(key) is not None else "—"
        target = f"<= {v['target']}x" if v.get("target") else "—"
        lines.append(f"| {v['variant']} | {f('ratio', '.2f')}x | {target} | {verdict(v.get('meets_target'))} | "
                     f"{f('median_step_s', '.3f')} | {f('peak_rss_mb', '.0f')} | {f('rss_growth_mb', '.0f')} |")
    return lines


def section_embed(r: dict) -> list[str]:
    lines = [f"Batch {r['batch_size']}, {r['threads']} threads, {r['repeats']} interleaved repeats (median); "
             "each contender loads the data and the trained weights and writes the .npz.", "",
             "| case | n | mean tokens | max_len | ours fp32 samples/s | ours bf16 samples/s | plain fp32 samples/s | "
             "ours fp32 / plain | verdict (>= 1.0x) | max abs diff | **bf16 / fp32** | min cosine bf16 vs fp32 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for c in r["cases"]:
        lines.append(f"| {c['case']} | {c['n']} | {c['mean_tokens']:.1f} | {c['max_len']} | "
                     f"{c['ours_samples_per_s']:.1f} | {c['ours_bf16_samples_per_s']:.1f} | {c['plain_samples_per_s']:.1f} | "
                     f"{c['ratio']:.2f}x | {verdict(c['met'])} | {c['max_abs_diff']:.1e} | "
                     f"**{c['bf16_over_fp32']:.2f}x** | {c['bf16_min_cosine']:.6f} |")
    lines += ["", "bf16 / fp32 has no goal in the issue: it is the figure. `embed` has no backward pass, so in bf16 "
              "it keeps SDPA attention, whose bf16 forward is the fastest, and stores every linear layer in "
              "bf16 (contrastlab.training.precision)."]
    return lines


def section_startup(r: dict) -> list[str]:
    prec = r.get("precision", {})
    lines = [f"From process start to the end of the first forward pass of the encoder, each job being its rule's "
             f"own script (workflow/scripts/) run with the params its rule gives it; before = commit "
             f"{r['before_commit']} (cells in {prec.get('before', {}).get('baseline', '?')}), recorded data "
             "(results/before_c540d97.json: measured by an earlier run, on the machine it names), after = the "
             f"working tree (cells in {prec.get('after', {}).get('baseline', '?')}); {r['repeats']} rounds, median.", "",
             "| job | before s | after s | before / after | saved s | before: interpreter + torch + rest | "
             "after: interpreter + torch + rest | modules loaded, before → after |",
             "|---|---:|---:|---:|---:|---|---|---:|"]
    for j in r["jobs"]:
        b, a = j["before"], j["after"]
        lines.append(f"| {j['job']} | {b['median_s']:.2f} | {a['median_s']:.2f} | {j['speedup']:.2f}x | "
                     f"{j['saved_s']:+.2f} | {b['interpreter_s']:.2f} + {b['torch_import_s']:.2f} + {b['rest_s']:.2f} | "
                     f"{a['interpreter_s']:.2f} + {a['torch_import_s']:.2f} + {a['rest_s']:.2f} | "
                     f"{b['n_modules']} → {a['n_modules']} |")
    watched = [m for m in r["watched"] if any(j[v]["imported"].get(m) for j in r["jobs"] for v in ("before", "after"))]
    lines += ["", "Imported at the first forward (yes / no), before → after:", "",
              "| job | " + " | ".join(watched) + " |", "|---|" + "---|" * len(watched)]
    for j in r["jobs"]:
        cells = [f"{'yes' if j['before']['imported'].get(m) else 'no'} → {'yes' if j['after']['imported'].get(m) else 'no'}"
                 for m in watched]
        lines.append(f"| {j['job']} | " + " | ".join(cells) + " |")
    return lines


def section_probe(r: dict) -> list[str]:
    scope = ("`--quick` mode (one 3,000 x 384 size: a smoke test, not the figure to judge)"
             if r.get("quick") else "full mode: 20,000 x 384 (2 classes) and 20,000 x 768 (3 classes)")
    lines = [f"From `probe_speed.py`, {scope}. Goal: time ratio ours / reference <= {r['goal_ratio']}; "
             f"measured overall **{r['overall_ratio']:.2f}x** {verdict(r['overall_ratio'] <= r['goal_ratio'])}; "
             f"all metrics agree within tolerance: {r['all_agree']}.", "",
             "SVM solver, both sides: scikit-learn's liblinear primal (trust-region Newton) for the squared hinge "
             "with L2, C = 1. Ours pins `LinearSVC(dual=False)`; the reference's default `dual=\"auto\"` picks "
             "the same primal solver here (n_samples > n_features); versions before 1.5 defaulted to the dual.", "",
             "| size | stage | ours s | reference s | ratio |", "|---|---|---:|---:|---:|"]
    for s in r["sizes"]:
        for k, v in s["times_s"].items():
            lines.append(f"| {s['n']} x {s['d']} ({s['classes']} classes) | {k} | {v['ours']:.1f} | "
                         f"{v['reference']:.1f} | {v['ratio']:.2f}x |")
    lines += ["", "| size | metric | ours | reference | tolerance | agree |", "|---|---|---:|---:|---:|---|"]
    for s in r["sizes"]:
        for m, tol in s["tolerance"].items():
            lines.append(f"| {s['n']} x {s['d']} | {m} | {s['ours'][m]:.4f} | {s['reference'][m]:.4f} | "
                         f"{tol} | {s['agree'][m]} |")
    return lines


def section_dag(r: dict) -> list[str]:
    lines = [f"Jobs planned: {r['jobs_planned']}; the default run's outputs faked finished: {r['default_outputs']} "
             f"files; the tiny study's real run took {r['tiny_full_run_s']:.0f} s and its no-op found nothing to do: "
             f"{r['tiny_noop_nothing_to_do']}. {r['repeats']} interleaved repeats, median.", "",
             f"| command | median s | over the floor | minus the floor (s) | verdict (<= {r['rows'][1]['goal_s']:.0f} s) |",
             "|---|---:|---:|---:|---|"]
    floor = r["rows"][0]["median_s"]
    for row in r["rows"]:
        lines.append(f"| {row['what']} | {row['median_s']:.2f} | {row['over_floor']:.1f}x | "
                     f"{row['median_s'] - floor:.2f} | {verdict(row['met'])} |")
    if floor > 5:
        lines.append("\nThe floor itself is slow here: on import, snakemake-executor-plugin-slurm runs "
                     "`scontrol show config`, which waits ~9 s when the machine has SLURM clients but no "
                     "slurmctld answers. The DAG's own cost is the 'minus the floor' column.")
    earlier = r.get("before_earlier")
    if earlier:
        lines += ["", f"Measured earlier at {r.get('before_commit', BEFORE_COMMIT)} (fail-fast scontrol on PATH): "
                  + "; ".join(f"{k} {v[0]:.2f}" + (f"-{v[1]:.2f}" if v[1] != v[0] else "") + " s"
                              for k, v in earlier.items()) + "."]
    lines += [""] + [f"- {n}" for n in r.get("notes", [])] if r.get("notes") else []
    return lines


def section_calibration(r: dict) -> list[str]:
    b = r["bands"]
    lines = [f"Simulated studies of known truth (contrastlab.analysis.simulate), {r['reps']} replicates per cell; truth "
             "\"seeds\": about one accuracy point of seed-to-seed spread, \"examples\": almost none (seed x example "
             "noise dominates). S = 1 takes the seed variance from a pilot (analysis.seed_sd). Bands (issue 18): "
             f"false positives {b['false_positives']}, power at the reported MDD {b['power']}, coverage of the "
             f"95% interval {b['coverage']}. Planted: the seeds averaged before the test (issue 24).", "",
             "| truth | S | N | false positives | MDD | power at MDD | coverage | planted: false positives |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def mark(x, band):
        return f"{x:.3f}" if band[0] <= x <= band[1] else f"**{x:.3f}** (out)"
    for c in r["cells"]:
        planted = "—" if c["planted_false_positives"] is None else f"{c['planted_false_positives']:.3f}"
        lines.append(f"| {c['truth']} | {c['seeds']} | {c['n']} | {mark(c['false_positives'], b['false_positives'])} | "
                     f"{c['mdd']:.4f} | {mark(c['power'], b['power'])} | {mark(c['coverage'], b['coverage'])} | "
                     f"{planted} |")
    lines += ["", "Family-wise error of Holm's verdicts over 14 null comparisons sharing one reference (N = 1000; "
              f"band <= {b['fwer']}): " + "; ".join(f"{t}: " + ", ".join(f"S = {s}: {v:.3f}" for s, v in f.items())
                                                   for t, f in r["fwer"].items()) + "." + (
                  " Planted, the former df (Satterthwaite's from the seeds' mean square as estimated, not at its "
                  "upper 85% bound, stats.DF_BOUND): " + "; ".join(
                      f"{t}: " + ", ".join(f"S = {s}: {v:.3f}" for s, v in f.items())
                      for t, f in r["planted_fwer"].items()) + "." if r.get("planted_fwer") else ""),
              f"A 3-seed pilot recommends {r['recommended_seeds']} seeds for a true Δ of 0.012 (N = 1000); "
              f"running them detects it in {r['recommended_power']:.3f} of studies (band >= {b['recommended_power']}).",
              f"Wall time {r['wall_s'] / 60:.1f} min."]
    return lines


def section_paper_cost(r: dict) -> list[str]:
    n = r["counts"]
    lines = ["**An estimate, not a measurement**: no GPU figures of this workflow exist yet (issue 22; "
             "`tools/gpu-check` measures them). `benchmarks/paper_cost.py` (run by hand, not by `make bench`: "
             "FLOPs do not depend on the machine) counts the FLOPs of one `Trainer.step` and one forward pass of "
             "each kind of cell of `config/paper.yaml` (torch.utils.flop_counter, a random model of "
             "DeBERTa-v3-base's shapes, reviews that fill max_len: an upper bound). Per cell x seed: "
             f"{n['epochs']} epochs x {n['train']:,} training reviews, and forward passes over {n['epochs']} x "
             f"{n['val']:,} validation, {n['test']:,} test and {n['embed']:,} embedded reviews; a cell given another's "
             "budget (train.match_budget, \"2x steps\") trains and validates that many times as long.", "",
             "| kind of cell (family, max_len, LoRA, stages, views, level, steps) | cells | runs | GFLOP per training "
             "example | GFLOP per evaluated example | PFLOP per run |", "|---|---:|---:|---:|---:|---:|"]
    for x in r["rows"]:
        k = x["kind"]
        desc = ", ".join(str(v) for v in (k["family"], k["max_len"], "LoRA" if k["lora"] else None,
                                          k["stages"] and f"stages {k['stages']}", k["views"] and f"views {k['views']}",
                                          k["level"], "projection" if k["proj"] else None,
                                          k.get("steps_scale", 1) != 1 and f"{k['steps_scale']:g}x steps") if v)
        lines.append(f"| {desc} | {len(x['cells'])} | {x['runs']} | {x['train_flop_per_example'] / 1e9:.0f} | "
                     f"{x['eval_flop_per_example'] / 1e9:.0f} | {x['flop_per_run'] / 1e15:.1f} |")
    lines += ["", f"{r['runs']} runs, {r['total_flop'] / 1e18:.2f} EFLOP in all. GPU-hours on one GPU, with "
              f"{r['job_start_s']:.0f} s of start-up for each of the {2 * r['runs']} GPU jobs (train, embed):", "",
              "| assumed rate | TFLOP/s | GPU-hours |", "|---|---:|---:|"]
    for name, h in r["gpu_hours"].items():
        lines.append(f"| {name} | {r['rates'][name] / 1e12:.0f} | {h:.1f} |")
    base = next((x for x in r["rows"] if x["kind"]["family"] == "baseline" and not x["kind"]["lora"]), None)
    count = f"; the count here gives {base['train_flop_per_example'] / 256 / 1e9:.2f}" if base else ""
    lines += ["", "The first rate is issue 22's H200 figure for the baseline's bf16 step at 32 x 1 "
              f"(667 samples/s x 256 tokens x ~0.34 GFLOP per token{count}), applied to every family; the second "
              "is the issue's goal. The CPU jobs (probe, plot) run beside the GPU jobs and are not counted."]
    return lines


SECTIONS = [  # (result name, title, section builder)
    ("trainer_vs_ours", "Training loop vs the Hugging Face Trainer (fp32 and bf16)", section_trainer),
    ("precision_speed", "Training samples/s: bf16 vs fp32, baseline and every family", section_precision_speed),
    ("flops", "Fraction of the machine's limit (bf16 and fp32)", None),
    ("precision_accuracy", "Accuracy kept in bf16", section_accuracy),
    ("family_cost", "Per-family step time and peak memory vs the baseline", section_family),
    ("embed_speed", "Embedding extraction (bf16 vs fp32, and vs the plain loop)", section_embed),
    ("startup", f"Job start-up before the first forward: before ({BEFORE_COMMIT}) and after", section_startup),
    ("probe_speed", "Probe stage vs the reference evaluation", section_probe),
    ("dag_timing", "The DAG", section_dag),
    ("calibration", "Calibration of the verdict's statistics (issue 18)", section_calibration),
    ("grid_speedups", "The default grid on an AVX2-only CPU: what each idea gains", section_grid_speedups),
    ("paper_cost", "Cost of the paper preset on one GPU (an estimate from FLOPs)", section_paper_cost),
]
NUMBER = {name: i + 1 for i, (name, _, _) in enumerate(SECTIONS)}


def _get(fn):
    try:
        return fn()
    except (KeyError, TypeError, ValueError, IndexError, StopIteration):
        return None


def goal_rows(load) -> list[tuple]:
    """(goal, from, measured, met, section) for the Goals table; missing results give a '—' row."""
    rows = []

    def add(what, source, name, measure):
        r = load(name)
        got = _get(lambda: measure(r)) if r is not None else None
        if got is None:
            rows.append((what, source, "no result", None, name))
        else:
            rows.append((what, source, got[0], got[1], name))

    def ps_goal(split):
        def f(r):
            g = next(g for g in r["goals"] if g["what"].endswith(split))
            return f"{g['ratio']:.3f}x", g["met"]  # 3 decimals: 1.797 must not read as a missed 1.80
        return f

    add("Training samples/s bf16 / fp32, baseline, 32 x 1: >= 1.8x", "#11", "precision_speed", ps_goal("32x1"))
    add("Training samples/s bf16 / fp32, baseline, 16 x 2: >= 1.8x", "#11", "precision_speed", ps_goal("16x2"))

    def ps_family(r):
        xs = [(c["cell"], c["bf16_over_fp32"][r["default_split"]]) for c in r["cells"] if c["cell"] != "baseline"]
        lo = min(xs, key=lambda x: x[1])
        hi = max(xs, key=lambda x: x[1])
        return f"{lo[1]:.2f}x ({lo[0]}) to {hi[1]:.2f}x ({hi[0]}) at {r['default_split']}", None
    add("Training samples/s bf16 / fp32, every family (figure, no goal)", "#11", "precision_speed", ps_family)
    add("Training bf16 / fp32 on an AVX2-only CPU (emulated; figure: auto runs fp32 there)", "#20", "precision_speed",
        lambda r: (f"{next(iter(r['avx2_only']['cell']['bf16_over_fp32'].values())):.3f}x", None))
    add("Fraction of the bf16 matmul peak while training: >= 0.5", "#11", "flops",
        lambda r: (f"{r['precisions']['bf16']['fraction_of_peak']:.3f}", r["precisions"]["bf16"]["met"]))
    add("Fraction of the fp32 matmul peak while training (fp32): >= 0.6", "kept", "flops",
        lambda r: (f"{r['precisions']['fp32']['fraction_of_peak']:.3f}", r["precisions"]["fp32"]["met"]))

    def tvo(key):
        def f(r):
            x = r["ratios"][key]
            return f"{x['ratio']:.2f}x (accuracy {x['accuracy_diff']:+.4f})", x["met"]
        return f
    add("Ours bf16 / Trainer bf16=True at its best: >= 1.0x", "#11", "trainer_vs_ours", tvo("trainer_grouped_bf16"))
    add("Ours fp32 / Trainer padded to max_len (reference): >= 2.0x", "kept", "trainer_vs_ours", tvo("trainer_padded"))
    add("Ours fp32 / Trainer at its best: >= 1.0x", "kept", "trainer_vs_ours", tvo("trainer_grouped"))
    add("Embedding bf16 / fp32 (figure, no goal)", "#11", "embed_speed",
        lambda r: ("; ".join(f"{c['bf16_over_fp32']:.2f}x ({c['case'].split(' (')[0]})" for c in r["cases"]), None))
    add("Start-up to the first forward, before / after (figure, no goal)", "#11", "startup",
        lambda r: ("; ".join(f"{j['job']} {j['before']['median_s']:.1f} → {j['after']['median_s']:.1f} s"
                             for j in r["jobs"]), None))

    def acc(r):
        worse = r.get("worse") or []
        d = min(r["cells"], key=lambda c: c["diff"])
        return (f"{len(r['cells']) - len(worse)} of {len(r['cells'])} cells within; lowest Δ {d['diff']:+.4f} "
                f"({d['cell']}, [{d['lo']:+.4f}, {d['hi']:+.4f}])"), r["met"]
    add("Accuracy kept: no cell worse in bf16 beyond its 95% interval", "#11", "precision_accuracy", acc)

    def dag(what):
        def f(r):
            row = next(x for x in r["rows"] if x["what"] == what)
            return f"{row['median_s']:.2f} s", row["met"]
        return f
    add("DAG: paper preset `snakemake -n`: <= 5 s", "kept", "dag_timing", dag("paper preset: snakemake -n"))
    add("DAG: default `snakemake -n`: <= 5 s", "kept", "dag_timing", dag("default: snakemake -n, no outputs"))
    add("Embedding ours fp32 / plain loop: >= 1.0x", "kept", "embed_speed",
        lambda r: ("; ".join(f"{c['ratio']:.2f}x" for c in r["cases"]), r["met"]))
    add("Probe stage ours / reference time: <= 0.35x", "kept", "probe_speed",
        lambda r: (f"{r['overall_ratio']:.3f}x", r["overall_ratio"] <= r["goal_ratio"] and r["all_agree"]))

    def fam(r):
        judged = [v for v in r["variants"] if v.get("target")]
        missed = [v["variant"] for v in judged if not v.get("meets_target")]
        return f"{len(judged) - len(missed)} of {len(judged)} within target" + (
            f" (missed: {', '.join(missed)})" if missed else ""), not missed
    add("Per-family step-time targets (loss-family issue)", "kept", "family_cost", fam)
    rows.sort(key=lambda row: row[1] != "#11")  # issue #11's goals first (stable: in the order above)
    return rows
