"""Loading SAELens and dictionary_learning files and saving SAELens directories.

Every architecture is checked against sae-lens's own classes: random weights saved by
sae-lens, loaded by us, must give sae-lens's codes and reconstructions; our saved directory
must load in sae-lens and give the same codes again.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import saebench.sae.formats as sae_io
from saebench.sae import SAE
from saebench.sae.formats import (
    NO_PROCESSING_KWARGS,
    SAELoadError,
    load_dictionary_learning_dir,
    load_sae,
    save_saelens,
)

sae_lens = pytest.importorskip("sae_lens")
from sae_lens.saes import (  # noqa: E402
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata  # noqa: E402

D, F, N = 8, 24, 64
ATOL = 1e-5
METADATA = {
    "model_name": "gpt2-small",
    "hook_name": "blocks.8.hook_resid_pre",
    "hook_head_index": None,
    "model_from_pretrained_kwargs": {"center_writing_weights": True},
    "prepend_bos": False,
}

SAELENS_CASES = {
    "standard": (StandardSAE, StandardSAEConfig, {}),
    "standard_no_bdec_in": (StandardSAE, StandardSAEConfig, {"apply_b_dec_to_input": False}),
    "topk": (TopKSAE, TopKSAEConfig, {"k": 4}),
    "topk_rescaled": (TopKSAE, TopKSAEConfig, {"k": 4, "rescale_acts_by_decoder_norm": True}),
    "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig, {}),
    "jumprelu_no_bdec_in": (JumpReLUSAE, JumpReLUSAEConfig, {"apply_b_dec_to_input": False}),
    "gated": (GatedSAE, GatedSAEConfig, {}),
}


@pytest.fixture(autouse=True)
def _quiet_saelens_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Seeded random parameters; thresholds in [0, 1.5) so some latents pass, some do not."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name == "threshold":
                param.copy_(1.5 * torch.rand(param.shape, generator=gen))
            else:
                param.copy_(0.5 * torch.randn(param.shape, generator=gen))


def make_saelens(case: str, seed: int = 0):
    sae_cls, cfg_cls, kwargs = SAELENS_CASES[case]
    cfg = cfg_cls(d_in=D, d_sae=F, metadata=SAEMetadata(**METADATA), **kwargs)
    sl_sae = sae_cls(cfg)
    randomise(sl_sae, seed)
    return sl_sae


def x_ND(seed: int = 7) -> torch.Tensor:
    return torch.randn(N, D, generator=torch.Generator().manual_seed(seed))


def saelens_active(sl_sae, x: torch.Tensor) -> torch.Tensor:
    """sae-lens's notion of a firing latent: nonzero code, or the open gate for gated."""
    if isinstance(sl_sae, GatedSAE):
        return (sl_sae.process_sae_in(x) @ sl_sae.W_enc + sl_sae.b_gate) > 0
    return sl_sae.encode(x) != 0


@pytest.mark.parametrize("case", sorted(SAELENS_CASES))
def test_saelens_dir_loads_to_identical_codes_and_reconstructions(case: str, tmp_path) -> None:
    sl_sae = make_saelens(case)
    sl_sae.save_model(tmp_path / "sae")
    ours = load_sae(tmp_path / "sae")
    x = x_ND()
    with torch.no_grad():
        sl_codes = sl_sae.encode(x)
        sl_recon = sl_sae.decode(sl_codes)
    codes = ours.encode(x)
    assert 0 < int((codes != 0).sum()) < N * F
    assert torch.allclose(codes, sl_codes, atol=ATOL)
    assert torch.allclose(ours.decode(codes), sl_recon, atol=ATOL)
    assert torch.equal(ours.active(x), saelens_active(sl_sae, x))
    assert ours.architecture == case.split("_")[0]
    assert ours.meta.hook_name == METADATA["hook_name"]
    assert ours.meta.model_name == METADATA["model_name"]
    assert ours.meta.model_from_pretrained_kwargs == {"center_writing_weights": True}
    assert ours.meta.prepend_bos is False
    if case.startswith("topk"):
        assert ours.k == 4 and ((codes != 0).sum(-1) <= 4).all()


