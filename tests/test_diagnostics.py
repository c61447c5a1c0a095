"""Diagnostics against values worked out by hand, and the activity monitor in a training run."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from support import records
from torch import nn

from scalerl import train
from scalerl.diagnostics.activity import (
    effective_rank,
    grama_scores,
    inactive,
    neuron_layers,
    redo_scores,
    srank,
)
from scalerl.nets import NetConfig, build_network


def test_dormant_ratio_of_a_hand_built_layer():
    """Three ReLU units on inputs x = (1, 2) and (3, -2): unit 0 = relu(x1 + x2) gives 3 and 1 (mean 2),
    unit 1 = relu(-x1) is always 0, unit 2 = relu(0.1 x1) gives 0.1 and 0.3 (mean 0.2). The layer mean is
    2.2 / 3, so the scores are (2.727, 0, 0.273)."""
    layer = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    with torch.no_grad():
        layer[0].weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 0.0], [0.1, 0.0]]))
        layer[0].bias.zero_()
    scores = redo_scores(layer(torch.tensor([[1.0, 2.0], [3.0, -2.0]])))
    assert scores.tolist() == pytest.approx([2 / (2.2 / 3), 0.0, 0.2 / (2.2 / 3)], rel=1e-6)
    assert inactive(scores, 0.0).tolist() == [False, True, False]
    assert inactive(scores, 0.3).tolist() == [False, True, True]
    conv_maps = torch.zeros(2, 2, 3, 3)
    conv_maps[:, 0] = 1.0  # channel 0 active everywhere, channel 1 never: a conv neuron is a channel
    assert redo_scores(conv_maps).tolist() == [2.0, 0.0]


def test_grama_scores_are_the_mean_incoming_gradient_magnitude():
    """For L = 0.5 sum_b |W x_b + c|^2, dL/dW = sum_b (W x_b + c) x_b^T (written out, not from autograd);
    GraMa's score of neuron i is mean_j |dL/dW_ij| over the layer's mean."""
    torch.manual_seed(0)
    layer = nn.Linear(3, 4)
    x = torch.randn(5, 3)
    (0.5 * layer(x).square().sum()).backward()
    explicit = (x @ layer.weight.detach().T + layer.bias.detach()).T @ x
    assert torch.allclose(layer.weight.grad, explicit, atol=1e-5)
    magnitude = explicit.abs().mean(dim=1)
    assert torch.allclose(grama_scores(layer), magnitude / magnitude.mean(), atol=1e-5)

    conv = nn.Conv2d(2, 3, 3)
    conv(torch.randn(2, 2, 5, 5)).sum().backward()
    per_channel = conv.weight.grad.abs().mean(dim=(1, 2, 3))
    assert torch.allclose(grama_scores(conv), per_channel / per_channel.mean())
    norm = nn.LayerNorm(4)
    norm(torch.randn(6, 4)).pow(3).sum().backward()
    assert torch.allclose(grama_scores(norm), norm.weight.grad.abs() / norm.weight.grad.abs().mean())
    assert grama_scores(nn.Linear(2, 2)) is None


def test_in_a_relu_mlp_every_dormant_neuron_is_grama_inactive():
    """A ReLU unit with zero output on the whole batch passes no gradient to its incoming weights, so at
    tau = 0 the ReDo-dormant set is inside the GraMa-inactive one (the GraMa paper's proposition)."""
    torch.manual_seed(1)
    net = build_network(NetConfig(hidden=32, depth=3), gym.spaces.Box(-1, 1, (6,), np.float32), 2)
    with torch.no_grad():
        net.torso[0].bias[:8] = -100.0  # dead units in the first layer
        net.torso[2].bias[:4] = -100.0
    layers = neuron_layers(net)
    captured = {}
    handles = [info.layer.register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(i, out))
               for i, info in enumerate(layers)]
    net(torch.randn(64, 6)).square().mean().backward()
    for handle in handles:
        handle.remove()
    checked = 0
    for index, info in enumerate(layers[:-1]):
        dormant = inactive(redo_scores(info.post_activation(captured[index])), 0.0)
        grama = inactive(grama_scores(info.layer), 0.0)
        assert not (dormant & ~grama).any()
        checked += int(dormant.sum())
    assert checked >= 12


