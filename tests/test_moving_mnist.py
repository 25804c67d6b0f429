"""Moving MNIST against a slow, plain-Python reference of drnet-py's generator
(reference/datasets.md §1.3): start corner in [0, S - s), velocity in {-v, ..., v-1} per axis,
before drawing each frame a coordinate below 0 goes to 0 and one at or beyond S - s goes to
S - s - 1 with that axis' velocity flipped, the frame is drawn, then the digit moves. Digit d is
written into channel d; the front digit zeroes every other channel wherever it is > 0.
"""

from __future__ import annotations

import pytest
import torch

from drnet_lib.config import DataConfig, ModelConfig
from drnet_lib.data.moving_mnist import MovingMNIST, bounce_positions, frozen_test_factors


# -- the reference ----------------------------------------------------------------------------

def reference_draws(bank: MovingMNIST, batch: int, seed: int):
    """Replay ``sample_factors``' draws (digit_index, start corner, velocity, front, in that order)."""
    g = torch.Generator().manual_seed(seed)
    D = bank.num_digits
    digit_index = torch.randint(len(bank.labels), (batch, D), generator=g)
    start = torch.randint(bank.limit, (batch, D, 2), generator=g)
    vel = torch.randint(-bank.max_velocity, bank.max_velocity, (batch, D, 2), generator=g)
    front = torch.randint(D, (batch,), generator=g)
    return digit_index.tolist(), start.tolist(), vel.tolist(), front.tolist()


def reference_positions(start, vel, length: int, limit: int):
    """drnet-py's per-digit loop: bounce check, record (draw), move. Plain Python ints."""
    out = []
    for clip_start, clip_vel in zip(start, vel):
        clip = [[None] * len(clip_start) for _ in range(length)]
        for d, ((r, c), (vr, vc)) in enumerate(zip(clip_start, clip_vel)):
            for t in range(length):
                if r < 0:
                    r, vr = 0, -vr
                elif r >= limit:
                    r, vr = limit - 1, -vr
                if c < 0:
                    c, vc = 0, -vc
                elif c >= limit:
                    c, vc = limit - 1, -vc
                clip[t][d] = (r, c)
                r, c = r + vr, c + vc
        out.append(clip)
    return out


def reference_frame(bank: MovingMNIST, digit_index, positions_t, front):
    """One frame (C, S, S): digit d in channel d, the front digit masking the others."""
    S, s = bank.image_size, bank.digit_size
    frame = torch.zeros(bank.channels, S, S)
    for d, (r, c) in enumerate(positions_t):
        frame[d, r:r + s, c:c + s] = bank.digits[digit_index[d]]
    lit = frame[front] > 0
    for ch in range(bank.channels):
        if ch != front:
            frame[ch][lit] = 0
    return frame


def make_bank(train_bank, **data_changes):
    """A bank sharing ``train_bank``'s digits with other data settings (cheap: no resizing)."""
    view = object.__new__(MovingMNIST)
    view.__dict__.update(train_bank.__dict__)
    for k, v in data_changes.items():
        setattr(view, k, v)
    view.limit = view.image_size - view.digit_size
    return view


# -- factors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_factors_follow_the_reference(train_bank, seed):
    B, T = 24, 30
    factors = train_bank.sample_factors(B, torch.Generator().manual_seed(seed), T)
    digit_index, start, vel, front = reference_draws(train_bank, B, seed)
    assert factors.digit_index.tolist() == digit_index
    assert factors.front.tolist() == front
    assert factors.labels.tolist() == [[int(train_bank.labels[i]) for i in row] for row in digit_index]
    expected = reference_positions(start, vel, T, train_bank.limit)
    assert factors.positions.shape == (B, T, train_bank.num_digits, 2)
    assert factors.positions.dtype == torch.int64
    assert factors.positions.tolist() == [[[list(p) for p in frame] for frame in clip] for clip in expected]


