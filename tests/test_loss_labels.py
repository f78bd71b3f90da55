"""Issue 23: a table's loss label says what ran. For every family (families.NAMES), the label of
its default params is checked against its objective run on the tiny DeBERTa: a contrastive term
that does not change when the labels do is labelled unsupervised (SimCSE), one that does is not;
the term's weight is the label's; a family without a contrastive term names none."""
import pytest
import torch

from contrastlab.plan.config import ContrastParams, ModelConfig
from contrastlab.objectives.families import NAMES, build_objective, parse_params, spec
from contrastlab.training.model import build_classifier
from tiny_model import embedded_corpus_texts

CONTRASTIVE_TERMS = {"supcon", "focal_supcon", "margin"}


@pytest.fixture(scope="module")
def tiny(tiny_deberta_dir):
    from transformers import AutoTokenizer

    model = build_classifier(ModelConfig(name=str(tiny_deberta_dir), trainable_layers=2), num_labels=2)
    tok = AutoTokenizer.from_pretrained(str(tiny_deberta_dir))
    enc = tok(embedded_corpus_texts(8), truncation=True, max_length=48, padding=True, return_tensors="pt")
    return model, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def terms(family, model, batch, labels):
    torch.manual_seed(0)  # the same dropout draws for both label sets
    model.train()
    objective = build_objective(family, {}, model)
    with torch.no_grad():
        return {k: float(v) for k, v in objective(model, [{**batch, "labels": labels}], len(labels)).items()}


@pytest.mark.parametrize("family", NAMES)
def test_the_loss_label_says_whether_the_contrastive_term_uses_the_labels(tiny, family):
    model, batch = tiny
    form = parse_params(family, {}).form()
    one = terms(family, model, batch, torch.tensor([0, 1] * 4))
    other = terms(family, model, batch, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    contrastive = CONTRASTIVE_TERMS & set(one)
    if not issubclass(spec(family).Params, ContrastParams):
        assert not contrastive and "SupCon" not in form and "SimCSE" not in form, form
        return
    (term,) = contrastive
    uses_labels = abs(one[term] - other[term]) > 1e-6
    assert ("unsupervised" not in form) == uses_labels, (family, form, one[term], other[term])
    assert f"{parse_params(family, {}).alpha:g}·" in form, form


def test_simcse_reads_unsupervised_and_scl_supervised():
    assert parse_params("simcse", {}).form() == "CE + 0.1·unsupervised SimCSE"
    assert parse_params("scl", {}).form() == "CE + 0.2·SupCon"
    assert parse_params("token", {"k": 60, "alpha": 0.5}).form() == "CE + 0.5·SupCon over top-60 tokens"
