"""Networks: parameter counts against hand computation, and each building block against its formula."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from scalerl.checks import ConfigError
from scalerl.nets import (
    NetConfig,
    SoftMoE,
    build_network,
    build_q_network,
    parameter_count,
)
from scalerl.nets.mlp import ResidualMLP
from scalerl.optim import OptimizerConfig, load_optimizer_state, make_optimizer

VECTOR = gym.spaces.Box(-1, 1, (4,), np.float32)
GRID = gym.spaces.Box(0, 1, (10, 10, 4), bool)
FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def conv(inputs: int, outputs: int, kernel: int) -> int:
    return inputs * outputs * kernel * kernel + outputs


def test_mlp_q_network_parameter_count_by_hand():
    q = build_q_network(NetConfig(hidden=32, depth=2), VECTOR, 2, dueling=False)
    assert parameter_count(q) == linear(4, 32) + linear(32, 32) + linear(32, 2)
    dueling = build_q_network(NetConfig(hidden=32, depth=2, width=2.0), VECTOR, 3, dueling=True)
    assert parameter_count(dueling) == linear(4, 64) + linear(64, 64) + linear(64, 1) + linear(64, 3)


def test_minatar_cnn_parameter_count_by_hand():
    q = build_q_network(NetConfig(hidden=128, depth=1), GRID, 3, dueling=False)
    assert parameter_count(q) == conv(4, 16, 3) + linear(16 * 8 * 8, 128) + linear(128, 3)
    assert q(torch.zeros(5, 10, 10, 4, dtype=torch.bool)).shape == (5, 3)


def test_nature_cnn_for_atari_frames():
    q = build_q_network(NetConfig(hidden=512, depth=1), FRAMES, 6, dueling=False)
    encoder = conv(4, 32, 8) + conv(32, 64, 4) + conv(64, 64, 3)
    assert parameter_count(q) == encoder + linear(64 * 7 * 7, 512) + linear(512, 6)
    assert q(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)


def test_drq_encoder_with_its_projection_by_hand():
    """SAC-AE/DrQ: four 3x3 convs of 32 (84 -> 41 -> 39 -> 37 -> 35), then Linear to 50, LayerNorm, tanh."""
    net = build_network(NetConfig(encoder="drq", bottleneck="project", hidden=64, depth=1), FRAMES, 3)
    encoder = conv(4, 32, 3) + 3 * conv(32, 32, 3)
    projection = linear(32 * 35 * 35, 50) + 2 * 50
    assert parameter_count(net) == encoder + projection + linear(50, 64) + linear(64, 3)
    features = net.bottleneck(net.encoder(torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)))
    assert features.shape == (2, 50) and features.abs().max() < 1
    assert features.std(dim=1).mean() > 0.1  # LayerNorm then tanh: spread out, bounded


def impala_parameters(channels: tuple[int, ...], in_channels: int = 4) -> int:
    total = 0
    for c in channels:
        total += conv(in_channels, c, 3) + 4 * conv(c, c, 3)  # stack conv + two residual blocks of two convs
        in_channels = c
    return total


@pytest.mark.parametrize("width", [1.0, 2.0])
def test_impala_flatten_and_gap_parameter_counts_by_hand(width):
    channels = tuple(int(c * width) for c in (16, 32, 32))
    encoder = impala_parameters(channels)
    last = channels[-1]
    flatten = build_network(NetConfig(encoder="impala", hidden=256, depth=1, width=width), FRAMES, 6)
    assert parameter_count(flatten) == encoder + linear(last * 11 * 11, int(256 * width)) + linear(int(256 * width), 6)
    gap = build_network(NetConfig(encoder="impala", bottleneck="gap", hidden=256, depth=1, width=width), FRAMES, 6)
    assert parameter_count(gap) == encoder + linear(last, int(256 * width)) + linear(int(256 * width), 6)
    assert gap.encoder(torch.zeros(3, 4, 84, 84)).shape == (3, last, 11, 11)
    procgen = gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
    impala = build_network(NetConfig(encoder="impala"), procgen, 15)
    assert impala.encoder(torch.zeros(1, 3, 64, 64)).shape[2:] == (8, 8)


def test_tokenized_bottlenecks_parameter_counts_by_hand():
    encoder = impala_parameters((16, 32, 32))
    per_conv = build_network(NetConfig(encoder="impala", bottleneck="per_conv", hidden=64, depth=0), FRAMES, 6)
    assert parameter_count(per_conv) == encoder + linear(32, 64) + linear(64, 6)
    flat = build_network(NetConfig(encoder="impala", bottleneck="per_conv", pool="flatten", hidden=64, depth=0),
                         FRAMES, 6)
    assert parameter_count(flat) == encoder + linear(32, 64) + linear(121 * 64, 6)
    per_feat = build_network(NetConfig(encoder="impala", bottleneck="per_feat", hidden=64, depth=0), FRAMES, 6)
    assert parameter_count(per_feat) == encoder + linear(121, 64) + linear(64, 6)
    per_patch = build_network(NetConfig(encoder="impala", bottleneck="per_patch", hidden=64, depth=0), FRAMES, 6)
    assert parameter_count(per_patch) == encoder + conv(32, 32, 3) + linear(32, 64) + linear(64, 6)
    # SoftMoE-4 on 121 per_conv tokens of 32 dims: slots per expert ceil(121 / 4) = 31.
    moe = build_network(NetConfig(encoder="impala", bottleneck="per_conv", mixer="softmoe", expert_hidden=16,
                                  pool="flatten", depth=0), FRAMES, 6)
    experts = 4 * (linear(32, 16) + linear(16, 32))
    assert parameter_count(moe) == encoder + 32 * 4 * 31 + experts + linear(121 * 32, 6)


def test_per_patch_tokens_follow_the_papers_code():
    """'VALID' 3x3 patches of the Impala encoder's 11x11 map: 9 tokens (the last two rows and columns
    dropped) projected to 32 dims; after the Nature CNN's 7x7 map, 4 tokens of 64 dims at any width."""
    from scalerl.nets.bottleneck import PerPatch

    impala = build_network(NetConfig(encoder="impala", bottleneck="per_patch", hidden=8, depth=0, width=2), FRAMES, 6)
    assert impala.bottleneck[0](impala.encoder(torch.zeros(2, 4, 84, 84))).shape == (2, 9, 32)
    nature = build_network(NetConfig(encoder="nature_cnn", bottleneck="per_patch", hidden=8, depth=0, width=2),
                           FRAMES, 6)
    assert nature.bottleneck[0](nature.encoder(torch.zeros(2, 4, 84, 84))).shape == (2, 4, 64)
    padded = build_network(NetConfig(encoder="impala", bottleneck="per_patch", patch_mode="padded", hidden=8, depth=0),
                           FRAMES, 6)
    assert padded.bottleneck[0](padded.encoder(torch.zeros(2, 4, 84, 84))).shape == (2, 16, 32)
    maps = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(1, 2, 5, 5)
    tokens = PerPatch(2, 2, embedding=0, padded=False)(maps)  # 2x2 averages of a 5x5 map: 4 tokens, row 5 dropped
    assert tokens.shape == (1, 4, 2)
    assert tokens[0, 0].tolist() == [(0 + 1 + 5 + 6) / 4, (25 + 26 + 30 + 31) / 4]
    assert tokens[0, 3].tolist() == [(12 + 13 + 17 + 18) / 4, (37 + 38 + 42 + 43) / 4]
    with pytest.raises(ConfigError, match="net.patch_size 12 is larger than the encoder's 11x11 feature map"):
        build_network(NetConfig(encoder="impala", bottleneck="per_patch", patch_size=12), FRAMES, 6)