@pytest.mark.parametrize("case", sorted(SAELENS_CASES))
def test_save_saelens_round_trips_through_saelens_load_from_disk(case: str, tmp_path) -> None:
    sl_sae = make_saelens(case, seed=1)
    sl_sae.save_model(tmp_path / "orig")
    ours = load_sae(tmp_path / "orig")
    saved = save_saelens(ours, tmp_path / "ours")
    reloaded_by_saelens = sae_lens.SAE.load_from_disk(saved)
    x = x_ND(8)
    with torch.no_grad():
        assert torch.allclose(reloaded_by_saelens.encode(x), sl_sae.encode(x), atol=ATOL)
        assert torch.allclose(reloaded_by_saelens(x), sl_sae(x), atol=ATOL)
    assert reloaded_by_saelens.cfg.metadata.hook_name == METADATA["hook_name"]
    again = load_sae(saved)
    assert again.content_hash() == ours.content_hash()
    assert again.meta.model_from_pretrained_kwargs == ours.meta.model_from_pretrained_kwargs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orig", "ours"]  # no temp dirs


def test_saelens_batchtopk_inference_dir_loads_as_thresholded_batchtopk(tmp_path) -> None:
    training = BatchTopKTrainingSAE(
        BatchTopKTrainingSAEConfig(d_in=D, d_sae=F, k=4, metadata=SAEMetadata(**METADATA))
    )
    randomise(training, seed=2)
    training.topk_threshold = torch.tensor(0.8, dtype=torch.double)
    training.save_inference_model(tmp_path / "btk")  # sae-lens writes it as a jumprelu
    sl_sae = sae_lens.SAE.load_from_disk(tmp_path / "btk")
    ours = load_sae(tmp_path / "btk")
    assert ours.architecture == "batchtopk" and ours.k == 4
    assert torch.allclose(ours.threshold_F, torch.full((F,), 0.8))
    x = x_ND()
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), sl_sae.encode(x), atol=ATOL)
    pre = ours.pre_acts(x)
    assert torch.equal(ours.active(x), pre > 0.8)
    back = sae_lens.SAE.load_from_disk(save_saelens(ours, tmp_path / "ours"))
    with torch.no_grad():
        assert torch.allclose(back.encode(x), sl_sae.encode(x), atol=ATOL)
    assert load_sae(tmp_path / "ours").architecture == "batchtopk"


def write_saelens_dir(path: Path, cfg: dict, state: dict[str, torch.Tensor]) -> Path:
    path.mkdir(parents=True)
    (path / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in state.items()}, path / "sae_weights.safetensors")
    return path


def random_state(seed: int = 3, **extra_shapes) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {"W_enc": (D, F), "W_dec": (F, D), "b_enc": (F,), "b_dec": (D,), **extra_shapes}
    return {name: 0.5 * torch.randn(shape, generator=gen) for name, shape in shapes.items()}


def test_pre_v6_topk_config_with_k_in_activation_fn_kwargs(tmp_path) -> None:
    cfg = {
        "d_in": D,
        "d_sae": F,
        "dtype": "float32",
        "device": "cpu",
        "hook_point": "blocks.3.hook_resid_post",
        "hook_point_layer": 3,
        "model_name": "gpt2-small",
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 5},
        "apply_b_dec_to_input": True,
        "normalize_activations": False,
    }
    path = write_saelens_dir(tmp_path / "old", cfg, random_state())
    ours = load_sae(path)
    assert (ours.architecture, ours.k) == ("topk", 5)
    assert ours.meta.hook_name == "blocks.3.hook_resid_post"
    assert ours.meta.model_from_pretrained_kwargs is None  # not stated by the config
    sl_sae = sae_lens.SAE.load_from_disk(path)
    x = x_ND()
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), sl_sae.encode(x), atol=ATOL)


def test_expected_average_scaling_factor_is_folded_like_saelens(tmp_path) -> None:
    sl_sae = make_saelens("standard", seed=4)
    sl_sae.cfg.normalize_activations = "expected_average_only_in"
    sl_sae.save_model(tmp_path / "sae")
    (tmp_path / "sae" / "activation_scaler.json").write_text(json.dumps({"scaling_factor": 2.5}))
    ours = load_sae(tmp_path / "sae")
    sl_sae.fold_activation_norm_scaling_factor(2.5)
    x = x_ND()
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), sl_sae.encode(x), atol=ATOL)
        assert torch.allclose(ours.decode(ours.encode(x)), sl_sae(x), atol=ATOL)
    (tmp_path / "sae" / "activation_scaler.json").unlink()
    with pytest.raises(SAELoadError, match="scaling factor"):
        load_sae(tmp_path / "sae")


def test_unsupported_normalization_raises(tmp_path) -> None:
    cfg = {"architecture": "standard", "d_in": D, "d_sae": F, "normalize_activations": "layer_norm"}
    path = write_saelens_dir(tmp_path / "ln", cfg, random_state())
    with pytest.raises(SAELoadError, match="layer_norm"):
        load_sae(path)