def test_neuron_layers_follow_norms_activations_flattens_and_residual_streams():
    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    cnn = neuron_layers(build_network(NetConfig(hidden=16, depth=1), frames, 3))
    assert [layer.name for layer in cnn] == ["encoder.1.layers.0", "encoder.1.layers.2", "encoder.1.layers.4",
                                             "torso.0", "head"]
    assert [layer.resettable for layer in cnn] == [True, True, True, True, False]
    assert cnn[2].consumers == [cnn[3].layer]  # the last conv's channels reach the dense layer through a flatten
    residual = neuron_layers(build_network(NetConfig(hidden=8, depth=1, torso="residual", norm="layer"),
                                           gym.spaces.Box(-1, 1, (3,), np.float32), 2))
    inner, outer = residual[1], residual[2]
    assert inner.norm is not None and inner.activated and inner.consumers == [outer.layer]
    assert not outer.resettable and not residual[0].resettable  # they feed the residual stream


def test_srank_and_effective_rank_by_hand():
    """Features with singular values (3, 1, 0): the top one holds 75% of the sum, both hold all of it."""
    features = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert srank(features, delta=0.01) == 2
    assert srank(features, delta=0.3) == 1
    p = np.array([0.75, 0.25])
    assert effective_rank(features) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-5)
    assert srank(torch.zeros(4, 3)) == 0


def test_the_activity_monitor_logs_every_network_of_dqn_sac_and_td3(tmp_path):
    train(env="classic:CartPole-v1", steps=400, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "dqn"),
          progress="off", log_every=100, hooks=["activity"], hook_opts={"activity": {"every": 100}},
          algo={"learning_starts": 200})
    measured = [r for r in records(tmp_path / "dqn" / "metrics.jsonl") if "dormant/q" in r]
    assert [r["step"] for r in measured] == [200, 300, 400]
    first = measured[0]
    assert {"grama/q", "grama/q.torso.0", "dormant/q.torso.2", "srank/q", "effective_rank/q", "feature_norm/q",
            "churn/q", "action_flips/q", "zero_grad/q"} <= set(first)
    assert 0 <= first["dormant/q"] <= 1 and 1 <= first["srank/q"] <= 128 and first["churn/q"] > 0
    assert 0 <= first["action_flips/q"] <= 1

    # TD3 trains its actor every second update: at an even `every` the actor is measured at its next update
    for agent in ("sac", "td3"):
        train(env="classic:Pendulum-v1", agent=agent, steps=300, eval_every=0, eval_episodes=1,
              run_dir=str(tmp_path / agent), progress="off", log_every=100, hooks=["activity"],
              hook_opts={"activity": {"every": 50}}, algo={"learning_starts": 200, "batch_size": 32})
        last = records(tmp_path / agent / "metrics.jsonl")[-1]
        for network in ("actor", "critic1", "critic2"):
            assert f"dormant/{network}" in last and f"churn/{network}" in last and f"grama/{network}" in last


@pytest.mark.parametrize("space",
                         [gym.spaces.Box(-1, 1, (6,), np.float32), gym.spaces.Box(0, 255, (2, 36, 36), np.uint8)])
