"""The manager analyses (paper Figs. 4, 7, 23-25): every reported number recomputed here by another route, from
the managers' raw parameters or from ``output_managers=True`` outputs looped over samples and tokens."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from managertower import ManagerTowerModel
from managertower.analysis import WeightAccumulator, analyse, random_batches
from managertower.analysis.__main__ import main
from managertower.managers import AdaptiveManager, StaticManager
from managertower.testing import tiny_config

EXPERTS = [2, 3, 4]  # the top 3 layers of the tiny 4-layer encoders, 1-based
IMAGE_TOKENS = 1 + (32 // 8) ** 2  # class token + patches of the tiny 32 px, 8 px-patch ViT
FILES = {"manager_weights.csv", "manager_weights.png", "manager_similarity.csv", "manager_similarity.png"}


def _batch(lengths: tuple[int, ...], length: int, seed: int) -> dict[str, torch.Tensor]:
    """Ids padded with RoBERTa's pad id 1 after each sample's real length."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (len(lengths), length), generator=generator)
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    for row, real in enumerate(lengths):
        mask[row, :real] = 1
        ids[row, real:] = 1
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.randn(len(lengths), 3, 32, 32,
                                                                                  generator=generator)}  # fmt: skip


BATCHES = [((9, 4), 9, 0), ((2, 6, 3), 6, 1)]  # two batches of different sizes, lengths and padding


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _model(seed: int, **config) -> ManagerTowerModel:
    torch.manual_seed(seed)
    return ManagerTowerModel(tiny_config(**config)).eval()


# (a) static managers: the CSV against softmax(raw scores / temperature), mean over channels


@pytest.mark.parametrize("shape", ["n1", "nd"])
def test_saum_weights_are_the_normalised_parameters(tmp_path, shape):
    model = _model(0, manager={"type": "saum", "weights": shape})
    with torch.no_grad():  # far from the uniform init, a different temperature per manager
        for index, manager in enumerate(m for m in model.modules() if isinstance(m, StaticManager)):
            manager.scores.normal_(0, 2)
            manager.temperature.value.fill_(0.5 + 0.1 * index)
    analyse(model, [_batch(*BATCHES[0])], tmp_path)
    rows = _read(tmp_path / "manager_weights.csv")
    assert len(rows) == 3 * 2 * 3  # layers x modalities x experts
    for row in rows:
        inputs = model.text_inputs if row["modality"] == "text" else model.image_inputs
        manager = inputs.managers[int(row["layer"]) - 1]
        raw = manager.scores.detach().double()  # (N, D or 1)
        expected = torch.softmax(raw / manager.temperature.value.double(), dim=0).mean(dim=1)
        assert raw.shape[1] == (32 if shape == "nd" else 1)
        assert row["manager"] == "saum"
        # float32 softmax in the model, float64 here
        assert float(row["weight"]) == pytest.approx(expected[EXPERTS.index(int(row["expert"]))].item(), abs=1e-6)
        assert int(row["tokens"]) == (9 + 4 if row["modality"] == "text" else 2 * IMAGE_TOKENS)


def test_sam_reports_the_expert_share_of_its_joint_softmax():
    """SAM with the average init: one softmax over experts and previous outputs; only the experts' part is reported,
    not renormalised."""
    model = _model(1, manager={"type": "sam", "sam_average_init": True})
    manager = model.image_inputs.managers[2]  # layer 3: 3 experts and 2 previous outputs
    with torch.no_grad():
        manager.scores.normal_(0, 1)
        manager.cross_scores.normal_(0, 1)
    accumulator = WeightAccumulator.for_model(model)
    batch = _batch(*BATCHES[0])
    with torch.no_grad():
        accumulator.update(model(**batch, output_managers=True).managers, batch["attention_mask"])
    joint = torch.cat([manager.scores, manager.cross_scores]).detach().double() / manager.temperature.value.double()
    expected = torch.softmax(joint, dim=0)[:3].mean(dim=1)
    got = [r.weight for r in accumulator.records() if r.layer == 3 and r.modality == "image"]
    assert got == pytest.approx(expected.tolist(), abs=1e-7)
    assert sum(got) < 0.99