def test_multiskip_torso_parameter_count_by_hand():
    net = build_network(NetConfig(torso="multiskip", hidden=16, depth=3, norm="layer"), VECTOR, 2)
    projection = linear(4, 16) + 2 * 16
    block = 2 * (linear(16, 16) + 2 * 16)
    final = linear(16, 16) + 2 * 16  # the official code's Linear + LayerNorm after the blocks
    assert parameter_count(net) == projection + 3 * block + final + linear(16, 2)


def explicit_softmoe(moe: SoftMoE, x: torch.Tensor) -> torch.Tensor:
    """Soft MoE for one sample, written out with explicit softmaxes and loops."""
    m, d = x.shape
    slots = moe.phi.shape[1]
    logits = torch.stack([torch.stack([x[i] @ moe.phi[:, j] for j in range(slots)]) for i in range(m)])
    dispatch = torch.exp(logits) / torch.exp(logits).sum(dim=0, keepdim=True)  # over tokens
    combine = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)  # over slots
    slot_outputs = []
    for j in range(slots):
        slot_input = sum(dispatch[i, j] * x[i] for i in range(m))
        e = j // moe.slots_per_expert
        hidden = torch.relu(slot_input @ moe.w1[e] + moe.b1[e, 0])
        slot_outputs.append(hidden @ moe.w2[e] + moe.b2[e, 0])
    return torch.stack([sum(combine[i, j] * slot_outputs[j] for j in range(slots)) for i in range(m)])