def test_a_reset_of_dormant_neurons_leaves_the_outputs_unchanged_and_clears_their_moments(space):
    """Every third neuron of each resettable layer is killed (bias -100: ReLU output 0 on every input); the
    neurons dormant by their ReDo score (tau 0) are reset. Dead neurons contribute nothing and the fresh ones reach
    nothing (zero outgoing weights), so the outputs stay the same."""
    from scalerl.interventions.resets import reset_neurons

    torch.manual_seed(2)
    net = build_network(NetConfig(hidden=16, depth=2), space, 3)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (8, *space.shape)).to(torch.uint8) if space.dtype == np.uint8 else torch.randn(8, 6)
    layers = [layer for layer in neuron_layers(net) if layer.resettable]
    with torch.no_grad():
        for layer in layers:
            layer.layer.bias[::3] = -100.0
    for _ in range(3):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        optimizer.step()
    outputs = {}
    handles = [layer.layer.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out.detach()))
               for i, layer in enumerate(layers)]
    before = net(x).detach()
    for handle in handles:
        handle.remove()
    for index, layer in enumerate(layers):
        mask = inactive(redo_scores(layer.post_activation(outputs[index])), 0.0)
        assert mask[::3].all()  # the killed ones (others may be dead on this batch as well)
        old = layer.layer.weight.detach().clone()
        assert reset_neurons(layer, mask, optimizer) == int(mask.sum())
        assert not torch.equal(layer.layer.weight[mask], old[mask])
        assert torch.equal(layer.layer.weight[~mask], old[~mask])
        assert (layer.layer.bias[mask] == 0).all()
        state = optimizer.state[layer.layer.weight]
        assert (state["exp_avg"][mask] == 0).all() and (state["exp_avg_sq"][mask] == 0).all()
        assert (state["exp_avg_sq"][~mask] != 0).any()
        consumer = layer.consumers[0]
        columns = consumer.weight.abs().transpose(0, 1).flatten(1).sum(1) == 0  # inputs (or input channels) cut off
        assert columns.sum() == mask.sum() * (consumer.weight.shape[1] // layer.neurons)
        assert (optimizer.state[consumer.weight]["exp_avg_sq"][:, columns] == 0).all()
    assert torch.allclose(net(x), before, atol=1e-6)


def test_a_reset_cap_keeps_the_lowest_scores():
    from scalerl.interventions.resets import capped

    scores = torch.tensor([0.0, 0.05, 0.5, 0.02, 1.0, 0.01])
    mask = scores <= 0.05
    assert capped(mask, scores, 0.7).tolist() == mask.tolist()  # 4 inactive, up to 4 allowed
    assert capped(mask, scores, 0.5).tolist() == [True, False, False, True, False, True]
    assert capped(mask, scores, 0.34).tolist() == [True, False, False, False, False, True]


@pytest.mark.parametrize("hook", ["redo", "regrama"])
def test_reset_hooks_log_their_resets_and_resume_exactly(resumes_exactly, hook):
    settings = {"env": "classic:CartPole-v1", "steps": 1200, "eval_every": 600, "eval_episodes": 2,
                "checkpoint_every": 600, "log_every": 100, "progress": "off", "hooks": [hook],
                "hook_opts": {hook: {"every": 100, "tau": 0.2}}, "algo": {"learning_starts": 200}}
    whole = resumes_exactly(settings, 600)
    resets = [r for r in whole if f"{hook}_reset" in r]  # updates 0-1000 (steps 200-1200): resets at 100, ..., 1000
    assert len(resets) == 10 and whole[-1][f"{hook}_reset_total"] > 0
    assert {f"{hook}_reset/q.torso.0", f"{hook}_reset/q.torso.2"} <= set(resets[0])
    if hook == "redo":  # ReDo also counts the neurons it reset that still had gradient; ReGraMa never resets those
        assert all(0 <= r["redo_reset_learning"] <= r["redo_reset"] for r in resets)
    else:
        assert not any("regrama_reset_learning" in r for r in resets)


def test_redo_counts_a_reset_neuron_that_still_learns_through_its_layernorm():
    """After a LayerNorm, a unit silent after its ReLU on every sample still passes gradient to its incoming
    weights (the norm couples it to the others): ReDo resets it, and counts it as still learning."""
    from types import SimpleNamespace

    from scalerl.interventions.resets import ReDoConfig, ReDoHook

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():  # unit 0 far below the others after the norm: zero after the ReLU on every input
        net[0].weight[0] = 0.0
        net[0].bias[:] = torch.tensor([-5.0, 1.0, 1.5, 2.0])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
    agent = SimpleNamespace(modules=lambda: {"q": net},
                            optimizers=lambda: {"q": SimpleNamespace(optimizer=optimizer, modules=[net])})
    hook = ReDoHook(ReDoConfig(every=1, tau=0.0, start=0), agent)
    x = torch.randn(64, 3)
    net(x).pow(2).mean().backward()
    hook.after_backward("q", {"q": net})
    hook.after_update({})
    assert net[0].weight[0].abs().sum() > 0  # re-drawn
    assert hook.pending["redo_reset"] == 1.0 and hook.pending["redo_reset_learning"] == 1.0


class ScriptedCritic:
    """An agent whose critic's value of the action taken is the action itself (actions carry the script)."""

    name = "scripted"
    critic_of_actions = True

    class cfg:  # stands in for the agent config
        gamma = 0.99

    def q_value(self, obs, actions):
        return np.asarray(actions, dtype=float)[:, 0]


def play(hook, values, rewards=None):
    """Feed one episode of Q values (one env) to the hook; returns the step it was stopped at, or None."""
    last = len(values) - 1
    for step, value in enumerate(values):
        reward = 0.0 if rewards is None else rewards[step]
        stop = hook.stop_episodes(np.zeros((1, 2)), np.array([[value]]), np.array([reward]),
                                  np.array([False]), np.array([step == last]))
        if stop is not None and stop[0]:
            return step
    return None


def test_least_stops_an_episode_whose_values_fall_below_the_median_and_not_one_above():
    from scalerl.interventions.least import LEASTConfig, LEASTHook, stop_threshold

    hook = LEASTHook(LEASTConfig(episodes=10, min_episodes=3, scale=0.5, start=0.0, gradient="none"), ScriptedCritic())
    hook.run_steps = 1000
    for offset in range(5):  # kept episodes: Q = 10 (+ a little) at every step, median 10.2
        assert play(hook, [10.0 + 0.1 * offset] * 20) is None
    assert play(hook, [12.0] * 20) is None  # above the median all along
    falling = [10.0, 9.0, 8.0, 6.0, 5.5, 4.0, 3.0] + [2.0] * 13
    assert play(hook, falling) == 5  # the first step under 0.5 x 10.2 = 5.1
    assert hook.on_log() == {"least/stopped": 1.0, "least/stop_rate": 1 / 7, "least/stops_per_step": 1 / (6 * 20 + 6),
                             "least/steps_saved": 20.0 - 6.0}
    assert stop_threshold(-10.0, 1.0, 0.5) == -20.0  # negative values: twice as low, not half


def test_least_weighs_the_threshold_by_the_gradient_ratio():
    """With TD errors kept at 1 per step, a step whose own TD error is 4x larger (informative) lowers the
    threshold 4x: the same falling values stop later."""
    from scalerl.interventions.least import LEASTConfig, LEASTHook

    def episodes(td_error):
        hook = LEASTHook(LEASTConfig(episodes=10, min_episodes=3, scale=1.0, start=0.0), ScriptedCritic())
        hook.run_steps = 1000
        flat = [10.0] * 12
        for _ in range(4):  # r_i + 0.99 * 10 - 10 = 1 with r_i = 1.1
            play(hook, flat, rewards=[1.1] * 12)
        values = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0]
        rewards = [v - 0.99 * n + td_error for v, n in zip(values, values[1:] + [0.0])]
        return play(hook, values, rewards)

    assert episodes(td_error=1.0) == 1  # omega 1: the first value under the median
    assert episodes(td_error=4.0) == 8  # omega 1/4: under 10 / 4 = 2.5 first at step 8


