"""Tests for the baseline SAE trainers (saebench_baselines.trainers / .architectures)."""

import math

import pytest
import torch

from saebench.sae import SAEMeta
from saebench_baselines.architectures import (
    ARCHITECTURES,
    BatchTopKSAE,
    GatedSAE,
    build_module,
    mean_norm_scale,
)
from saebench_baselines.trainers import resample_dead_latents, train_sae

PLANTED_SEED = 9876
"""Seed of the planted data. Must differ from every training seed below: a generator with the
same seed would draw the planted atoms as the SAE's initial decoder."""

RECOVERY_SETTINGS = {
    "standard": {"l1": 0.5},
    "gated": {"l1": 1.0},
    "topk": {"k": 3},
    "batchtopk": {"k": 3},
}


def planted_dictionary(
    n_atoms: int = 32, d_in: int = 24, n_samples: int = 20_000, n_active: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations ``offset + Σ_{3 random atoms} c_i d_i`` with c_i ~ U(0.5, 1.5); unit atoms."""
    gen = torch.Generator().manual_seed(PLANTED_SEED)
    atoms_AD = torch.randn(n_atoms, d_in, generator=gen)
    atoms_AD = atoms_AD / atoms_AD.norm(dim=-1, keepdim=True)
    idx_NK = torch.rand(n_samples, n_atoms, generator=gen).argsort(-1)[:, :n_active]
    mags_NK = 0.5 + torch.rand(n_samples, n_active, generator=gen)
    codes_NA = torch.zeros(n_samples, n_atoms).scatter(-1, idx_NK, mags_NK)
    offset_D = torch.randn(d_in, generator=gen)
    return codes_NA @ atoms_AD + offset_D, atoms_AD


def recovered_fraction(W_dec_FD: torch.Tensor, atoms_AD: torch.Tensor, cos: float = 0.9) -> float:
    """Fraction of planted atoms whose best-matching decoder row has cosine ≥ ``cos``."""
    unit_FD = W_dec_FD / W_dec_FD.norm(dim=-1, keepdim=True)
    return ((atoms_AD @ unit_FD.T).max(-1).values >= cos).float().mean().item()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls run faster on one thread (and the CPU is shared); restored afterwards."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def planted():
    return planted_dictionary()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_recovers_planted_dictionary(planted, architecture):
    acts_ND, atoms_AD = planted
    sae, report = train_sae(
        acts_ND,
        architecture,
        64,
        steps=1200,
        lr=2e-3,
        seed=0,
        progress=False,
        **RECOVERY_SETTINGS[architecture],
    )
    assert recovered_fraction(sae.W_dec_FD, atoms_AD) >= 0.8
    assert report["fvu"] < 0.4
    # the untrained initial decoder (same seed) recovers nothing: the test can fail
    init, _ = train_sae(
        acts_ND,
        architecture,
        64,
        steps=0,
        seed=0,
        progress=False,
        **RECOVERY_SETTINGS[architecture],
    )
    assert recovered_fraction(init.W_dec_FD, atoms_AD) < 0.1


def test_frozen_decoder_stays_at_init_and_does_not_recover(planted):
    acts_ND, atoms_AD = planted
    init, _ = train_sae(acts_ND, "topk", 64, k=3, steps=0, seed=0, progress=False)
    frozen, report = train_sae(
        acts_ND, "topk", 64, k=3, steps=300, lr=2e-3, seed=0, frozen_decoder=True, progress=False
    )
    assert torch.equal(frozen.W_dec_FD, init.W_dec_FD)
    assert not torch.allclose(frozen.W_enc_DF, init.W_enc_DF, atol=1e-3)
    assert not torch.allclose(frozen.b_dec_D, init.b_dec_D, atol=1e-4)
    assert recovered_fraction(frozen.W_dec_FD, atoms_AD) < 0.1
    assert report["frozen_decoder"] is True
    assert frozen.meta.cfg["metadata"]["saebench_training"]["frozen_decoder"] is True


def test_topk_has_exactly_k_active_latents(planted):
    acts_ND, _ = planted
    sae, report = train_sae(acts_ND, "topk", 64, k=5, steps=300, lr=2e-3, progress=False)
    assert sae.architecture == "topk" and sae.k == 5
    assert (sae.active(acts_ND).sum(-1) == 5).all()
    assert ((sae.encode(acts_ND) > 0).sum(-1) == 5).all()
    assert report["l0"] == 5.0


def test_batchtopk_exports_threshold_with_mean_l0_near_k(planted):
    acts_ND, _ = planted
    sae, report = train_sae(acts_ND, "batchtopk", 64, k=4, steps=400, lr=2e-3, progress=False)
    assert sae.architecture == "batchtopk" and sae.k == 4
    assert sae.threshold_F is not None and (sae.threshold_F == report["threshold"]).all()
    assert report["threshold"] > 0
    l0_per_sample_N = (sae.encode(acts_ND) > 0).sum(-1).float()
    assert 3.0 <= l0_per_sample_N.mean().item() <= 5.0
    assert l0_per_sample_N.std().item() > 0  # a threshold, not a per-sample top-k
    assert report["l0"] == pytest.approx(l0_per_sample_N.mean().item(), rel=1e-5)


def _hand_gated() -> GatedSAE:
    """D = F = 2, W_gate = [[1, −1], [2, 0.5]], b_dec = [0.5, −0.5], b_gate = [0.1, −0.2],
    r_mag = [ln 2, 0], b_mag = [−0.5, 0.9], W_dec = I."""
    module = GatedSAE(2, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.W_enc_DF.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
        module.b_dec_D.copy_(torch.tensor([0.5, -0.5]))
        module.b_enc_F.copy_(torch.tensor([0.1, -0.2]))
        module.r_mag_F.copy_(torch.tensor([math.log(2.0), 0.0]))
        module.b_mag_F.copy_(torch.tensor([-0.5, 0.9]))
        module.W_dec_FD.copy_(torch.eye(2))
    return module


# x − b_dec = [1, 1], [0, 1], [−1, 0.6]
HAND_X_ND = torch.tensor([[1.5, 0.5], [0.5, 0.5], [-0.5, 0.1]])
# π_gate = [3.1, −0.7], [2.1, 0.3], [0.3, 1.1]
HAND_ACTIVE_NF = torch.tensor([[True, False], [True, True], [True, True]])
# π_mag = (x − b_dec)(W_gate ⊙ exp r_mag) + b_mag = [5.5, 0.4], [3.5, 1.4], [−0.1, 2.2]
HAND_CODES_NF = torch.tensor([[5.5, 0.0], [3.5, 1.4], [0.0, 2.2]])


def test_gated_paths_follow_paper_equations():
    module = _hand_gated()
    codes_NF, active_NF = module.codes(HAND_X_ND)
    assert torch.equal(active_NF, HAND_ACTIVE_NF)
    torch.testing.assert_close(codes_NF, HAND_CODES_NF)
    terms, _, _ = module.loss_terms(HAND_X_ND, coef=0.5)
    # mse: ‖(x − b_dec) − f‖² = 21.25, 12.41, 3.56
    assert terms["mse"].item() == pytest.approx((21.25 + 12.41 + 3.56) / 3, rel=1e-5)
    # sparsity: λ Σ_j relu(π_gate)_j ‖d_j‖ = 0.5 · (3.1, 2.4, 1.4)
    assert terms["sparsity"].item() == pytest.approx(0.5 * (3.1 + 2.4 + 1.4) / 3, rel=1e-5)
    # aux: ‖(x − b_dec) − relu(π_gate)‖² = 5.41, 4.90, 1.94
    assert terms["aux"].item() == pytest.approx((5.41 + 4.90 + 1.94) / 3, rel=1e-5)
    with torch.no_grad():
        module.W_dec_FD.copy_(torch.diag(torch.tensor([2.0, 1.0])))
    terms, _, _ = module.loss_terms(HAND_X_ND, coef=0.5)
    assert terms["sparsity"].item() == pytest.approx(0.5 * (6.2 + 4.5 + 1.7) / 3, rel=1e-5)


def test_gated_auxiliary_loss_uses_a_frozen_decoder():
    module = _hand_gated()
    terms, _, _ = module.loss_terms(HAND_X_ND, coef=0.5)
    terms["aux"].backward()
    assert module.W_dec_FD.grad is None or not module.W_dec_FD.grad.any()
    assert module.b_dec_D.grad is not None and module.b_dec_D.grad.any()  # via the gate input
    assert module.W_enc_DF.grad.any() and module.b_enc_F.grad.any()


def test_exported_gated_sae_encodes_like_the_paper():
    sae = _hand_gated().export(1.0, meta=SAEMeta())
    assert sae.architecture == "gated"
    torch.testing.assert_close(sae.encode(HAND_X_ND), HAND_CODES_NF)
    assert torch.equal(sae.active(HAND_X_ND), HAND_ACTIVE_NF)


def _random_module(architecture: str, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    module = build_module(architecture, 6, 12, gen, k=3 if "topk" in architecture else None)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen))
    if isinstance(module, BatchTopKSAE):
        module.threshold = 0.2
    return module


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_folding_input_scale_gives_identical_codes_and_reconstructions(architecture):
    module = _random_module(architecture)
    acts_ND = 5.0 * torch.randn(200, 6, generator=torch.Generator().manual_seed(2)) + 3.0
    scale = mean_norm_scale(acts_ND)
    assert (acts_ND * scale).norm(dim=-1).mean().item() == pytest.approx(math.sqrt(6), rel=1e-5)
    sae = module.export(scale, meta=SAEMeta())
    with torch.no_grad():
        codes_scaled_NF, active_NF = module.codes(acts_ND * scale)
        recon_scaled_ND = module.decode(codes_scaled_NF)
    assert active_NF.any(-1).float().mean() > 0.5  # a non-trivial comparison
    codes_NF = sae.encode(acts_ND)
    torch.testing.assert_close(codes_NF, codes_scaled_NF, rtol=1e-4, atol=1e-5)
    assert torch.equal(sae.active(acts_ND), active_NF)
    torch.testing.assert_close(sae.decode(codes_NF), recon_scaled_ND / scale, rtol=1e-4, atol=1e-5)
    # without folding the codes differ (the comparison above can fail)
    unfolded = module.export(1.0, meta=sae.meta)
    assert not torch.allclose(unfolded.encode(acts_ND), codes_scaled_NF, atol=1e-3)


def test_training_report_matches_exported_sae_on_raw_activations(planted):
    acts_ND, _ = planted
    sae, report = train_sae(acts_ND, "standard", 64, l1=0.5, steps=200, lr=2e-3, progress=False)
    assert report["scale_factor"] == pytest.approx(mean_norm_scale(acts_ND))
    assert report["scale_factor"] != pytest.approx(1.0, abs=0.05)
    codes_NF = sae.encode(acts_ND)
    err = (acts_ND - sae.decode(codes_NF)).pow(2).sum()
    fvu = (err / (acts_ND - acts_ND.mean(0)).pow(2).sum()).item()
    assert report["fvu"] == pytest.approx(fvu, rel=1e-3)
    assert report["l0"] == pytest.approx((codes_NF > 0).sum(-1).float().mean().item(), rel=1e-4)
    assert len(report["log"]) > 10 and report["log"][-1]["step"] == 199


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_same_seed_same_weights_different_seed_different(architecture):
    acts_ND, _ = planted_dictionary(n_samples=600, d_in=8, n_atoms=12)
    kwargs = dict(steps=30, batch_size=64, lr=1e-2, resample_dead_every=10, progress=False)
    kwargs.update(RECOVERY_SETTINGS[architecture])
    first, _ = train_sae(acts_ND, architecture, 16, seed=3, **kwargs)
    again, _ = train_sae(acts_ND, architecture, 16, seed=3, **kwargs)
    other, _ = train_sae(acts_ND, architecture, 16, seed=4, **kwargs)
    assert first.content_hash() == again.content_hash()
    assert torch.equal(first.W_dec_FD, again.W_dec_FD)
    assert not torch.allclose(first.W_dec_FD, other.W_dec_FD, atol=1e-3)


def test_resampling_revives_dead_latents_toward_inputs():
    acts_ND = torch.randn(500, 6, generator=torch.Generator().manual_seed(5)) + 2.0
    module = build_module("standard", 6, 10, torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.b_dec_D.copy_(acts_ND.mean(0))
        module.b_enc_F[:3] = -1e3  # latents 0, 1, 2 never fire
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    terms, _, _ = module.loss_terms(acts_ND, coef=1.0)
    sum(terms.values()).backward()
    optimizer.step()
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    assert not module.codes(acts_ND)[1][:, :3].any()

    dead = torch.tensor([0, 1, 2])
    resample_dead_latents(module, optimizer, acts_ND, dead, torch.Generator().manual_seed(0))
    active_NF = module.codes(acts_ND)[1]
    assert active_NF[:, :3].any(0).all()
    torch.testing.assert_close(module.W_dec_FD[:3].norm(dim=-1), torch.ones(3))
    assert (module.b_enc_F[:3] == 0).all()
    # the new decoder rows are directions of (centred) inputs
    centred_ND = acts_ND - module.b_dec_D
    unit_ND = centred_ND / centred_ND.norm(dim=-1, keepdim=True)
    best_cos_3 = (module.W_dec_FD[:3] @ unit_ND.T).max(-1).values
    torch.testing.assert_close(best_cos_3, torch.ones(3))
    for name in ("W_dec_FD", "b_enc_F"):
        assert torch.equal(getattr(module, name)[3:], before[name][3:])
        assert not optimizer.state[getattr(module, name)]["exp_avg"][:3].any()
    assert torch.equal(module.W_enc_DF[:, 3:], before["W_enc_DF"][:, 3:])
    assert not optimizer.state[module.W_enc_DF]["exp_avg_sq"][:, :3].any()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_trained_sae_saves_and_loads_back(tmp_path, planted, architecture):
    from saebench.sae.formats import load_sae, save_saelens

    acts_ND = planted[0][:2000]
    sae, _ = train_sae(
        acts_ND,
        architecture,
        32,
        steps=40,
        lr=2e-3,
        progress=False,
        **RECOVERY_SETTINGS[architecture],
    )
    path = save_saelens(sae, tmp_path / architecture)
    loaded = load_sae(path)
    assert loaded.architecture == sae.architecture
    torch.testing.assert_close(loaded.encode(acts_ND), sae.encode(acts_ND))
    sae_lens = pytest.importorskip("sae_lens")
    sl_sae = sae_lens.SAE.load_from_disk(str(path))
    with torch.no_grad():
        torch.testing.assert_close(
            sl_sae.encode(acts_ND), sae.encode(acts_ND), rtol=1e-4, atol=1e-5
        )


def test_unknown_architecture_and_missing_k_raise():
    acts_ND = torch.randn(100, 4)
    with pytest.raises(ValueError, match="unknown architecture"):
        train_sae(acts_ND, "vanilla", 8, progress=False)
    with pytest.raises(ValueError, match="needs k"):
        train_sae(acts_ND, "topk", 8, progress=False)