def test_softmoe_matches_the_formula_step_by_step():
    torch.manual_seed(0)
    moe = SoftMoE(num_tokens=5, dim=6, experts=3, hidden=7, capacity=1.0)
    assert moe.slots_per_expert == math.ceil(5 / 3)
    x = torch.randn(4, 5, 6)
    out = moe(x)
    expected = torch.stack([explicit_softmoe(moe, sample) for sample in x])
    assert torch.allclose(out, expected, atol=1e-5)
    dispatch, combine = moe.weights(x)
    assert torch.allclose(dispatch.sum(dim=1), torch.ones(4, 6))  # each slot: weights over the 5 tokens
    assert torch.allclose(combine.sum(dim=2), torch.ones(4, 5))  # each token: weights over the 6 slots


def test_softmoe_normalization_uses_unit_tokens_and_columns_with_a_learned_scale():
    torch.manual_seed(1)
    moe = SoftMoE(num_tokens=4, dim=3, experts=2, hidden=5, normalize=True)
    x = torch.randn(2, 4, 3) * 100
    with torch.no_grad():
        moe.scale.fill_(2.0)
    unit_x = x / x.norm(dim=-1, keepdim=True)
    unit_phi = moe.phi / moe.phi.norm(dim=0, keepdim=True)
    dispatch, combine = moe.weights(x)
    assert torch.allclose(combine, torch.softmax(2.0 * unit_x @ unit_phi, dim=2), atol=1e-6)
    assert torch.allclose(dispatch, torch.softmax(2.0 * unit_x @ unit_phi, dim=1), atol=1e-6)


def test_gap_is_the_spatial_mean():
    net = build_network(NetConfig(encoder="impala", bottleneck="gap"), FRAMES, 6)
    maps = torch.randn(3, 32, 11, 11)
    assert torch.allclose(net.bottleneck(maps), maps.mean(dim=(2, 3)))
    assert torch.equal(net.bottleneck(maps)[:, 5], torch.stack([m[5].sum() / 121 for m in maps]))


def test_shuffled_uses_one_fixed_permutation_for_every_sample_and_step():
    torch.manual_seed(0)
    net = build_network(NetConfig(encoder="impala", bottleneck="shuffled", mixer="dense"), FRAMES, 6)
    tokenize = net.bottleneck[0]
    permutation = tokenize.permutation.clone()
    assert sorted(permutation.tolist()) == list(range(32 * 11 * 11))
    assert not torch.equal(permutation, torch.arange(32 * 121))
    maps = torch.randn(2, 32, 11, 11)
    tokens = tokenize(maps)
    assert tokens.shape == (2, 121, 32)
    for sample in range(2):
        assert torch.equal(tokens[sample].transpose(0, 1).flatten(), maps[sample].flatten()[permutation])
    optimizer = torch.optim.Adam(net.parameters())
    for _ in range(2):
        optimizer.zero_grad()
        net(torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)).sum().backward()
        optimizer.step()
    assert torch.equal(tokenize.permutation, permutation)
    assert "bottleneck.0.permutation" in net.state_dict()


def test_per_conv_tokens_are_spatial_positions():
    net = build_network(NetConfig(encoder="impala", bottleneck="per_conv"), FRAMES, 6)
    maps = torch.randn(2, 32, 11, 11)
    tokens = net.bottleneck[0](maps)
    assert torch.equal(tokens[1, 3 * 11 + 4], maps[1, :, 3, 4])