def test_stopped_episodes_are_stored_as_truncations_and_their_envs_reset(tmp_path, monkeypatch):
    import scalerl.run
    from scalerl.hooks import Hook, HookList
    from scalerl.loops.off_policy import OffPolicyLoop

    class StopAtSeven(Hook):
        name = "stop7"
        stops_episodes = True

        def __init__(self):
            self.lengths = None

        def stop_episodes(self, obs, actions, rewards, terminated, truncated):
            self.lengths = np.zeros(len(obs), int) if self.lengths is None else self.lengths
            self.lengths += 1
            stop = self.lengths == 7
            self.lengths[stop | terminated | truncated] = 0
            return stop

    loops = []
    original = OffPolicyLoop.__init__
    monkeypatch.setattr(OffPolicyLoop, "__init__", lambda self, *args: loops.append(self) or original(self, *args))
    monkeypatch.setattr(scalerl.run, "make_hooks", lambda *args: HookList([StopAtSeven()]))
    summary = train(env="classic:Pendulum-v1", agent="td3", steps=70, num_envs=2, eval_every=0, eval_episodes=1,
                    log_every=70, run_dir=str(tmp_path / "run"), progress="off", algo={"learning_starts": 1000})
    buffer = loops[0].buffer
    assert summary["episodes"] == 10
    assert buffer.truncated[:35].sum(axis=0).tolist() == [5, 5] and not buffer.terminated[:35].any()
    assert buffer.truncated[6].all() and buffer.truncated[13].all()
    assert np.array_equal(buffer.next_obs[5], buffer.obs[6])  # within an episode, the next obs is the next step's obs
    assert not np.array_equal(buffer.next_obs[6], buffer.obs[7])  # after a stop: a fresh episode, not a continuation
    assert records(tmp_path / "run" / "metrics.jsonl")[-1]["episode_length"] == 7