# --------------------------------------------------------------------------- dictionary_learning


def write_dl_dir(path: Path, state: dict, dict_class: str, **trainer) -> Path:
    path.mkdir(parents=True)
    torch.save(state, path / "ae.pt")
    trainer = {"dict_class": dict_class, "activation_dim": D, "dict_size": F, **trainer}
    (path / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"io": "out"}}))
    return path


def dl_tensors(seed: int, **shapes) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: 0.5 * torch.randn(shape, generator=gen) for name, shape in shapes.items()}


def test_dictionary_learning_autoencoder_tiny_example(tmp_path) -> None:
    state = {
        "encoder.weight": torch.tensor([[1.0, 0.0], [1.0, -1.0]]),  # [F, D]
        "encoder.bias": torch.tensor([0.0, 0.5]),
        "decoder.weight": torch.tensor([[2.0, 0.0], [0.0, 1.0]]),  # [D, F]
        "bias": torch.tensor([1.0, 1.0]),
    }
    path = tmp_path / "ae"
    path.mkdir()
    torch.save(state, path / "ae.pt")  # no config.json: class guessed from the keys
    sae = load_sae(path)
    # x - bias = [2, 0]: pre = [2, 2 + 0.5], codes = [2, 2.5]; x̂ = [2·2, 2.5] + bias
    codes = sae.encode(torch.tensor([[3.0, 1.0]]))
    assert codes.tolist() == [[2.0, 2.5]]
    assert sae.decode(codes).tolist() == [[5.0, 3.5]]


def test_dictionary_learning_autoencoder_matches_its_formula(tmp_path) -> None:
    state = dl_tensors(5, **{"encoder.weight": (F, D), "encoder.bias": (F,)})
    state |= dl_tensors(6, **{"decoder.weight": (D, F), "bias": (D,)})
    path = write_dl_dir(
        tmp_path / "ae", state, "AutoEncoder", layer=4, lm_name="EleutherAI/pythia-70m-deduped",
        submodule_name="resid_post_layer_4",
    )  # fmt: skip
    sae = load_sae(path)
    x = x_ND()
    expected = torch.relu((x - state["bias"]) @ state["encoder.weight"].T + state["encoder.bias"])
    assert torch.allclose(sae.encode(x), expected, atol=ATOL)
    assert torch.allclose(
        sae.decode(expected), expected @ state["decoder.weight"].T + state["bias"], atol=ATOL
    )
    assert sae.meta.hook_name == "blocks.4.hook_resid_post"
    assert sae.meta.model_name == "EleutherAI/pythia-70m-deduped"
    assert sae.meta.model_from_pretrained_kwargs == NO_PROCESSING_KWARGS


def test_dictionary_learning_gated_matches_its_formula(tmp_path) -> None:
    state = dl_tensors(
        7,
        **{"encoder.weight": (F, D), "decoder.weight": (D, F), "decoder_bias": (D,)},
        r_mag=(F,),
        gate_bias=(F,),
        mag_bias=(F,),
    )
    sae = load_sae(write_dl_dir(tmp_path / "g", state, "GatedAutoEncoder", layer=1))
    x = x_ND()
    x_enc = (x - state["decoder_bias"]) @ state["encoder.weight"].T
    gate = (x_enc + state["gate_bias"]) > 0
    magnitude = torch.relu(state["r_mag"].exp() * x_enc + state["mag_bias"])
    expected = gate * magnitude
    assert 0 < int((expected != 0).sum()) < N * F
    assert torch.allclose(sae.encode(x), expected, atol=ATOL)
    assert torch.equal(sae.active(x), gate)
    assert sae.meta.hook_name is None  # no submodule_name: unknown hook


def test_dictionary_learning_topk_matches_its_formula(tmp_path) -> None:
    state = dl_tensors(
        8, **{"encoder.weight": (F, D), "encoder.bias": (F,), "decoder.weight": (D, F)}, b_dec=(D,)
    )
    state |= {"k": torch.tensor(3, dtype=torch.int), "threshold": torch.tensor(0.2)}
    sae = load_sae(write_dl_dir(tmp_path / "tk", state, "AutoEncoderTopK", k=3))
    assert (sae.architecture, sae.k) == ("topk", 3)
    x = x_ND()
    post_relu = torch.relu((x - state["b_dec"]) @ state["encoder.weight"].T + state["encoder.bias"])
    top = post_relu.topk(3, dim=-1)
    expected = torch.zeros_like(post_relu).scatter(-1, top.indices, top.values)
    assert torch.allclose(sae.encode(x), expected, atol=ATOL)