def test_multiskip_adds_the_global_skip_to_each_block():
    torch.manual_seed(0)
    torso = ResidualMLP(5, 8, depth=3, norm=nn.LayerNorm, multi_skip=True)
    plain = ResidualMLP(5, 8, depth=3, norm=nn.LayerNorm, multi_skip=False)
    plain.load_state_dict(torso.state_dict(), strict=False)  # all but the final layer, which plain lacks
    x = torch.randn(4, 5)
    skip = torso.project(x)
    h = skip
    outputs = []
    for block in torso.blocks:
        h = block.residual(h) + h + skip
        outputs.append(h)
    block_outputs = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: block_outputs.append(out)) for block in torso.blocks]
    result = torso(x)
    for hook in hooks:
        hook.remove()
    for block_output, expected in zip(block_outputs, outputs):
        assert torch.allclose(block_output + skip, expected, atol=1e-6)
    assert torch.allclose(result, torch.relu(torso.final(outputs[-1])), atol=1e-6)
    assert not torch.allclose(plain(x), result)


def test_the_global_skip_can_go_into_the_deepest_blocks_only():
    torch.manual_seed(0)
    torso = ResidualMLP(5, 8, depth=3, norm=nn.LayerNorm, multi_skip=True, skip_blocks=1)
    assert torso.skip_into == [False, False, True]
    x = torch.randn(4, 5)
    skip = torso.project(x)
    h = skip
    for block, add in zip(torso.blocks, torso.skip_into):
        h = block.residual(h) + h + (skip if add else 0)
    assert torch.allclose(torso(x), torch.relu(torso.final(h)), atol=1e-6)


def test_orthogonal_init_gives_orthogonal_rows_and_zero_biases():
    net = build_network(NetConfig(hidden=16, depth=2, init="orthogonal"), VECTOR, 2)
    weight = net.torso[2].weight.detach()
    assert torch.allclose(weight @ weight.T, 2.0 * torch.eye(16), atol=1e-5)  # gain sqrt(2), squared
    assert (net.torso[0].bias == 0).all() and (net.torso[2].bias == 0).all()


def test_norm_sits_before_each_activation():
    q = build_q_network(NetConfig(hidden=8, depth=2, norm="layer"), gym.spaces.Box(-1, 1, (3,), np.float32), 2,
                        dueling=False)
    assert [type(m).__name__ for m in q.torso] == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU"]


def needs_kron(optimizer: str):
    if optimizer == "kron":
        pytest.importorskip("heavyball", reason="pip install 'scalerl[kron]'")


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "radam", "rmsprop", "kron"])
def test_optimizers_reduce_a_regression_loss(optimizer):
    needs_kron(optimizer)
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.sin(3 * x[:, :1])
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = make_optimizer(net.parameters(), OptimizerConfig(kind=optimizer, lr=1e-2))
    losses = []
    for _ in range(300):
        loss = ((net(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0], (losses[0], losses[-1])


def test_rmsprop_takes_the_minatar_dqn_step():
    """Centered RMSprop, decay 0.95, epsilon 0.01 added to the root: from zero averages, one gradient g moves
    the weight by lr * g / (sqrt(0.05 g^2 - (0.05 g)^2) + 0.01); g = 2 at lr 0.1 gives 0.1 * 2 / 0.4458..."""
    weight = nn.Parameter(torch.tensor([1.0]))
    opt = make_optimizer([weight], OptimizerConfig(kind="rmsprop", lr=0.1))
    (2.0 * weight).sum().backward()  # gradient 2
    opt.step()
    denominator = (0.05 * 4 - (0.05 * 2) ** 2) ** 0.5 + 0.01
    assert weight.item() == pytest.approx(1.0 - 0.1 * 2 / denominator, rel=1e-6)


def test_kron_divides_the_learning_rate_by_three():
    needs_kron("kron")
    net = nn.Linear(3, 1)
    opt = make_optimizer(net.parameters(), OptimizerConfig(kind="kron", lr=3e-3))
    assert type(opt).__name__ == "PSGDKron"
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "kron"])
def test_optimizer_state_restored_from_a_checkpoint_continues_exactly(optimizer):
    """Kron keeps float64 state that torch's load_state_dict would cast to float32; resuming must not drift."""
    needs_kron(optimizer)
    cfg = OptimizerConfig(kind=optimizer, lr=1e-2)
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randn(64, 1)

    def train(net, opt, steps):
        for _ in range(steps):
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = make_optimizer(net.parameters(), cfg)
    train(net, opt, 30)
    saved_net, saved_opt, rng = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()), torch.get_rng_state()
    train(net, opt, 200)
    resumed = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    resumed.load_state_dict(saved_net)
    resumed_opt = make_optimizer(resumed.parameters(), cfg)
    load_optimizer_state(resumed_opt, saved_opt)
    torch.set_rng_state(rng)
    train(resumed, resumed_opt, 200)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), resumed.parameters()))


