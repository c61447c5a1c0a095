"""Rainbow's parts against answers worked by hand: the C51 projection, the sum tree, prioritized sampling
frequencies and importance weights, n-step windows under priorities, noisy layers, and the presets."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from scalerl.agents import AgentSpec, agent_class
from scalerl.agents.dqn import DQN, DQNConfig, categorical_projection
from scalerl.checks import ConfigError
from scalerl.nets import NetConfig, NoisyLinear, build_q_network
from scalerl.replay import Priorities, PrioritySettings, ReplayBuffer, SumTree

OBS = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
ACT = gym.spaces.Discrete(2)
SUPPORT = torch.linspace(-2.0, 2.0, 5)  # atoms -2, -1, 0, 1, 2: spacing 1


@pytest.mark.parametrize(("probs", "reward", "discount", "expected"), [
    ([0, 0, 1, 0, 0], 0.5, 1.0, [0, 0, 0.5, 0.5, 0]),  # 0 + 0.5 lands halfway between atoms 0 and 1
    ([0, 0, 1, 0, 0], 0.25, 0.0, [0, 0, 0.75, 0.25, 0]),  # terminal: all mass at r = 0.25
    ([0.2] * 5, 0.0, 0.5, [0, 0.3, 0.4, 0.3, 0]),  # atoms squeezed to -1, -0.5, 0, 0.5, 1
    ([0.1, 0.2, 0.3, 0.4, 0], 10.0, 0.9, [0, 0, 0, 0, 1.0]),  # everything clipped to v_max
    ([0, 0, 0, 0.5, 0.5], -1.0, 1.0, [0, 0, 0.5, 0.5, 0]),  # whole-atom shift: no splitting
])
def test_c51_projection_matches_the_hand_worked_distribution(probs, reward, discount, expected):
    target = categorical_projection(torch.tensor([probs], dtype=torch.float32), torch.tensor([reward]),
                                    torch.tensor([discount]), SUPPORT)
    torch.testing.assert_close(target, torch.tensor([expected], dtype=torch.float32))


def test_sum_tree_totals_and_finds_the_leaf_under_a_prefix_sum():
    tree = SumTree(5)  # rounded up to 8 leaves
    tree.set(np.array([0, 1, 2, 3, 4]), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    # running sums 1, 1, 3, 6, 10: a prefix in [0, 1) is leaf 0, [1, 3) leaf 2, [3, 6) leaf 3, [6, 10) leaf 4
    assert tree.find(np.array([0.0, 0.99, 1.0, 2.5, 3.0, 5.99, 6.0, 9.99])).tolist() == [0, 0, 2, 2, 3, 3, 4, 4]
    tree.set(np.array([4, 4]), np.array([7.0, 0.5]))  # a repeated leaf keeps its last value
    assert tree.total == 6.5 and tree.leaves(np.array([4]))[0] == 0.5


def settings(**overrides) -> PrioritySettings:
    return PrioritySettings(**{"alpha": 1.0, "beta_start": 0.5, "beta_end": 0.5, "anneal_steps": 1, "epsilon": 0.0,
                               **overrides})


def test_sampling_frequencies_follow_the_priorities():
    priorities = Priorities(6, settings())
    priorities.update(np.arange(6), np.array([1.0, 2.0, 3.0, 4.0, 0.0, 10.0]))
    rng = np.random.default_rng(0)
    draws = np.concatenate([priorities.draw(rng, 64) for _ in range(4000)])
    frequencies = np.bincount(draws, minlength=6) / len(draws)
    expected = np.array([1, 2, 3, 4, 0, 10]) / 20
    assert frequencies[4] == 0
    # 256,000 draws: a frequency's standard error is at most 0.001, and stratified draws only shrink it
    np.testing.assert_allclose(frequencies, expected, atol=0.004)


def test_importance_weights_are_inverse_probability_to_the_beta_normalized_by_the_batch_maximum():
    priorities = Priorities(4, settings(beta_start=0.5, beta_end=0.5))
    priorities.update(np.arange(4), np.array([1.0, 1.0, 2.0, 4.0]))  # P = 1/8, 1/8, 2/8, 4/8
    # (N P)^-0.5 with N = 4: sqrt(2), sqrt(2), 1, 1/sqrt(2); divided by the largest in the batch, sqrt(2)
    np.testing.assert_allclose(priorities.weights(np.array([0, 2, 3]), 4), [1.0, 0.5**0.5, 0.5], rtol=1e-6)


def test_beta_moves_linearly_over_the_stored_transitions_and_priorities_use_alpha():
    priorities = Priorities(4, settings(alpha=0.5, beta_start=0.4, beta_end=1.0, anneal_steps=100, epsilon=0.0001))
    assert priorities.beta() == 0.4
    priorities.stored = 50
    assert priorities.beta() == pytest.approx(0.7)
    priorities.stored = 500
    assert priorities.beta() == 1.0
    priorities.update(np.array([1]), np.array([-8.9999]))  # (|error| + eps)^alpha = 3
    assert priorities.tree.leaves(np.array([1]))[0] == pytest.approx(3.0)
    assert priorities.max_priority == pytest.approx(3.0)


def add_steps(buffer, count, start=0, terminated_at=()):
    for t in range(start, start + count):
        buffer.add(np.array([[t]]), np.array([0]), np.array([1.0]), np.array([[t + 1]]), np.array([t in terminated_at]),
                   np.array([False]))


def test_new_transitions_wait_for_their_n_step_window_then_take_the_largest_priority():
    buffer = ReplayBuffer(100, 1, OBS, ACT, n_step=3, gamma=0.5, priorities=settings())
    add_steps(buffer, 5)
    leaves = buffer.priorities.tree.leaves(np.arange(6))
    assert leaves.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]  # rows 3 and 4 lack the steps their 3-step return needs
    buffer.update_priorities((np.array([1]), np.array([0])), torch.tensor([5.0]))
    add_steps(buffer, 1, start=5)
    assert buffer.priorities.tree.leaves(np.arange(6)).tolist() == [1.0, 5.0, 1.0, 5.0, 0.0, 0.0]
    batch = buffer.sample(256)
    assert set(batch.obs.flatten().tolist()) <= {0.0, 1.0, 2.0, 3.0} and batch.weights is not None


def test_prioritized_batches_hold_the_same_n_step_returns_as_uniform_ones_across_episode_ends():
    uniform = ReplayBuffer(100, 1, OBS, ACT, n_step=3, gamma=0.5, seed=0)
    prioritized = ReplayBuffer(100, 1, OBS, ACT, n_step=3, gamma=0.5, seed=0, priorities=settings())
    for buffer in (uniform, prioritized):
        add_steps(buffer, 30, terminated_at={6, 7, 15})
    batch = prioritized.sample(512)
    rows, _ = batch.indices
    for row in np.unique(rows):
        uniform._sample_rows = lambda size, row=row: np.full(size, row)
        reference = uniform.sample(1)
        chosen = rows == row
        assert torch.equal(batch.rewards[chosen], reference.rewards.expand(int(chosen.sum())))
        assert torch.equal(batch.discounts[chosen], reference.discounts.expand(int(chosen.sum())))
        assert torch.equal(batch.next_obs[chosen], reference.next_obs.expand(int(chosen.sum()), -1))
    assert len(np.unique(rows)) > 20


def test_priorities_survive_a_checkpoint():
    buffer = ReplayBuffer(100, 2, OBS, ACT, n_step=1, priorities=settings())
    for t in range(10):
        buffer.add(np.array([[t], [t]]), np.array([0, 1]), np.array([1.0, 1.0]), np.array([[t + 1], [t + 1]]),
                   np.array([False, False]), np.array([False, False]))
    buffer.update_priorities((np.array([3, 4]), np.array([1, 0])), torch.tensor([7.0, 0.5]))
    copy = ReplayBuffer(100, 2, OBS, ACT, n_step=1, priorities=settings())
    copy.load_state_dict(buffer.state_dict())
    assert np.array_equal(copy.priorities.tree.nodes, buffer.priorities.tree.nodes)
    assert copy.priorities.max_priority == 7.0 and copy.priorities.stored == 20
    assert np.array_equal(copy.sample(32).indices[0], buffer.sample(32).indices[0])


def test_noisy_layers_draw_fresh_noise_in_training_and_act_on_their_means_in_evaluation():
    torch.manual_seed(0)
    layer = NoisyLinear(16, 4, sigma0=0.5)
    assert torch.allclose(layer.weight_sigma, torch.full((4, 16), 0.125))  # sigma0 / sqrt(16)
    assert layer.weight.abs().max() <= 0.25  # means uniform in +-1/sqrt(16)
    x = torch.randn(3, 16)
    assert not torch.allclose(layer(x), layer(x))  # each forward pass draws its own noise
    layer.eval()
    torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias)
    q = build_q_network(NetConfig(hidden=8, depth=2), gym.spaces.Box(-1, 1, (3,), np.float32), 2, dueling=True,
                        atoms=5, noisy_sigma0=0.5)
    assert sum(isinstance(m, NoisyLinear) for m in q.modules()) == 4  # two torso layers, value and advantage
    assert q(torch.zeros(7, 3)).shape == (7, 10)
    from scalerl.diagnostics.activity import neuron_layers

    # the diagnostics see noisy layers as layers: the activation after each, and the layers they feed
    assert [(layer.name, layer.activated, len(layer.consumers)) for layer in neuron_layers(q)] == [
        ("torso.0", True, 1), ("torso.2", True, 2), ("head.advantage", False, 0), ("head.value", False, 0)]


def test_noisy_layer_output_and_gradients_match_the_factorised_weight_for_acting_and_batch_inputs():
    layer = NoisyLinear(12, 5, sigma0=0.5)
    with torch.no_grad():
        layer.weight_sigma.uniform_(0.1, 0.9)  # distinct sigmas, so a wrong pairing of noise and sigma shows
    for rows in (1, NoisyLinear.FACTORED_ROWS - 1, NoisyLinear.FACTORED_ROWS, 40):  # both ways of applying noise
        x = torch.randn(rows, 12)
        torch.manual_seed(rows)
        output = layer(x)
        grads = torch.autograd.grad(output.square().sum(), [layer.weight, layer.weight_sigma, layer.bias_sigma])
        torch.manual_seed(rows)
        noise = NoisyLinear.scaled_noise(12 + 5, x)  # inputs' noise first, then outputs'
        noise_in, noise_out = noise[:12], noise[12:]
        weight, weight_sigma, bias_sigma = (p.detach().requires_grad_() for p in
                                            (layer.weight, layer.weight_sigma, layer.bias_sigma))
        noisy_weight = weight + weight_sigma * noise_out[:, None] * noise_in[None, :]
        expected = x @ noisy_weight.T + layer.bias + bias_sigma * noise_out
        torch.testing.assert_close(output, expected)
        for got, want in zip(grads, torch.autograd.grad(expected.square().sum(), [weight, weight_sigma, bias_sigma])):
            torch.testing.assert_close(got, want)


def test_noisy_agents_explore_by_noise_and_evaluate_deterministically():
    spec = AgentSpec(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(4), net=NetConfig(hidden=16, depth=1),
                     seed=1)
    dqn = DQN(DQNConfig(noisy=True, noisy_sigma0=4.0, epsilon_start=0.0, epsilon_end=0.0, atoms=11), spec)
    obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    evaluations = [dqn.act(obs, explore=False)[0] for _ in range(3)]
    assert all(np.array_equal(evaluations[0], e) for e in evaluations)
    explored = np.stack([dqn.act(obs, explore=True)[0] for _ in range(3)])
    assert (explored != evaluations[0]).any() and dqn.q.training


def test_presets_carry_dopamine_settings_and_every_part_can_be_switched():
    rainbow, der = agent_class("rainbow").config_class(), agent_class("der").config_class()
    assert (rainbow.atoms, rainbow.v_max, rainbow.n_step, rainbow.noisy, rainbow.dueling, rainbow.double,
            rainbow.prioritized, rainbow.optim.lr, rainbow.optim.adam_eps, rainbow.learning_starts, rainbow.train_every,
            rainbow.target_update_every) == (51, 10.0, 3, True, True, True, True, 6.25e-5, 1.5e-4, 20_000, 4, 2_000)
    assert (der.n_step, der.train_every, der.target_update_every, der.optim.lr, der.learning_starts,
            der.atoms, der.noisy) == (10, 1, 2_000, 1e-4, 1_600, 51, True)
    assert agent_class("rainbow").config_class(noisy=False, atoms=1, prioritized=False).replay_priorities(10) is None
    with pytest.raises(ConfigError, match="algo.atoms must be 1 .scalar Q. or at least 3"):
        DQNConfig(atoms=2)
    with pytest.raises(ConfigError, match="algo.v_min must be < algo.v_max"):
        DQNConfig(atoms=51, v_min=5.0, v_max=1.0)


def test_c51_projection_keeps_the_top_atom_on_the_support_despite_rounding():
    """On this support float32 puts v_max at position 50.000004 of 50, one atom past the end once rounded up
    (an IndexError here; on a GPU, Rainbow's device-side index assert, gone with the same clamp)."""
    support = torch.linspace(-10.1, 15.92, 51)
    probs = torch.full((2, 51), 1 / 51)
    target = categorical_projection(probs, torch.tensor([100.0, -100.0]), torch.tensor([0.99, 0.99]), support)
    assert target[0, -1].item() == pytest.approx(1.0) and target[1, 0].item() == pytest.approx(1.0)
    assert target.sum(1).tolist() == pytest.approx([1.0, 1.0])