def least_stopped(whole):
    assert sum(r.get("least/stopped", 0) for r in whole) > 0 and whole[-1]["least/steps_saved"] > 0


def randomly_stopped(whole):
    """The control for LEAST: stops at `rate` per step once `start` (a quarter of the run) has passed."""
    assert 6 <= sum(r.get("random_stop/stopped", 0) for r in whole) <= 50  # 1,200 steps at 0.02: 24 expected
    assert sum(r.get("random_stop/stopped", 0) for r in whole if r["step"] <= 400) == 0


@pytest.mark.parametrize("hook, options, stopped", [
    ("least", {"episodes": 4, "min_episodes": 2, "start": 0.1, "scale": 1.0}, least_stopped),
    ("random_stop", {"rate": 0.02, "start": 0.25}, randomly_stopped),
])
def test_a_td3_run_with_episodes_stopped_by_a_hook_resumes_exactly(resumes_exactly, hook, options, stopped):
    settings = {"env": "classic:Pendulum-v1", "agent": "td3", "steps": 1600, "eval_every": 800, "eval_episodes": 1,
                "checkpoint_every": 800, "log_every": 200, "progress": "off", "hooks": [hook],
                "hook_opts": {hook: options}, "algo": {"learning_starts": 200, "batch_size": 32}}
    whole = resumes_exactly(settings, 800)
    stopped(whole)


def test_softmoe_expert_units_are_neurons_for_both_scores(tmp_path):
    """Expert 1's hidden unit 2 is killed (bias -100): its activations are zero and so is the gradient its
    incoming column of w1 receives. Per-expert scores are each expert's own normalization."""
    from scalerl.diagnostics.activity import expert_grama_scores, expert_redo_scores
    from scalerl.nets import SoftMoE

    torch.manual_seed(3)
    moe = SoftMoE(num_tokens=5, dim=6, experts=2, hidden=4)
    with torch.no_grad():
        moe.b1[1, 0, 2] = -100.0
    hidden = {}
    moe.activation.register_forward_hook(lambda m, a, out: hidden.__setitem__("h", out))
    moe(torch.randn(3, 5, 6)).square().sum().backward()
    magnitude = moe.w1.grad.abs().mean(dim=1)
    assert torch.allclose(expert_grama_scores(moe), magnitude / magnitude.mean(dim=1, keepdim=True))
    assert inactive(expert_grama_scores(moe), 0.0).nonzero().tolist() == [[1, 2]]
    assert inactive(expert_redo_scores(hidden["h"]), 0.0).nonzero().tolist() == [[1, 2]]

    pytest.importorskip("minatar")
    train(env="minatar:breakout", steps=300, eval_every=0, eval_episodes=1, run_dir=str(tmp_path / "moe"),
          progress="off",
          log_every=100, hooks=["activity"], hook_opts={"activity": {"every": 50}},
          net={"bottleneck": "per_conv", "mixer": "softmoe", "expert_hidden": 16, "depth": 0},
          algo={"learning_starts": 200, "batch_size": 8})
    last = records(tmp_path / "moe" / "metrics.jsonl")[-1]
    assert "grama/q.bottleneck.1.experts" in last and "dormant/q.bottleneck.1.experts" in last
    for key in ("dispatch_entropy/q.bottleneck.1", "combine_entropy/q.bottleneck.1"):
        assert 0.0 < last[key] <= 1.0


