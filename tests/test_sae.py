"""The SAE representation: each architecture's equations, active sets, hashing, validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from saebench.sae import ARCHITECTURES, SAE

D, F = 6, 10


def random_sae(architecture: str, seed: int = 0, **overrides) -> SAE:
    """An SAE with seeded random weights (thresholds positive, so some latents pass)."""
    gen = torch.Generator().manual_seed(seed)
    fields = {
        "W_enc_DF": torch.randn(D, F, generator=gen),
        "W_dec_FD": torch.randn(F, D, generator=gen),
        "b_enc_F": 0.3 * torch.randn(F, generator=gen),
        "b_dec_D": 0.3 * torch.randn(D, generator=gen),
    }
    if architecture in ("topk", "batchtopk"):
        fields["k"] = 3
    if architecture == "jumprelu":
        fields["threshold_F"] = torch.rand(F, generator=gen) * 1.5
    if architecture == "gated":
        fields["r_mag_F"] = 0.5 * torch.randn(F, generator=gen)
        fields["b_mag_F"] = 0.3 * torch.randn(F, generator=gen)
    fields.update(overrides)
    return SAE(architecture, **fields)


def inputs(n: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_standard_encode_is_relu_of_centred_affine_map(apply_b_dec: bool) -> None:
    sae = random_sae("standard", apply_b_dec_to_input=apply_b_dec)
    x = inputs()
    x_in = x - sae.b_dec_D if apply_b_dec else x
    expected = torch.clamp(x_in @ sae.W_enc_DF + sae.b_enc_F, min=0)
    assert torch.allclose(sae.encode(x), expected, atol=1e-6)
    assert torch.equal(sae.active(x), expected > 0)
    assert 0 < int(sae.active(x).sum()) < x.shape[0] * F  # both cases exercised


def test_decode_is_affine_in_codes() -> None:
    sae = random_sae("standard")
    f = torch.rand(5, F)
    assert torch.allclose(sae.decode(f), f @ sae.W_dec_FD + sae.b_dec_D, atol=1e-6)


def test_topk_has_exactly_k_active_latents_holding_the_largest_preacts() -> None:
    # b_enc large so every pre-activation is positive: exactly k nonzero codes per input
    sae = random_sae("topk", b_enc_F=torch.full((F,), 50.0))
    x = inputs()
    codes = sae.encode(x)
    assert ((codes != 0).sum(-1) == 3).all()
    assert (sae.active(x).sum(-1) == 3).all()
    pre = sae.pre_acts(x)
    kth_largest = pre.topk(3, dim=-1).values[:, -1:]
    assert torch.equal(codes != 0, pre >= kth_largest)
    assert torch.allclose(codes[codes != 0], pre[codes != 0])


def test_topk_applies_relu_to_selected_negative_preacts() -> None:
    sae = random_sae("topk", b_enc_F=torch.full((F,), -50.0))  # every pre-activation < 0
    x = inputs()
    assert (sae.encode(x) == 0).all()
    assert not sae.active(x).any()


def test_jumprelu_is_zero_at_or_below_threshold_and_identity_above() -> None:
    sae = random_sae("jumprelu")
    x = inputs(200)
    pre, codes = sae.pre_acts(x), sae.encode(x)
    above = pre > sae.threshold_F
    assert above.any() and (~above & (pre > 0)).any()  # some positive pre-acts are cut
    assert (codes[~above] == 0).all()
    assert torch.equal(codes[above], pre[above])
    assert torch.equal(sae.active(x), above)


def test_batchtopk_with_threshold_uses_the_jumprelu_rule() -> None:
    threshold = torch.full((F,), 0.7)
    sae = random_sae("batchtopk", threshold_F=threshold)
    x = inputs()
    pre = sae.pre_acts(x)
    assert torch.equal(sae.encode(x), pre * (pre > 0.7))
    without = random_sae("batchtopk")
    assert ((without.encode(x) != 0).sum(-1) <= 3).all()


def test_gated_codes_are_gate_times_magnitude_computed_by_hand() -> None:
    sae = random_sae("gated")
    x = inputs(200)
    x_in = x - sae.b_dec_D
    gate = (x_in @ sae.W_enc_DF + sae.b_enc_F) > 0
    magnitude = torch.clamp(x_in @ (sae.W_enc_DF * torch.exp(sae.r_mag_F)) + sae.b_mag_F, min=0)
    assert torch.allclose(sae.encode(x), gate * magnitude, atol=1e-5)
    assert torch.equal(sae.active(x), gate)
    # the magnitude path differs from the gate path, so the test would see a swapped bias
    assert not torch.allclose(sae.encode(x), gate * torch.clamp(x_in @ sae.W_enc_DF, min=0))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_encode_accepts_any_leading_dims(architecture: str) -> None:
    sae = random_sae(architecture)
    x = inputs(12).reshape(3, 4, D)
    flat = sae.encode(x.reshape(12, D)).reshape(3, 4, F)
    assert torch.allclose(sae.encode(x), flat)
    assert torch.equal(sae.active(x), sae.active(x.reshape(12, D)).reshape(3, 4, F))
    assert sae.decode(sae.encode(x)).shape == (3, 4, D)


def test_content_hash_equal_for_equal_weights_and_changes_with_one_entry() -> None:
    a, b = random_sae("jumprelu", seed=3), random_sae("jumprelu", seed=3)
    assert a.content_hash() == b.content_hash()
    assert len(a.content_hash()) == 16
    assert a.to(dtype=torch.float32).content_hash() == a.content_hash()
    W = a.W_dec_FD.clone()
    W[2, 1] += 1e-3
    assert dataclasses.replace(a, W_dec_FD=W).content_hash() != a.content_hash()
    threshold = a.threshold_F.clone()
    threshold[0] += 1e-3
    assert dataclasses.replace(a, threshold_F=threshold).content_hash() != a.content_hash()
    assert random_sae("topk").content_hash() != random_sae("topk", k=4).content_hash()


def test_to_changes_dtype_and_keeps_codes() -> None:
    sae = random_sae("gated")
    doubled = sae.to(dtype=torch.float64)
    assert doubled.W_enc_DF.dtype == torch.float64 and doubled.r_mag_F.dtype == torch.float64
    assert sae.W_enc_DF.dtype == torch.float32
    x = inputs()
    assert torch.allclose(doubled.encode(x).float(), sae.encode(x), atol=1e-5)


@pytest.mark.parametrize(
    ("architecture", "overrides", "message"),
    [
        ("standard", {"W_dec_FD": torch.zeros(F + 1, D)}, "W_dec_FD has shape"),
        ("standard", {"b_dec_D": torch.zeros(D + 1)}, "b_dec_D has shape"),
        ("standard", {"b_enc_F": torch.full((F,), float("nan"))}, "NaN/inf"),
        ("topk", {"k": None}, "needs k"),
        ("topk", {"k": F + 1}, "k must be"),
        ("jumprelu", {"threshold_F": None}, "needs threshold_F"),
        ("gated", {"r_mag_F": None}, "needs r_mag_F"),
        ("standard", {"threshold_F": torch.zeros(F)}, "unexpected threshold_F"),
    ],
)
def test_validate_names_the_problem(architecture: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_sae(architecture, **overrides)


def test_unknown_architecture_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        random_sae("relu")
