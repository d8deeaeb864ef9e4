"""The Python API (``saebench.evaluate_sae`` / ``evaluate_saes``) on sae-lens SAE objects.

Every sae-lens architecture that sae-lens 6 can build here is scored as an object, on the
embedded tiny-ioi model with small settings. Those that saebench's own reader also loads from
disk (what ``saebench run --sae DIR`` scores) are saved with sae-lens's own save method and
must score exactly the same: both paths compute the same float32 operations in the same order
(``(x − b_dec) W_enc + b_enc``, then the activation; ``f W_dec + b_dec``). The one exception is
a TopK SAE with ``rescale_acts_by_decoder_norm``: sae-lens computes ``(x W_enc + b_enc) · n``
while the reader folds ``n`` into ``W_enc`` and ``b_enc``, and ``decode`` divides the codes by
``n`` where the reader divides ``W_dec``, so its metrics agree to 1e-6 instead.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest
import torch

import saebench
from saebench.model import load_model
from saebench.sae.adapters import SAELensAdapter, as_scorable
from saebench.sae.formats import SAELoadError, load_sae

sae_lens = pytest.importorskip("sae_lens")
from sae_lens.saes import (  # noqa: E402
    AbsTopKSAE,
    AbsTopKSAEConfig,
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    MatchingPursuitSAE,
    MatchingPursuitSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HOOK = "blocks.1.hook_resid_pre"
Z_HOOK = "blocks.0.attn.hook_z"
D, F = 64, 128
SMALL = dict(n_prompts=60, n_fit_prompts=300, ks=(1, 2), progress=False, cache_dir=None)

CASES = {
    "standard": (StandardSAE, StandardSAEConfig, {}),
    "topk": (TopKSAE, TopKSAEConfig, {"k": 4}),
    "topk_rescaled": (TopKSAE, TopKSAEConfig, {"k": 4, "rescale_acts_by_decoder_norm": True}),
    "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig, {}),
    "gated": (GatedSAE, GatedSAEConfig, {}),
    "batchtopk": (BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, {"k": 4}),
    "abstopk": (AbsTopKSAE, AbsTopKSAEConfig, {"k": 4}),
    "matching_pursuit": (MatchingPursuitSAE, MatchingPursuitSAEConfig, {}),
    "layer_norm": (StandardSAE, StandardSAEConfig, {"normalize_activations": "layer_norm"}),
    "topk_hook_z": (TopKSAE, TopKSAEConfig, {"k": 4, "reshape_activations": "hook_z"}),
}
"""Every sae-lens 6.54 SAE architecture (batchtopk exists only as a training SAE; it is
saved, and scored, as the JumpReLU sae-lens turns it into), a layer_norm-normalised one, and
a hook_z SAE reading all heads of layer 0 concatenated."""
DISK_LOADABLE = ("standard", "topk", "topk_rescaled", "jumprelu", "gated", "batchtopk")
DISK_LOADABLE += ("topk_hook_z",)
"""Cases saebench's own reader (the CLI's ``--sae DIR``) loads."""
SAELENS_ONLY = ("abstopk", "matching_pursuit", "layer_norm")
"""Cases only sae-lens represents: the API loads their directories through sae-lens."""
TOLERANCE = {"topk_rescaled": 1e-5}
"""Relative tolerance per case (its rescaled decoder is saved in float32 and sums in another
order); every other case must match exactly."""


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def model():
    return load_model("tiny-ioi")


def make_saelens(case: str, seed: int = 0):
    """A sae-lens SAE of ``case`` with seeded random weights at its tiny-ioi node."""
    sae_cls, cfg_cls, kwargs = CASES[case]
    hook = Z_HOOK if kwargs.get("reshape_activations") == "hook_z" else HOOK
    metadata = SAEMetadata(model_name="tiny-ioi", hook_name=hook, prepend_bos=True)
    sae = sae_cls(cfg_cls(d_in=D, d_sae=F, metadata=metadata, **kwargs))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sae.named_parameters():
            if name == "threshold":
                param.copy_(0.5 * torch.rand(param.shape, generator=gen))
            elif name in ("b_enc", "b_gate", "b_mag", "r_mag"):
                param.copy_(0.1 * torch.randn(param.shape, generator=gen))
            else:
                param.copy_(0.3 * torch.randn(param.shape, generator=gen))
        if case == "matching_pursuit":  # matching pursuit needs unit-norm atoms
            sae.W_dec.div_(sae.W_dec.norm(dim=-1, keepdim=True))
        if case == "batchtopk":
            sae.topk_threshold.fill_(0.3)
    return sae


def save_with_saelens(sae, path: Path) -> Path:
    """sae-lens's own save: a training SAE in the inference form it ships."""
    if isinstance(sae, BatchTopKTrainingSAE):
        sae.save_inference_model(path)
    else:
        sae.save_model(path)
    return path