def test_positions_stay_inside_and_bounce(train_bank):
    f = train_bank.sample_factors(500, torch.Generator().manual_seed(3), 60)
    pos, limit = f.positions, train_bank.limit
    assert pos.min() >= 0 and pos.max() < limit
    assert pos.min() == 0 and pos.max() == limit - 1  # the walls are reached
    step = pos[:, 1:] - pos[:, :-1]
    assert step.abs().max() <= train_bank.max_velocity
    # away from the walls the motion is uniform: pos[t+1] - pos[t] = pos[t] - pos[t-1]
    inner = (pos[:, 1:-1] - step[:, :-1].abs() > 0) & (pos[:, 1:-1] + step[:, :-1].abs() < limit - 1)
    assert inner.any()
    assert torch.equal(step[:, 1:][inner], step[:, :-1][inner])


@pytest.mark.parametrize("image_size,digit_size,v", [(32, 16, 2), (64, 32, 4)])
def test_velocities_are_minus_v_to_v_minus_one(train_bank, image_size, digit_size, v):
    bank = make_bank(train_bank, image_size=image_size, digit_size=digit_size, max_velocity=v)
    f = bank.sample_factors(4000, torch.Generator().manual_seed(4), 2)
    start, nxt = f.positions[:, 0], f.positions[:, 1]
    assert start.min() >= 0 and start.max() < bank.limit
    free = (start - v >= 0) & (start + v < bank.limit)   # no bounce possible at t=1
    first_steps = set((nxt - start)[free].unique().tolist())
    assert first_steps == set(range(-v, v))