def test_every_bottleneck_and_torso_runs_forward_and_backward_on_minatar_grids():
    for bottleneck in ["flatten", "gap", "per_conv", "per_patch", "per_feat", "per_sample", "shuffled"]:
        for mixer in ["dense", "softmoe"]:
            for torso in ["mlp", "residual", "multiskip"]:
                net = build_network(NetConfig(bottleneck=bottleneck, mixer=mixer, torso=torso, hidden=16,
                                              expert_hidden=8, norm="rms"), GRID, 3)
                out = net(torch.ones(2, 10, 10, 4, dtype=torch.bool))
                assert out.shape == (2, 3)
                out.sum().backward()


@pytest.mark.parametrize("spec, shape", [
    ({}, (4,)),
    ({"torso": "multiskip", "norm": "layer"}, (4,)),
    ({}, (10, 10, 4)),
    ({"encoder": "impala", "bottleneck": "per_conv", "mixer": "softmoe", "depth": 0}, (10, 10, 4)),
])
def test_the_acting_call_chain_computes_the_network(spec, shape):
    from scalerl.nets import call_chain

    space = gym.spaces.Box(-1.0, 1.0, shape, np.float32)
    net = build_q_network(NetConfig(**spec), space, 3, dueling=bool(spec))
    obs = torch.rand(5, *shape)
    chained = obs
    for layer in call_chain(net):
        chained = layer(chained)
    assert torch.equal(chained, net(obs))