def assert_same_metrics(got: dict, want: dict, tol: float = 0.0) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert abs(got[key] - value) <= tol * max(1.0, abs(value)), (key, got[key], value)


@pytest.fixture(scope="module")
def object_results(model):
    """Every case scored as a sae-lens object, one ``evaluate_sae`` each."""
    return {case: saebench.evaluate_sae(make_saelens(case), model=model, **SMALL) for case in CASES}


@pytest.mark.parametrize("case", DISK_LOADABLE)
def test_saelens_object_scores_like_the_same_sae_saved_by_saelens_and_loaded_by_the_cli_reader(
    case, model, object_results, tmp_path
):
    path = save_with_saelens(make_saelens(case), tmp_path / case)
    from_disk = saebench.evaluate_sae(load_sae(path), model=model, **SMALL)
    from_object = object_results[case]
    assert from_object.node == from_disk.node
    assert_same_metrics(from_object.metrics, from_disk.metrics, TOLERANCE.get(case, 0.0))
    # the same weights are the same leaderboard row
    assert from_object.identity["sae_hash"] == from_disk.identity["sae_hash"]
    assert from_object.identity["architecture"] == from_disk.identity["architecture"]


@pytest.mark.parametrize("case", SAELENS_ONLY)
def test_saelens_only_architectures_are_scored_from_their_directory_through_saelens(
    case, model, object_results, tmp_path
):
    path = save_with_saelens(make_saelens(case), tmp_path / case)
    with pytest.raises(SAELoadError):
        load_sae(path)  # saebench's own reader cannot represent it ...
    from_path = saebench.evaluate_sae(str(path), model=model, **SMALL)  # ... sae-lens can
    assert_same_metrics(from_path.metrics, object_results[case].metrics)
    assert from_path.identity["sae_id"] == str(path)


def test_every_case_scores_at_the_node_of_its_metadata(object_results):
    for case, result in object_results.items():
        hook = Z_HOOK if case == "topk_hook_z" else HOOK
        assert str(result.node) == f"{hook}@END"
        assert result.identity["hook"] == hook and result.identity["model"] == "tiny-ioi"
        assert all(not math.isnan(result.metrics[k]) for k in ("l0", "fvu", "sufficiency"))
    # topk-like codes: exactly k active latents per prompt, sae-lens's own selection
    for case in ("topk", "abstopk", "topk_hook_z"):
        assert object_results[case].metrics["l0"] == 4.0
    assert object_results["batchtopk"].identity["architecture"] == "batchtopk"
    frame = object_results["abstopk"].to_frame()
    assert len(frame) == 1 and frame.loc[0, "architecture"] == "abstopk"
    assert frame.loc[0, "l0"] == object_results["abstopk"].metrics["l0"]