def test_frozen_test_factors_are_frozen(train_bank):
    a = frozen_test_factors(train_bank, 64, seed=1234)
    torch.manual_seed(99)
    torch.rand(1000)
    g = torch.Generator().manual_seed(5)
    train_bank.sample_factors(16, g)  # a training generator being used in between
    b = frozen_test_factors(train_bank, 64, seed=1234)
    for name in ("digit_index", "labels", "positions", "front"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = frozen_test_factors(train_bank, 64, seed=1235)
    assert not torch.equal(a.positions, c.positions)
    # it is exactly sample_factors under a fresh generator seeded with the test seed
    d = train_bank.sample_factors(64, torch.Generator().manual_seed(1234))
    assert torch.equal(a.positions, d.positions) and torch.equal(a.digit_index, d.digit_index)


# -- rendering --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 7])
def test_render_matches_the_reference_exactly(train_bank, seed):
    B, T = 6, 20
    factors = train_bank.sample_factors(B, torch.Generator().manual_seed(seed), T)
    digit_index, start, vel, front = reference_draws(train_bank, B, seed)
    positions = reference_positions(start, vel, T, train_bank.limit)
    frames = train_bank.render(factors, torch.arange(T))
    assert frames.shape == (B, T, 3, 32, 32) and frames.dtype == torch.float32
    for b in range(B):
        for t in range(T):
            expected = reference_frame(train_bank, digit_index[b], positions[b][t], front[b])
            assert torch.equal(frames[b, t], expected), (b, t)


def test_occlusion_by_the_front_digit(train_bank):
    f = train_bank.sample_factors(64, torch.Generator().manual_seed(8), 20)
    frames = train_bank.render(f, torch.arange(20))
    front = f.front.view(-1, 1, 1, 1).expand(-1, 20, 32, 32)
    front_ch = torch.gather(frames, 2, front.unsqueeze(2)).squeeze(2)
    back_ch = torch.gather(frames, 2, (1 - front).unsqueeze(2)).squeeze(2)
    assert (back_ch[front_ch > 0] == 0).all()
    assert (back_ch > 0).any()  # the back digit is still drawn where the front one is dark
    # the front digit is drawn whole: its channel sums to the digit's total ink in every frame
    ink = train_bank.digits[f.digit_index].sum(dim=(2, 3))             # (B, D)
    front_ink = torch.gather(ink, 1, f.front.view(-1, 1))               # (B, 1)
    assert torch.allclose(front_ch.sum(dim=(2, 3)), front_ink.expand(-1, 20), rtol=1e-5)


def test_render_per_clip_times_equals_indexing_full_clips(train_bank):
    B, T = 10, 20
    g = torch.Generator().manual_seed(9)
    factors = train_bank.sample_factors(B, g, T)
    full = train_bank.render(factors, torch.arange(T))
    times = torch.randint(0, T, (B, 5), generator=g)
    per_clip = train_bank.render(factors, times)
    assert per_clip.shape == (B, 5, 3, 32, 32)
    assert torch.equal(per_clip, full[torch.arange(B)[:, None], times])
    shared = train_bank.render(factors, torch.tensor([3, 0, 19]))
    assert torch.equal(shared, full[:, [3, 0, 19]])


def test_frames_range_and_channels(train_bank):
    clips, factors = train_bank.sample_clips(32, torch.Generator().manual_seed(10))
    assert clips.shape == (32, 20, 3, 32, 32)
    assert clips.min() >= 0 and clips.max() <= 1
    assert clips[:, :, 2].abs().sum() == 0      # 2 digits in 3 channels: blue stays empty
    assert (clips[:, :, 0].amax(dim=(2, 3)) > 0.5).all()  # red and green digits in every frame
    assert (clips[:, :, 1].amax(dim=(2, 3)) > 0.5).all()


def test_digits_are_resized_to_digit_size(train_bank):
    assert train_bank.digits.shape[1:] == (16, 16)
    assert train_bank.digits.min() >= 0 and train_bank.digits.max() <= 1
    assert len(train_bank.digits) == len(train_bank.labels) == 4000


def test_centers(train_bank):
    f = train_bank.sample_factors(4, torch.Generator().manual_seed(11), 20)
    c = train_bank.centers(f, torch.tensor([0, 5]))
    assert c.shape == (4, 2, 2, 2)
    assert torch.equal(c, f.positions[:, [0, 5]].float() + 7.5)


def test_subset_and_len(train_bank):
    f = train_bank.sample_factors(8, torch.Generator().manual_seed(12), 20)
    sub = f.subset(slice(2, 5))
    assert len(sub) == 3 and torch.equal(sub.positions, f.positions[2:5])


def test_bad_geometry_is_refused(train_bank):
    images = (train_bank.digits[:4] * 255).to(torch.uint8).numpy()
    labels = train_bank.labels[:4].numpy()
    with pytest.raises(ValueError, match="channels"):
        MovingMNIST(images, labels, DataConfig(num_digits=2, digit_size=16), ModelConfig(image_size=32, channels=1))
    with pytest.raises(ValueError, match="digit_size"):
        MovingMNIST(images, labels, DataConfig(digit_size=32), ModelConfig(image_size=32))


@pytest.mark.parametrize("limit, max_velocity", [(32, 4), (33, 4), (17, 2), (5, 7), (1, 3), (12, 12)])
def test_bounce_positions_in_closed_form_match_the_frame_by_frame_loop(limit, max_velocity):
    # every start and velocity of small ranges, and speeds above the room to move (5, 7), a limit of
    # one position (1, 3), a velocity of zero, walls reached exactly (33 = 1 + 4 * 8), long clips
    g = torch.Generator().manual_seed(limit * 100 + max_velocity)
    start = torch.randint(limit, (300, 2, 2), generator=g)
    vel = torch.randint(-max_velocity, max_velocity, (300, 2, 2), generator=g)
    fast = bounce_positions(start, vel, 120, limit)
    assert fast.shape == (300, 120, 2, 2) and fast.dtype == torch.int64
    assert fast.tolist() == [[[list(p) for p in frame] for frame in clip]
                             for clip in reference_positions(start.tolist(), vel.tolist(), 120, limit)]
