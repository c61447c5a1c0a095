import gymnasium as gym
import numpy as np
import torch

from scalerl.nets import NetConfig, build_q_network, parameter_count


def test_mlp_q_network_parameter_count_by_hand():
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    q = build_q_network(NetConfig(hidden=32, depth=2), space, 2, dueling=False)
    assert parameter_count(q) == (4 * 32 + 32) + (32 * 32 + 32) + (32 * 2 + 2)
    dueling = build_q_network(NetConfig(hidden=32, depth=2, width=2.0), space, 3, dueling=True)
    assert parameter_count(dueling) == (4 * 64 + 64) + (64 * 64 + 64) + (64 + 1) + (64 * 3 + 3)


def test_minatar_cnn_parameter_count_by_hand():
    space = gym.spaces.Box(0, 1, (10, 10, 4), bool)
    q = build_q_network(NetConfig(hidden=128, depth=1), space, 3, dueling=False)
    conv = 4 * 16 * 9 + 16
    assert parameter_count(q) == conv + (16 * 8 * 8 * 128 + 128) + (128 * 3 + 3)
    assert q(torch.zeros(5, 10, 10, 4, dtype=torch.bool)).shape == (5, 3)


def test_nature_cnn_for_atari_frames():
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    q = build_q_network(NetConfig(hidden=512, depth=1), space, 6, dueling=False)
    conv = (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64)
    assert parameter_count(q) == conv + (3136 * 512 + 512) + (512 * 6 + 6)
    assert q(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)


def test_layer_norm_sits_before_each_activation():
    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    q = build_q_network(NetConfig(hidden=8, depth=2, layer_norm=True), space, 2, dueling=False)
    kinds = [type(m).__name__ for m in q[1]]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU"]