# (b), (c) AAUM: token-weighted means and cosines against loops over samples and tokens


@pytest.fixture(scope="module", params=["linear", "concat_attention"])
def aaum(request, tmp_path_factory):
    """An AAUM model with strongly input-dependent weights, its analysis and its raw outputs per batch."""
    model = _model(2, manager={"type": "aaum", "generator": request.param})
    with torch.no_grad():
        for manager in model.modules():
            if isinstance(manager, AdaptiveManager):
                nn.init.normal_(manager.controller.weight, std=0.5)
    batches = [_batch(*spec) for spec in BATCHES]
    result = analyse(model, batches, tmp_path_factory.mktemp("aaum"))
    with torch.no_grad():
        outputs = [model(**batch, output_managers=True).managers for batch in batches]
    return result, batches, outputs


def _valid(modality: str, batch: dict, sample: int) -> int:
    return int(batch["attention_mask"][sample].sum()) if modality == "text" else IMAGE_TOKENS


def test_aaum_weights_are_token_weighted_over_the_pass(aaum):
    result, batches, outputs = aaum
    for layer in (2, 3):
        for index, modality in enumerate(("text", "image")):
            total, count, batch_means = torch.zeros(3, dtype=torch.float64), 0, []
            for batch, managers in zip(batches, outputs, strict=True):
                weights = managers[layer - 1][index].weights.double()  # (B, N, L, 1 or D)
                batch_total, batch_count = torch.zeros(3, dtype=torch.float64), 0
                for sample in range(len(batch["input_ids"])):
                    for token in range(_valid(modality, batch, sample)):
                        batch_total += weights[sample, :, token].mean(dim=-1)
                        batch_count += 1
                total, count = total + batch_total, count + batch_count
                batch_means.append(batch_total / batch_count)
            expected = total / count
            got = [r for r in result["weights"] if r.layer == layer and r.modality == modality]
            assert [r.expert for r in got] == EXPERTS and {r.manager for r in got} == {"aaum"}
            assert [r.weight for r in got] == pytest.approx(expected.tolist(), abs=1e-9)
            assert {r.tokens for r in got} == {count}
            # the weights vary enough that a mean of batch means would miss the tolerance above a thousandfold
            assert (torch.stack(batch_means).mean(0) - expected).abs().max() > 1e-6


def test_aaum_layer_one_is_a_saum(aaum):
    result, _, _ = aaum
    assert {r.manager for r in result["weights"] if r.layer == 1} == {"saum"}


@pytest.mark.parametrize(("modality", "part", "layer"), [("text", "unimodal", 1), ("text", "cross", 2),
                                                         ("image", "unimodal", 2), ("image", "cross", 2)])  # fmt: skip
def test_similarity_is_the_mean_per_token_cosine(aaum, modality, part, layer):
    result, batches, outputs = aaum
    index = ("text", "image").index(modality)
    cosines = []
    for batch, managers in zip(batches, outputs, strict=True):
        first, second = getattr(managers[layer - 1][index], part), getattr(managers[layer][index], part)
        for sample in range(len(batch["input_ids"])):
            valid = _valid(modality, batch, sample)
            cosines.append(F.cosine_similarity(first[sample, :valid].double(), second[sample, :valid].double(), dim=-1))
    expected = torch.cat(cosines)
    (record,) = [r for r in result["similarity"] if (r.modality, r.part, r.layer) == (modality, part, layer)]
    assert record.next_layer == layer + 1 and record.tokens == len(expected)
    assert record.similarity == pytest.approx(expected.mean().item(), abs=1e-9)