@pytest.mark.parametrize("threshold", [0.4, -1.0])
def test_dictionary_learning_batchtopk_uses_threshold_when_set(threshold, tmp_path) -> None:
    state = dl_tensors(
        9, **{"encoder.weight": (F, D), "encoder.bias": (F,), "decoder.weight": (D, F)}, b_dec=(D,)
    )
    state |= {"k": torch.tensor(3, dtype=torch.int), "threshold": torch.tensor(threshold)}
    sae = load_sae(write_dl_dir(tmp_path / "btk", state, "BatchTopKSAE", k=3))
    x = x_ND()
    post_relu = torch.relu((x - state["b_dec"]) @ state["encoder.weight"].T + state["encoder.bias"])
    if threshold >= 0:  # dictionary_learning's default inference rule
        expected = post_relu * (post_relu > threshold)
        assert sae.threshold_F is not None
    else:  # never-set threshold: per-input top-k
        top = post_relu.topk(3, dim=-1)
        expected = torch.zeros_like(post_relu).scatter(-1, top.indices, top.values)
        assert sae.threshold_F is None
    assert sae.architecture == "batchtopk"
    assert torch.allclose(sae.encode(x), expected, atol=ATOL)


def test_dictionary_learning_jumprelu_does_not_centre_input(tmp_path) -> None:
    state = dl_tensors(10, W_enc=(D, F), b_enc=(F,), W_dec=(F, D), b_dec=(D,))
    state["threshold"] = 0.5 * torch.rand(F, generator=torch.Generator().manual_seed(0))
    sae = load_sae(write_dl_dir(tmp_path / "jr", state, "JumpReluAutoEncoder"))
    x = x_ND()
    pre = x @ state["W_enc"] + state["b_enc"]
    assert torch.allclose(sae.encode(x), torch.relu(pre * (pre > state["threshold"])), atol=ATOL)
    assert sae.apply_b_dec_to_input is False


def test_dictionary_learning_hook_names() -> None:
    hook = sae_io.dictionary_learning_hook_name
    assert hook("resid_post_layer_12", 12) == "blocks.12.hook_resid_post"
    assert hook("mlp_out_layer3", None) == "blocks.3.hook_mlp_out"
    assert hook("attn_out_layer_5", 5, io="in") is None
    assert hook("embed", None) is None
    assert hook(None, 3) is None


# --------------------------------------------------------------------------- errors


def test_missing_directory_error_names_path(tmp_path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SAELoadError, match="nowhere"):
        load_sae(missing)


def test_directory_without_sae_files_error_names_path(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SAELoadError, match="empty.*neither"):
        load_sae(tmp_path / "empty")


def test_missing_safetensors_error_names_file(tmp_path) -> None:
    path = tmp_path / "sae"
    path.mkdir()
    (path / "cfg.json").write_text(json.dumps({"architecture": "standard", "d_in": D, "d_sae": F}))
    with pytest.raises(SAELoadError, match=r"sae_weights\.safetensors.*missing"):
        load_sae(path)


def test_nan_weight_error_names_file_and_tensor(tmp_path) -> None:
    state = random_state()
    state["W_dec"][3, 2] = float("nan")
    cfg = {"architecture": "standard", "d_in": D, "d_sae": F, "sae_lens_version": "6.0.0"}
    path = write_saelens_dir(tmp_path / "nan", cfg, state)
    with pytest.raises(SAELoadError) as info:
        load_sae(path)
    assert str(tmp_path / "nan") in str(info.value) and "W_dec" in str(info.value)
    assert "NaN" in str(info.value) and "\n" not in str(info.value)


def test_width_mismatch_between_encoder_and_decoder_is_reported(tmp_path) -> None:
    state = random_state(W_dec=(F + 2, D))
    cfg = {"architecture": "standard", "d_in": D, "d_sae": F}
    path = write_saelens_dir(tmp_path / "wide", cfg, state)
    with pytest.raises(SAELoadError, match=r"wide.*W_enc has shape \(8, 24\).*W_dec.*\(26, 8\)"):
        load_sae(path)


def test_config_width_disagreeing_with_weights_is_reported(tmp_path) -> None:
    cfg = {"architecture": "standard", "d_in": D, "d_sae": F + 1}
    path = write_saelens_dir(tmp_path / "cfgwide", cfg, random_state())
    with pytest.raises(SAELoadError, match="cfgwide.*d_sae=25"):
        load_sae(path)