@pytest.mark.parametrize("case", list(CASES))
def test_adapter_codes_and_reconstructions_are_saelens_own(case):
    """decode(encode(x)) is sae-lens's forward pass, even with other inputs encoded in
    between (a layer_norm SAE's per-input statistics travel with their codes)."""
    sl = make_saelens(case)
    adapter = as_scorable(sl, d_head=16)
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(32, D, generator=gen), 3 * torch.randn(16, D, generator=gen) + 1
    codes1 = adapter.encode(x1)
    codes2 = adapter.encode(x2)
    if isinstance(sl, BatchTopKTrainingSAE):  # scored as its inference JumpReLU
        sl = adapter.sae
    with torch.no_grad():
        want1, want2 = sl(_shaped(sl, x1)), sl(_shaped(sl, x2))
    torch.testing.assert_close(adapter.decode(codes1), want1.flatten(1), rtol=0, atol=0)
    torch.testing.assert_close(adapter.decode(codes2), want2.flatten(1), rtol=0, atol=0)
    if isinstance(sl, GatedSAE):  # metrics.md §6: the open gate, even where the magnitude is 0
        gate = (sl.process_sae_in(x1) @ sl.W_enc + sl.b_gate) > 0
        assert torch.equal(adapter.active(x1), gate)
    else:
        assert torch.equal(adapter.active(x1), codes1 != 0)


def _shaped(sl, x):
    return x.unflatten(-1, (-1, 16)) if sl.cfg.reshape_activations == "hook_z" else x


def test_layer_norm_decode_of_foreign_codes_is_refused():
    adapter = as_scorable(make_saelens("layer_norm"))
    with pytest.raises(ValueError, match="decode codes returned by encode"):
        adapter.decode(torch.zeros(2, F))


def test_evaluate_saes_equals_evaluate_sae_on_each(model, object_results):
    cases = ("topk", "topk_hook_z", "gated")  # two nodes; two SAEs share one preparation
    results = saebench.evaluate_saes([make_saelens(c) for c in cases], model=model, **SMALL)
    assert [str(r.node) for r in results] == [str(object_results[c].node) for c in cases]
    for case, result in zip(cases, results, strict=True):
        assert_same_metrics(result.metrics, object_results[case].metrics)
        assert result.identity == object_results[case].identity