def test_similarity_pairs(aaum):
    result, _, _ = aaum
    pairs = {(r.modality, r.part, r.layer) for r in result["similarity"]}
    # no cross-modal part in layer 1: the cross-modal pairs start at (2, 3)
    assert pairs == {(m, "unimodal", 1) for m in ("text", "image")} | {
        (m, p, 2) for m in ("text", "image") for p in ("unimodal", "cross")
    }
    rows = _read(result["files"]["manager_similarity.csv"])
    assert list(rows[0]) == ["modality", "part", "layer", "next_layer", "similarity", "tokens"]
    assert [float(r["similarity"]) for r in rows] == [r.similarity for r in result["similarity"]]


# (d) no managers


@pytest.mark.parametrize("fusion", ["meter", "bridgetower"])
def test_models_without_managers_are_refused(tmp_path, fusion):
    model = _model(3, fusion=fusion)
    with pytest.raises(ValueError, match=f"fusion={fusion} has no managers"):
        analyse(model, [_batch(*BATCHES[0])], tmp_path)
    assert not list(tmp_path.iterdir())


def test_an_empty_source_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no batches"):
        analyse(_model(3, manager={"type": "saum"}), [], tmp_path)


# (e) the CLI and its random inputs


def test_cli_writes_the_four_files(tmp_path):
    model = _model(4, manager={"type": "aaum"})
    model.save_pretrained(tmp_path / "ckpt")
    result = main(["--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out"), "--batches", "2",
                   "--batch-size", "3", "--seed", "5"])  # fmt: skip
    assert {p.name for p in (tmp_path / "out").iterdir()} == FILES
    for name in ("manager_weights.png", "manager_similarity.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _read(tmp_path / "out" / "manager_weights.csv")
    assert list(rows[0]) == ["layer", "modality", "manager", "expert", "weight", "tokens"]
    assert len(rows) == 3 * 2 * 3 and result["samples"] == 6
    fed = sum(int(b["attention_mask"].sum()) for b in random_batches(model.config, batches=2, batch_size=3, seed=5))
    assert {int(r["tokens"]) for r in rows if r["modality"] == "text"} == {fed}


def test_cli_refuses_bridgetower(tmp_path):
    _model(3, fusion="bridgetower").save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="bridgetower"):
        main(["--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")])


def test_random_batches():
    config = tiny_config()
    first = list(random_batches(config, batches=3, batch_size=4, seed=7))
    again = list(random_batches(config, batches=3, batch_size=4, seed=7))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, again, strict=True) for k in a)
    for batch in first:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape == (4, 38) and batch["pixel_values"].shape == (4, 3, 32, 32)
        assert ids.min() >= 0 and ids.max() < 99
        lengths = mask.sum(dim=1)
        assert lengths.min() >= 1 and torch.equal(mask, (torch.arange(38) < lengths[:, None]).long())
        assert bool((ids[mask == 0] == 1).all()) and bool((ids[mask == 1] != 1).all())
    with pytest.raises(ValueError, match="text_length=39"):
        random_batches(config, batches=1, batch_size=1, seed=0, text_length=39)


def test_cli_reads_real_batches_from_arrow_tables(tmp_path):
    from managertower.testing import tiny_arrow, tiny_tokenizer

    tiny_arrow(tmp_path / "arrow")
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    _model(4, manager={"type": "aaum"}).save_pretrained(tmp_path / "ckpt")
    result = main(["--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out"), "--batches", "2",
                   "--batch-size", "5", "--data_root", str(tmp_path / "arrow"), "--task", "vqa",
                   "--tokenizer", str(tmp_path / "tok"), "--max-text-len", "12"])  # fmt: skip
    assert result["samples"] == 10 and {p.name for p in (tmp_path / "out").iterdir()} == FILES
    rows = _read(tmp_path / "out" / "manager_weights.csv")
    # Real questions are shorter than the 12-token padding: the text means count real tokens only.
    assert 0 < int(next(r for r in rows if r["modality"] == "text")["tokens"]) < 10 * 12