def test_unknown_architecture_error_names_path(tmp_path) -> None:
    cfg = {"architecture": "matching_pursuit", "d_in": D, "d_sae": F}
    path = write_saelens_dir(tmp_path / "mp", cfg, random_state())
    with pytest.raises(SAELoadError, match="mp.*matching_pursuit"):
        load_sae(path)


def test_dictionary_learning_missing_key_and_unknown_class(tmp_path) -> None:
    state = dl_tensors(11, **{"encoder.weight": (F, D), "decoder.weight": (D, F)})
    path = write_dl_dir(tmp_path / "dl", state, "AutoEncoder")
    with pytest.raises(SAELoadError, match=r"ae\.pt.*encoder\.bias"):
        load_dictionary_learning_dir(path)
    path = write_dl_dir(tmp_path / "dl2", state, "CrossCoder")
    with pytest.raises(SAELoadError, match="dl2.*CrossCoder"):
        load_sae(path)


@pytest.fixture
def release_directory(monkeypatch):
    """A one-release stand-in for sae-lens's pretrained directory (parsing the real YAML
    takes seconds)."""
    import types

    from sae_lens.loading import pretrained_saes_directory

    entry = types.SimpleNamespace(saes_map={"blocks.8.hook_resid_pre": "blocks.8.hook_resid_pre"})
    monkeypatch.setattr(
        pretrained_saes_directory,
        "get_pretrained_saes_directory",
        lambda: {"gpt2-small-res-jb": entry},
    )


@pytest.mark.usefixtures("release_directory")
def test_unknown_release_string_is_rejected() -> None:
    with pytest.raises(SAELoadError, match="no-such-release/some_id.*not a sae_lens release"):
        load_sae("no-such-release/some_id")
    with pytest.raises(SAELoadError, match="gpt2-small-res-jb/nope.*has no SAE 'nope'"):
        load_sae("gpt2-small-res-jb/nope")


@pytest.mark.usefixtures("release_directory")
def test_release_download_failure_says_what_to_do(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", offline)
    monkeypatch.setattr("saebench.offline.check_release", lambda spec: None)  # as if cached
    with pytest.raises(SAELoadError) as info:
        load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre")
    message = str(info.value)
    assert message.startswith("gpt2-small-res-jb/blocks.8.hook_resid_pre: ")
    assert "offline" in message and "save_saelens" in message and "ConnectionError" in message


@pytest.mark.usefixtures("release_directory")
def test_release_path_converts_the_saelens_object(monkeypatch) -> None:
    sl_sae = make_saelens("jumprelu", seed=12)
    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", lambda *a, **k: sl_sae)
    monkeypatch.setattr("saebench.offline.check_release", lambda spec: None)  # as if cached
    ours = load_sae("gpt2-small-res-jb/blocks.8.hook_resid_pre")
    x = x_ND()
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), sl_sae.encode(x), atol=ATOL)
    assert ours.meta.source == "gpt2-small-res-jb/blocks.8.hook_resid_pre"


# --------------------------------------------------------------------------- saving


def test_failed_save_leaves_no_directory(tmp_path, monkeypatch) -> None:
    sae = load_sae(make_saelens("standard").save_model(tmp_path / "src")[0].parent)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sae_io, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_saelens(sae, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_save_overwrites_an_sae_dir_but_not_another_dir(tmp_path) -> None:
    first = load_sae(make_saelens("standard", seed=1).save_model(tmp_path / "a")[0].parent)
    second = load_sae(make_saelens("gated", seed=2).save_model(tmp_path / "b")[0].parent)
    save_saelens(first, tmp_path / "out")
    save_saelens(second, tmp_path / "out")
    assert load_sae(tmp_path / "out").content_hash() == second.content_hash()
    assert set(load_file(tmp_path / "out" / "sae_weights.safetensors")) == {
        "W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag",
    }  # fmt: skip
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        save_saelens(first, other)
    assert (other / "keep.txt").exists()


def test_saved_config_is_v6_style(tmp_path) -> None:
    sae = load_sae(make_saelens("topk", seed=3).save_model(tmp_path / "src")[0].parent)
    cfg = json.loads((save_saelens(sae, tmp_path / "out") / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 4
    assert (cfg["d_in"], cfg["d_sae"], cfg["normalize_activations"]) == (D, F, "none")
    assert cfg["metadata"]["hook_name"] == METADATA["hook_name"]
    assert cfg["metadata"]["content_hash"] == sae.content_hash()
    assert isinstance(SAE, type)