class AutoEncoder(torch.nn.Module):
    """A dictionary_learning ``AutoEncoder`` (``relu(encoder(x − bias))``,
    ``decoder(f) + bias``) whose weights reconstruct every x exactly: f = relu([x, −x])."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(d, 2 * d)
        self.decoder = torch.nn.Linear(2 * d, d, bias=False)
        self.bias = torch.nn.Parameter(torch.zeros(d))
        eye = torch.eye(d)
        with torch.no_grad():
            self.encoder.weight.copy_(torch.cat([eye, -eye]))
            self.encoder.bias.zero_()
            self.decoder.weight.copy_(torch.cat([eye, -eye], 1))

    def encode(self, x):
        return torch.relu(self.encoder(x - self.bias))

    def decode(self, f):
        return self.decoder(f) + self.bias


def test_exact_dictionary_learning_style_dictionary_scores_sufficiency_one(model):
    with pytest.raises(ValueError, match="names no hook.*pass hook="):
        saebench.evaluate_sae(AutoEncoder(D), model=model, **SMALL)
    result = saebench.evaluate_sae(AutoEncoder(D), model=model, hook=HOOK, name="identity", **SMALL)
    assert result.metrics["fvu"] < 1e-10
    assert result.metrics["sufficiency"] == pytest.approx(1.0, abs=1e-4)
    assert result.metrics["necessity"] == pytest.approx(1.0, abs=1e-3)
    assert result.identity["sae_name"] == "identity"
    assert result.identity["architecture"] == "standard"  # dictionary_learning's AutoEncoder
    assert result.identity["d_sae"] == 2 * D


class OnlyEncodes:
    def encode(self, x):
        return x


class NoDecoderDirections(OnlyEncodes):
    def decode(self, f):
        return f


def test_object_missing_a_protocol_attribute_is_a_clear_error(model):
    with pytest.raises(TypeError, match=r"OnlyEncodes object .* no method `decode`.*SAELike"):
        saebench.evaluate_sae(OnlyEncodes(), model=model, hook=HOOK, **SMALL)
    with pytest.raises(TypeError, match=r"no decoder directions \(`W_dec_FD`, `W_dec`"):
        saebench.evaluate_sae(NoDecoderDirections(), model=model, hook=HOOK, **SMALL)
    assert isinstance(AutoEncoder(2), saebench.SAELike)


def test_saelens_transcoder_is_refused_with_the_reason():
    from sae_lens.saes import Transcoder, TranscoderConfig

    cfg = TranscoderConfig(d_in=D, d_sae=F, d_out=D, apply_b_dec_to_input=False)
    with pytest.raises(TypeError, match="transcoder .* saebench scores autoencoders"):
        as_scorable(Transcoder(cfg))


def test_hooked_sae_transformer_with_an_attached_sae_is_refused(model):
    from sae_lens import HookedSAETransformer

    hooked = HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
    hooked.load_state_dict(model.state_dict())
    sae = make_saelens("topk")
    hooked.add_sae(sae)
    with pytest.raises(ValueError, match=r"SAEs attached at \['blocks.1.hook_resid_pre'\].*"):
        saebench.evaluate_sae(sae, model=hooked, **SMALL)
    hooked.reset_saes()  # without attached SAEs it is an ordinary HookedTransformer
    result = saebench.evaluate_sae(sae, model=hooked, **SMALL)
    assert result.metrics["l0"] == 4.0


def test_nothing_is_written_unless_asked(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sae = make_saelens("topk")
    saebench.evaluate_sae(sae, model=model, **SMALL)
    assert list(tmp_path.iterdir()) == []
    result = saebench.evaluate_sae(
        sae, model=model, leaderboard="lb/{model}.csv", json_out="runs/{sae}.json",
        name="mine", **SMALL,
    )  # fmt: skip
    assert sorted(result.paths) == ["json", "leaderboard"]
    assert Path(result.paths["json"]) == Path("runs/mine.json") and Path("runs/mine.json").is_file()
    from saebench.leaderboard import read_leaderboard

    table = read_leaderboard("lb/tiny-ioi.csv")
    assert len(table) == 1 and table.loc[0, "sae_name"] == "mine"
    assert float(table.loc[0, "l0"]) == result.metrics["l0"]


def test_a_row_with_other_settings_is_kept_unless_force(model, tmp_path, monkeypatch):
    """As `saebench run`: the JSON is written first, a conflicting row is refused with the
    result kept on disk, and force=True replaces it."""
    from saebench.leaderboard import SettingsConflict, read_leaderboard
    from saebench.run import UnsavedResultError

    monkeypatch.chdir(tmp_path)
    sae = make_saelens("topk")
    saebench.evaluate_sae(sae, model=model, leaderboard="lb.csv", **SMALL)
    other = dict(SMALL, seed=SMALL.get("seed", 0) + 1)
    with pytest.raises(UnsavedResultError, match="saved in") as caught:
        saebench.evaluate_sae(sae, model=model, leaderboard="lb.csv", **other)
    assert isinstance(caught.value.__cause__, SettingsConflict)
    assert read_leaderboard("lb.csv")["seed"].astype(int).tolist() == [SMALL.get("seed", 0)]
    result = saebench.evaluate_sae(sae, model=model, leaderboard="lb.csv", force=True, **other)
    table = read_leaderboard("lb.csv")
    assert table["seed"].astype(int).tolist() == [other["seed"]]
    assert float(table.loc[0, "clean_logit_diff"]) == result.metrics["clean_logit_diff"]


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    readme = (REPO / "docs" / "api.md").read_text()  # the README's API section moved there
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(REPO)  # the example's shipped SAE paths are relative to the checkout
    monkeypatch.setenv("SAEBENCH_CACHE", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(compile(code, "README.md#python-api", "exec"), namespace)
    result, results = namespace["result"], namespace["results"]
    assert str(result.node) == "blocks.3.hook_resid_post@END"  # the shipped SAE's own node
    assert len(namespace["row"]) == 1 and len(results) == 2
    assert_same_metrics(results[0].metrics, result.metrics)
    assert isinstance(namespace["sae"], TopKSAE)
    assert isinstance(as_scorable(namespace["sae"]), SAELensAdapter)