def test_numpy_acting_follows_the_network_through_steps_and_loads_and_declines_other_layers():
    from scalerl.nets import NumpyForward

    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    net = build_q_network(NetConfig(hidden=16), space, 3, dueling=False)
    forward = NumpyForward.of(net)
    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(2):
        np.testing.assert_allclose(forward(obs), net(torch.as_tensor(obs)).detach().numpy(), rtol=1e-5, atol=1e-6)
        net(torch.as_tensor(obs)).pow(2).sum().backward()
        optimizer.step()
    net.load_state_dict({name: torch.randn_like(value) for name, value in net.state_dict().items()})
    np.testing.assert_allclose(forward(obs), net(torch.as_tensor(obs)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert NumpyForward.of(build_q_network(NetConfig(norm="layer"), space, 3, dueling=False)) is None
    assert NumpyForward.of(build_q_network(NetConfig(), space, 3, dueling=True, noisy_sigma0=0.5)) is None  # no rng


@pytest.mark.parametrize("spec", [{}, {"bottleneck": "gap", "same_padding": True}])
def test_numpy_acting_equals_torch_for_a_noisy_dueling_c51_minatar_network(spec, monkeypatch):
    from scalerl.nets import NoisyLinear, NumpyForward

    space = gym.spaces.Box(0, 1, (10, 10, 4), bool)
    q = build_q_network(NetConfig(hidden=24, depth=1, **spec), space, 3, dueling=True, atoms=5, noisy_sigma0=0.5)
    obs = np.random.default_rng(0).random((6, 10, 10, 4)) > 0.7
    forward = NumpyForward.of(q, np.random.default_rng(7))
    with torch.no_grad():
        q.eval()
        means = q(torch.as_tensor(obs)).numpy()
        q.train()
        np.testing.assert_allclose(forward(obs, noise=False), means, rtol=1e-4, atol=1e-5)
        same_draws = np.random.default_rng(7)  # torch's forward fed the noise numpy draws, layer by layer

        def scaled_noise(size: int, like: torch.Tensor) -> torch.Tensor:
            draw = same_draws.standard_normal(size, dtype=np.float32)
            return torch.from_numpy(np.copysign(np.sqrt(np.abs(draw)), draw))

        monkeypatch.setattr(NoisyLinear, "scaled_noise", staticmethod(scaled_noise))
        noisy = forward(obs)
        np.testing.assert_allclose(noisy, q(torch.as_tensor(obs)).numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(noisy - means).max() > 1e-2  # the noise did reach the outputs


def test_kron_takes_kron_torch_defaults_where_heavyball_differs():
    pytest.importorskip("heavyball")
    from scalerl.optim import make_optimizer

    optimizer = make_optimizer(nn.Linear(3, 2).parameters(), OptimizerConfig(kind="kron", lr=3e-4))
    group = optimizer.param_groups[0]
    assert group["max_size_triangular"] == 8192 and group["precond_init_scale"] == 1.0
    schedule = optimizer.precond_schedule
    assert schedule(0) == 1.0 and schedule(500) == 1.0 and schedule(1500) == pytest.approx(0.999**1000)
    assert schedule(10_000) == 0.03


def test_kron_merge_dims_preconditions_a_conv_kernel_as_one_matrix():
    """kron_merge_dims (kron-torch's default, the paper's) folds a conv kernel's (in, h, w) into one
    dimension before preconditioning; heavyball's default keeps a factor per dimension."""
    pytest.importorskip("heavyball", reason="pip install -e '.[kron]'")
    from scalerl.optim import OptimizerConfig, make_optimizer

    def state_shapes(merge: bool) -> set:
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(4, 8, 3)
        optimizer = make_optimizer(conv.parameters(), OptimizerConfig(kind="kron", kron_merge_dims=merge))
        conv(torch.randn(2, 4, 6, 6)).square().mean().backward()
        optimizer.step()
        found, stack = set(), [optimizer.state[conv.weight]]
        while stack:
            item = stack.pop()
            if torch.is_tensor(item):
                found.add(tuple(item.shape))
            elif isinstance(item, dict):
                stack += list(item.values())
            elif isinstance(item, list | tuple):
                stack += list(item)
        return found

    assert (8, 36) in state_shapes(True) and (8, 36) not in state_shapes(False)


def test_coordinate_channels_tell_a_pooled_encoder_where_things_are():
    """With --net.coords the image gets two channels of column and row in [-1, 1]; with --net.same-padding the
    MinAtar CNN keeps the 10 x 10 grid. A lone object on the left and on the right average to the same GAP
    features without coordinates (with positive-only weights and no bias, as constructed), but not with them."""
    import gymnasium as gym

    from scalerl.nets import NetConfig, build_network
    from scalerl.nets.conv import CoordinateChannels

    grid = CoordinateChannels()(torch.zeros(1, 1, 3, 4))
    assert torch.allclose(grid[0, 1, 0], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))  # x along a row
    assert torch.allclose(grid[0, 2, :, 0], torch.tensor([-1.0, 0.0, 1.0]))  # y down a column
    space = gym.spaces.Box(0, 1, (10, 10, 1), bool)
    left, right = torch.zeros(1, 10, 10, 1), torch.zeros(1, 10, 10, 1)
    left[0, 5, 1, 0], right[0, 5, 8, 0] = 1.0, 1.0
    for coords, differ in ((False, False), (True, True)):
        torch.manual_seed(0)
        net = build_network(NetConfig(coords=coords, same_padding=True, bottleneck="gap", depth=0), space, 2)
        conv = net.encoder[-1].conv
        assert conv.padding == (1, 1) and conv.in_channels == 1 + 2 * coords
        with torch.no_grad():
            conv.weight.abs_()
            conv.bias.zero_()
            features = [net.bottleneck(net.encoder(x)) for x in (left, right)]
        assert torch.allclose(features[0], features[1]) != differ


def test_numpy_convolution_equals_torch_with_stride_and_padding():
    from scalerl.nets import NumpyForward

    torch.manual_seed(0)
    for conv in (nn.Conv2d(3, 5, 3, stride=2, padding=1), nn.Conv2d(3, 5, (3, 2), stride=(1, 2), bias=False)):
        images = torch.randn(4, 3, 9, 11)
        forward = NumpyForward.of(nn.Sequential(conv, nn.ReLU()))
        with torch.no_grad():
            np.testing.assert_allclose(forward(images.numpy()), torch.relu(conv(images)).numpy(), rtol=1e-5, atol=1e-6)