def test_softmoe_routing_entropy_is_one_when_the_layer_averages_everything():
    """Entropy over its maximum log(n): a slot split 1/2, 1/4, 1/4 over three tokens scores
    (1.5 log 2) / log 3; weights on one token score 0. With Phi zero every logit is 0, so every slot
    averages all tokens and every token mixes all slots alike: both entropies are exactly 1."""
    from scalerl.diagnostics.activity import routing_entropy
    from scalerl.nets import SoftMoE

    split = torch.tensor([[[0.5], [0.25], [0.25]]])
    assert routing_entropy(split, dim=1) == pytest.approx(1.5 * math.log(2) / math.log(3))
    assert routing_entropy(torch.tensor([[[1.0], [0.0], [0.0]]]), dim=1) == 0.0
    moe = SoftMoE(num_tokens=6, dim=4, experts=2, hidden=8)
    with torch.no_grad():
        moe.phi.zero_()
    dispatch, combine = moe.weights(torch.randn(5, 6, 4))
    assert routing_entropy(dispatch, dim=1) == pytest.approx(1.0)
    assert routing_entropy(combine, dim=2) == pytest.approx(1.0)


def test_a_reset_redraws_from_the_layers_own_initializer():
    """In an orthogonally initialized network a reset row is drawn orthogonally with the network's gain (each
    row of a square orthogonal matrix has norm `gain`), not from torch's default (rows 2.5x smaller)."""
    import math

    from scalerl.interventions.resets import reset_neurons

    torch.manual_seed(0)
    net = build_network(NetConfig(hidden=64, depth=2, init="orthogonal"), gym.spaces.Box(-1, 1, (64,), np.float32), 3)
    layer = next(layer for layer in neuron_layers(net) if layer.resettable and layer.layer.in_features == 64
                 and layer.layer.out_features == 64)
    mask = torch.zeros(64, dtype=torch.bool)
    mask[::2] = True
    reset_neurons(layer, mask)
    norms = layer.layer.weight[mask].norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, math.sqrt(2)), atol=1e-4)


def test_a_reset_under_noisy_layers_keeps_the_function_with_the_noise_on():
    """With noisy layers in training mode the consumer's noise scales (weight_sigma) also reach the reset
    neurons: zeroing only its means would let noise through them. Same noise before and after: same outputs."""
    from scalerl.interventions.resets import reset_neurons
    from scalerl.nets.heads import NoisyLinear, make_noisy

    torch.manual_seed(1)
    net = make_noisy(build_network(NetConfig(hidden=32, depth=2), gym.spaces.Box(-1, 1, (6,), np.float32), 3), 0.5)
    net.train()
    x = torch.randn(32, 6)
    layers = [layer for layer in neuron_layers(net) if layer.resettable]
    with torch.no_grad():
        for layer in layers:
            layer.layer.bias[::3] = -100.0  # dead on every input
    torch.manual_seed(5)
    before = net(x).detach()
    for layer in layers:
        mask = torch.zeros(layer.neurons, dtype=torch.bool)
        mask[::3] = True
        reset_neurons(layer, mask)
        assert isinstance(layer.consumers[0], NoisyLinear)
        if isinstance(layer.layer, NoisyLinear):
            assert (layer.layer.weight_sigma[mask] == layer.layer.sigma_init).all()
    torch.manual_seed(5)
    assert torch.allclose(net(x), before, atol=1e-5)
