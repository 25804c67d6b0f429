"""Figures of drnet_lib.viz: structure of each figure, model modes, animation size, annotations."""

import math

import matplotlib

matplotlib.use("Agg", force=True)


import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from drnet_lib import viz, viz_curves, viz_rollout  # noqa: E402
from drnet_lib.config import get_config  # noqa: E402
from drnet_lib.data.mnist import load_digits  # noqa: E402
from drnet_lib.data.moving_mnist import MovingMNIST, frozen_test_factors  # noqa: E402
from drnet_lib.models import DrNet  # noqa: E402


@pytest.fixture(scope="module")
def cfg():
    return get_config("mnist", "smoke")


@pytest.fixture(scope="module")
def clips(cfg):
    """(4, 20, 3, 32, 32) frames from the smoke bank's frozen test factors."""
    images, labels = load_digits("embedded", "test")
    bank = MovingMNIST(images, labels, cfg.data, cfg.model)
    factors = frozen_test_factors(bank, 4, seed=0)
    return bank.render(factors, torch.arange(cfg.data.clip_length))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def by_label(fig):
    return {ax.get_label(): ax for ax in fig.axes}


def test_frame_to_rgb_channels():
    f = torch.rand(3, 8, 6)
    rgb = viz.frame_to_rgb(f)
    assert rgb.shape == (8, 6, 3)
    np.testing.assert_allclose(rgb[..., 1], f[1].numpy())
    assert viz.frame_to_rgb(np.ones((1, 4, 4)) * 2).max() == 1.0  # grey, clipped
    assert viz.frame_to_rgb(np.ones((2, 4, 4)))[..., 2].max() == 0.0  # empty blue
    with pytest.raises(ValueError, match=r"a frame must be \(C, H, W\), got shape \(4, 4\)"):
        viz.frame_to_rgb(np.zeros((4, 4)))


def test_show_clips_grid(clips, tmp_path):
    fig = viz.show_clips(clips, max_clips=3, max_frames=5, title="clips")
    assert len(fig.axes) == 15 and len(image_axes(fig)) == 15
    tile = by_label(fig)["clip 1 t=3"]
    np.testing.assert_allclose(tile.images[0].get_array(), clips[1, 2].permute(1, 2, 0).numpy())
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"t={k}" for k in range(1, 6)]
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in fig.axes)
    fig.savefig(tmp_path / "clips.png", dpi=40)
    # a single clip (T, C, H, W) is one row; fewer clips/frames than the maxima are all shown
    assert len(viz.show_clips(clips[0, :3]).axes) == 3


def _history(n=20):
    return [dict(iteration=50 * i, reconstruction=0.05 / (i + 1), similarity=0.01 / (i + 1),
                 pose_adversarial=0.69 + 0.01 * math.sin(i), discriminator_bce=0.68,
                 discriminator_accuracy=0.5 + 0.01 * i) for i in range(n)]


def test_plot_training_curves(tmp_path):
    rcparams = dict(matplotlib.rcParams)
    fig = viz_curves.plot_training_curves(_history())
    assert len(fig.axes) == 3
    a, b, c = fig.axes
    assert a.get_yscale() == "log" and len(a.lines) == 2
    dashed = [ln for ln in b.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(math.log(2))
    assert len(b.lines) == 3
    assert any(ln.get_linestyle() == "--" and ln.get_ydata()[0] == 0.5 for ln in c.lines)
    fig.savefig(tmp_path / "train.png", dpi=40)
    assert dict(matplotlib.rcParams) == rcparams  # seaborn theme did not leak
    # rows with missing keys or NaN are skipped, not fatal
    fig = viz_curves.plot_training_curves([{"iteration": 0, "reconstruction": float("nan")},
                                    {"iteration": 1, "reconstruction": 0.1}])
    assert len(fig.axes[0].lines[0].get_xdata()) == 1


def test_plot_lstm_curve():
    fig = viz_curves.plot_lstm_curve([dict(iteration=i, pose_mse=1.0 / (i + 1)) for i in range(10)])
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].lines[0].get_xdata()) == 10
    assert "(log scale)" in fig.axes[0].get_ylabel()


def test_factorization_grid(cfg, clips, tmp_path):
    torch.manual_seed(0)
    model = DrNet(cfg.model)
    model.train()
    model.scene_discriminator.eval()  # each submodule's own mode must be restored
    before = {name: m.training for name, m in model.named_modules()}
    content, pose = clips[:3, 0], clips[:4, 5]
    fig = viz.factorization_grid(model, content, pose)
    assert {name: m.training for name, m in model.named_modules()} == before

    assert len(fig.axes) == 4 * 5 and len(image_axes(fig)) == 4 * 5 - 1
    tiles = by_label(fig)
    assert not tiles["corner"].images and "content ↓" in tiles["corner"].texts[0].get_text()
    np.testing.assert_allclose(tiles["pose 2"].images[0].get_array(), pose[2].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(tiles["content 1"].images[0].get_array(), content[1].permute(1, 2, 0).numpy())
    model.eval()
    with torch.no_grad():  # cell (i, j) = decode(content of row i with its skips, pose of column j)
        c, skips = model.encode_content(content[1:2])
        expected = model.decode(c, skips, model.encode_pose(pose[2:3]))[0]
    np.testing.assert_allclose(tiles["decoded 1,2"].images[0].get_array(),
                               expected.permute(1, 2, 0).numpy(), atol=1e-5)
    fig.savefig(tmp_path / "grid.png", dpi=40)


def test_rollout_strip(clips, tmp_path):
    gen, truth = clips[:2], clips[:2, :10]
    steps = [1, 2, 3, 5, 10, 20, 50]  # 50 is beyond the 20 generated frames: dropped
    fig = viz_rollout.rollout_strip(gen, truth, steps, n_observed=5)
    assert len(fig.axes) == 2 * 2 * 6
    assert len(image_axes(fig)) == 2 * (6 + 5)  # truth stops after 10 frames: step 20 is blank
    tiles = by_label(fig)
    assert not tiles["blank truth 1 t=20"].images and not tiles["blank truth 1 t=20"].axison
    np.testing.assert_allclose(tiles["generated 1 t=5"].images[0].get_array(),
                               gen[1, 4].permute(1, 2, 0).numpy())
    assert [ax.get_title() for ax in fig.axes[:6]] == ["t=1", "t=2", "t=3", "t=5", "t=10", "t=20"]
    assert "5 observed" in fig.texts[0].get_text()
    fig.savefig(tmp_path / "strip.png", dpi=40)

    fig = viz_rollout.rollout_strip(gen, None, [1, 4], n_observed=3)
    assert len(fig.axes) == 2 * 2 and len(image_axes(fig)) == 4
    with pytest.raises(ValueError, match=r"steps are 1-indexed, got \[0, 1\]"):
        viz_rollout.rollout_strip(gen, None, [0, 1], n_observed=3)


def test_rollout_animation(clips):
    frames = clips[:3].reshape(-1, *clips.shape[2:])[:50]  # 50 frames
    open_before = plt.get_fignums()
    html = viz_rollout.rollout_animation(frames, frames[:30], fps=10)
    assert isinstance(html, str) and "<script" in html
    assert len(html.encode()) < 2 * 1024 * 1024
    assert html.count("data:image/png;base64") == 50
    assert plt.get_fignums() == open_before  # its own figure is closed
    short = viz_rollout.rollout_animation(frames, None, max_frames=7)
    assert short.count("data:image/png;base64") == 7


def test_probe_heatmap():
    metrics = {"probe.content_to_identity": 0.9345, "probe.pose_to_identity": 0.1234,
               "probe.content_to_position_r2": -0.051, "probe.pose_to_position_r2": 0.876}
    fig = viz_curves.probe_heatmap(metrics, chance={"identity": 0.1})
    ax = fig.axes[0]
    cells = {(round(t.get_position()[1] - 0.5), round(t.get_position()[0] - 0.5)): t.get_text()
             for t in ax.texts}
    assert cells == {(0, 0): "0.93", (0, 1): "-0.05", (1, 0): "0.12", (1, 1): "0.88"}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["content", "pose"]
    xlabels = [t.get_text() for t in ax.get_xticklabels()]
    assert xlabels == ["digit identity (acc)\nchance 0.10", "digit position (R²)"]
    mesh = ax.collections[0]
    assert mesh.norm.vmin == 0.0 and mesh.norm.vmax == 1.0
    # nested metrics are accepted too
    fig = viz_curves.probe_heatmap({"probe": {k.split(".")[1]: v for k, v in metrics.items()}})
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["-0.05", "0.12", "0.88", "0.93"]


def test_plot_frame_metrics():
    psnr, ssim = np.linspace(30, 20, 12), np.linspace(0.9, 0.5, 12)
    fig = viz_rollout.plot_frame_metrics(psnr, ssim)
    assert len(fig.axes) == 2 and all(len(ax.lines) == 1 for ax in fig.axes)
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), np.arange(1, 13))
    fig = viz_rollout.plot_frame_metrics(torch.tensor(psnr), ssim, psnr - 3, ssim - 0.1)
    assert [ln.get_linestyle() for ln in fig.axes[1].lines] == ["-", "--"]


def test_horizon_plot_draws_accuracy_and_motion_against_the_step_on_log_axes():
    fig = viz_rollout.horizon_plot({"10": 0.8, "100": 0.5, "500": 0.3}, {"10": 0.9, "500": 0.1}, chance=0.1,
                                   real_accuracy=0.97, accuracy_label="digit identity accuracy")
    acc, motion = fig.axes
    assert acc.get_xscale() == motion.get_xscale() == "log"
    np.testing.assert_array_equal(acc.lines[0].get_xdata(), [10, 100, 500])
    np.testing.assert_array_equal(motion.lines[0].get_xdata(), [10, 500])   # its own steps
    assert {ln.get_ydata()[0] for ln in acc.lines[1:]} == {0.97, 0.1}
    assert acc.get_ylabel() == "digit identity accuracy"
    assert len(viz_rollout.horizon_plot({5: 0.5}, {5: 0.2}, chance=0.1).axes[0].lines) == 2
    # the true poses decoded: one more line on the motion panel, at its value
    with_oracle = viz_rollout.horizon_plot({5: 0.5}, {5: 0.2}, chance=0.1, oracle_motion=0.7).axes[1]
    assert [ln.get_ydata()[0] for ln in with_oracle.lines[1:]] == [1.0, 0.7]


def test_kth_prediction_by_action_has_one_bar_group_per_action_and_skips_missing_predictors():
    from drnet_lib import viz_kth_diagnostics

    by_action = {"walking": {"psnr_mean": 24.0, "oracle_psnr_mean": 27.0, "copy_last_psnr_mean": 22.0},
                 "boxing": {"psnr_mean": 26.0, "copy_last_psnr_mean": 30.0}}   # no ceiling recorded
    fig = viz_kth_diagnostics.prediction_by_action(by_action)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["walking", "boxing"]
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 3 * 2 and sum(np.isnan(h) for h in heights) == 1
    assert ax.get_ylim()[0] < 22.0
    plt.close(fig)


def test_by_adversarial_weight_puts_beta_zero_on_the_axis_and_every_run_on_it():
    from drnet_lib import viz_adversarial

    panels = (("a", "first", 0.5), ("b", "second", None), ("c", "third", None))
    rows = [{"beta": b, "seed": s, "a": a, "b": 1.0, "c": 2.0} for b, s, a in [(0.1, 0, 0.6), (0.0, 1, 0.9), (0.0, 0, 0.7)]]
    fig = viz_adversarial.by_adversarial_weight(rows, panels, chance={"b": 0.1})
    first, second = fig.axes[:2]
    assert len(fig.axes) == 3                                                   # the fourth cell removed
    assert [t.get_text() for t in first.get_xticklabels()] == ["0", "0.1"]      # sorted, 0 included
    assert [p.get_height() for p in first.patches] == pytest.approx([0.8, 0.6])  # mean per beta
    dots = [line for line in first.lines if line.get_marker() == "o"]
    assert sorted(float(d.get_ydata()[0]) for d in dots) == pytest.approx([0.6, 0.7, 0.9])
    dashed = [line for line in second.lines if line.get_linestyle() == "--"]
    assert [float(d.get_ydata()[0]) for d in dashed] == pytest.approx([0.1])    # the chance given
    plt.close(fig)


def test_code_motion_by_beta_draws_each_run_and_each_betas_mean_against_the_true_step():
    from drnet_lib import viz_adversarial

    curves = {0.1: [[0.4, 0.2, 0.0], [0.6, 0.4, 0.2]], 0.0: [[1.0, 0.9, 1.1]]}
    fig = viz_adversarial.code_motion_by_beta(curves)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "(log scale)" in ax.get_xlabel()
    means = {line.get_label(): list(line.get_ydata()) for line in ax.lines if line.get_label().startswith("β")}
    assert means["β = 0.1 (mean of 2)"] == pytest.approx([0.5, 0.3, 0.1])
    assert means["β = 0 (mean of 1)"] == pytest.approx([1.0, 0.9, 1.1])
    assert len(ax.lines) == 3 + 2 + 1                    # every run, every mean, the true step
    assert [float(y) for y in ax.lines[-1].get_ydata()] == [1.0, 1.0]
    plt.close(fig)


def test_kth_margin_over_copy_last_draws_one_bar_per_model_and_group():
    from drnet_lib import viz_kth_diagnostics

    gaps = {"cpu profile": {"walking": 3.0, "boxing": -5.0, "moving": 3.0, "in place": -5.0},
            "vgg_unet": {"walking": 4.0, "boxing": -1.0, "moving": 4.0, "in place": -1.0}}
    fig = viz_kth_diagnostics.margin_over_copy_last(gaps)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["walking", "boxing", "mean:\nmoving", "mean:\nin place"]
    assert [p.get_height() for p in ax.patches] == [3.0, -5.0, 3.0, -5.0, 4.0, -1.0, 4.0, -1.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cpu profile", "vgg_unet"]
    assert ax.get_ylabel() == "ceiling − copy last (dB)"
    plt.close(fig)
    fig = viz_kth_diagnostics.margin_over_copy_last(gaps, ylabel="DrNet − copy last (dB)")
    assert fig.axes[0].get_ylabel() == "DrNet − copy last (dB)"
    plt.close(fig)


def test_kth_schedule_plot_draws_both_margins_per_group_and_the_codes_against_chance():
    from drnet_lib import viz_kth_diagnostics

    def row(iterations, shift):
        return {"iterations": iterations, "margin.drnet.moving": 1.0 + shift, "margin.drnet.in place": -8.0 + shift,
                "margin.ceiling.moving": 2.0 + shift, "margin.ceiling.in place": -6.0 + shift,
                "classification.action_from_pose": 0.5 + shift / 10, "classification.person_from_pose": 0.6}

    fig = viz_kth_diagnostics.schedule_plot([row(1500, 0.0), row(3000, 1.0)], {"action": 1 / 6, "person": 1 / 9})
    left, right = fig.axes
    assert left.get_xscale() == "log" and right.get_xscale() == "log"
    assert [list(line.get_ydata()) for line in left.lines[:4]] == [[1.0, 2.0], [-8.0, -7.0], [2.0, 3.0], [-6.0, -5.0]]
    assert [t.get_text() for t in left.get_legend().get_texts()][1] == "DrNet, in place"
    assert list(right.lines[0].get_ydata()) == pytest.approx([0.5, 0.6])
    assert right.lines[1].get_ydata()[0] == pytest.approx(1 / 6)                 # the action's chance
    plt.close(fig)


def test_kth_error_split_stacks_static_under_changing_with_copy_last_once():
    from drnet_lib import viz_kth_diagnostics

    def split(d_static, d_changing):
        return {"decoded_static": d_static, "decoded_changing": d_changing, "copy_last_static": 0.1,
                "copy_last_changing": 0.9, "changing_share": 0.05}

    splits = {"cpu": {"moving": split(0.5, 0.2), "in place": split(0.4, 0.1)},
              "vgg": {"moving": split(0.3, 0.2), "in place": split(0.2, 0.1)}}
    fig = viz_kth_diagnostics.error_split(splits)
    ax = fig.axes[1]                                          # in place
    assert ax.get_title() == "in place actions"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["copy last", "cpu", "vgg"]
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx([0.1, 0.4, 0.2, 0.9, 0.1, 0.1])
    assert [b.get_y() for b in bars[3:]] == pytest.approx([0.1, 0.4, 0.2])   # changing sits on static
    plt.close(fig)


def test_kth_psnr_by_clip_list_draws_one_panel_per_list_with_the_baseline_dashed():
    from drnet_lib import viz_kth

    curves = {"ours": {"DrNet": np.array([25.0, 24.0]), "copy last": np.array([27.0, 26.0])},
              "MCNet's": {"DrNet": np.array([26.0, 25.0]), "copy last": np.array([26.5, 25.5])}}
    fig = viz_kth.psnr_by_clip_list(curves)
    assert [ax.get_title() for ax in fig.axes] == ["ours", "MCNet's"]
    lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert list(lines["DrNet"].get_ydata()) == [26.0, 25.0] and list(lines["DrNet"].get_xdata()) == [1, 2]
    assert lines["copy last"].get_linestyle() == "--" and lines["DrNet"].get_linestyle() == "-"
    plt.close(fig)


def test_kth_pose_code_motion_draws_each_group_and_setting_on_every_panel():
    from drnet_lib import viz_kth_diagnostics

    def curves(scale):
        return {"alignment": np.array([0.9, 0.8]) * scale, "length_ratio": np.array([1.0, 1.1]) * scale,
                "error_ratio": np.array([0.2, 0.3]) * scale}

    fig = viz_kth_diagnostics.pose_code_motion({"moving": {"refreshed": curves(1.0), "as trained": curves(0.5)},
                                    "in place": {"refreshed": curves(2.0)}})
    assert [ax.get_title() for ax in fig.axes] == list(viz_kth_diagnostics.POSE_CODE_PANELS.values())
    assert fig.axes[-1].get_yscale() == "log"
    for ax, key in zip(fig.axes, viz_kth_diagnostics.POSE_CODE_PANELS):
        lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
        assert set(lines) == {"moving, refreshed", "moving, as trained", "in place, refreshed"}
        assert list(lines["in place, refreshed"].get_ydata()) == list(curves(2.0)[key])
        assert lines["moving, as trained"].get_linestyle() == "--"
        assert lines["moving, refreshed"].get_color() != lines["in place, refreshed"].get_color()
    plt.close(fig)


def test_kth_action_confusion_draws_a_row_per_true_action_with_its_shares():
    from drnet_lib import viz_kth

    shares = {"walking": {"walking": 0.9, "boxing": 0.1}, "boxing": {"walking": 0.25, "boxing": 0.75}}
    fig = viz_kth.action_confusion({"refreshed": shares, "as trained": shares})
    assert [ax.get_title() for ax in fig.axes] == ["refreshed", "as trained"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["walking", "boxing"]
    assert [t.get_text() for t in ax.texts] == ["0.90", "0.10", "0.25", "0.75"]   # row by row
    plt.close(fig)


def test_kth_refreshed_schedule_plot_draws_each_group_and_setting_per_guess():
    from drnet_lib import viz_kth_diagnostics

    def row(it, shift):
        return {"iterations": it, "margin.ceiling.moving": 2 + shift, "margin.ceiling.in place": -5 + shift,
                "margin.drnet.moving": 1 + shift, "margin.drnet.in place": -7 + shift}

    fig = viz_kth_diagnostics.refreshed_schedule_plot({"as trained": [row(3000, 0), row(6000, 0.5)],
                                           "refreshed": [row(3000, 1), row(6000, 1.5)]})
    lines = {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"moving, as trained", "in place, as trained", "moving, refreshed", "in place, refreshed"}
    assert list(lines["in place, refreshed"].get_ydata()) == [-4, -3.5]
    assert lines["in place, as trained"].get_linestyle() == "--" and lines["in place, refreshed"].get_linestyle() == "-"
    right = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert list(right["moving, as trained"].get_ydata()) == [1, 1.5]
    plt.close(fig)


def test_kth_person_or_place_draws_both_splits_per_model_with_their_chances():
    from drnet_lib import viz_kth_diagnostics

    groups = {"β = 0": {"even_odd_mlp": 0.8, "across_mlp": 0.3, "even_odd_probe": 0.6, "across_probe": 0.25},
              "β = 1e-4": {"even_odd_mlp": 0.6, "across_mlp": 0.2, "even_odd_probe": 0.4, "across_probe": 0.15}}
    fig = viz_kth_diagnostics.person_or_place(groups, chance={"even_odd": 0.12, "across": 0.11})
    mlp, probe = fig.axes
    assert [p.get_height() for p in mlp.patches] == [0.8, 0.6, 0.3, 0.2]
    assert [p.get_height() for p in probe.patches] == [0.6, 0.4, 0.25, 0.15]
    assert [line.get_ydata()[0] for line in probe.lines] == [0.12, 0.11]
    assert [t.get_text() for t in mlp.get_xticklabels()] == ["β = 0", "β = 1e-4"]
    plt.close(fig)


def test_grid_heatmaps_average_each_cells_seeds():
    import pandas as pd

    from drnet_lib import viz_norb

    runs = pd.DataFrame({"adversarial_weight": [0.0, 0.0, 0.1, 0.1], "pose_dim": [2, 2, 2, 2],
                         "seed": [0, 1, 0, 1], "classification.pose": [0.2, 0.4, 0.5, 0.9]})
    fig = viz_norb.grid_heatmaps(runs, {"classification.pose": "category from pose"})
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0.30", "0.70"]      # cell means, not a seed's value
    assert "mean of 2 seeds" in ax.get_title()


# -- readability in the book: width, fonts, legends, cut-off spikes, colour bar, labels ----------
from conftest import BOOK_WIDTH_IN, MIN_FONT_PT, small_texts  # noqa: E402


def _norb_grid_runs():
    import pandas as pd

    rows = [{"adversarial_weight": b, "pose_dim": d, "seed": s, "classification.content": 0.8,
             "classification.pose": 0.3 + 0.05 * d, "probe.pose_to_category": 0.25}
            for b in (0.0, 1e-4, 1e-2, 0.1) for d in (2, 5, 10) for s in (0, 1, 2)]
    return pd.DataFrame(rows)


NORB_GRID_METRICS = {"classification.content": "category from content (two-layer)",
                     "classification.pose": "category from pose (two-layer)",
                     "probe.pose_to_category": "category from pose (linear)"}


def _spiky_psnr(n=40):
    """DrNet ~18-21 dB; a copy-last baseline ~17-22 dB that hits the 100 dB cap at steps 10 and 30."""
    steps = np.arange(1, n + 1)
    psnr = 21.0 - 3.0 * (1 - np.exp(-steps / 5.0))
    base = 19.5 + 2.0 * np.cos(steps / 3.0)
    base[[9, 29]] = 100.0
    return psnr, base


def test_wide_figures_fit_the_book_column_with_text_of_at_least_8pt(cfg, clips):
    from drnet_lib import viz_norb

    probe = plt.figure()
    probe.text(0.5, 0.5, "tiny", fontsize=6)
    assert small_texts(probe) == [("tiny", 6.0)]                        # the check sees small text

    psnr, base = _spiky_psnr()
    torch.manual_seed(0)
    model = DrNet(cfg.model)
    figures = {
        "training curves": viz_curves.plot_training_curves(_history()),
        "lstm curve": viz_curves.plot_lstm_curve([dict(iteration=i, pose_mse=1.0 / (i + 1)) for i in range(10)]),
        "frame metrics": viz_rollout.plot_frame_metrics(psnr, np.linspace(0.9, 0.5, 40), base,
                                                        np.linspace(0.8, 0.6, 40), baseline_label="copy last frame"),
        "grid heatmaps": viz_norb.grid_heatmaps(_norb_grid_runs(), NORB_GRID_METRICS),
        "factorization pair": viz_norb.factorization_pair({"with": model, "without": model},
                                                          clips[:5, 0], clips[:6, 5]),
        "rollout strip": viz_rollout.rollout_strip(clips[:3], clips[:3, :10], [1, 2, 5, 10, 20], n_observed=5),
    }
    for name, fig in figures.items():
        assert fig.get_size_inches()[0] <= BOOK_WIDTH_IN, name
        assert small_texts(fig) == [], name


def test_plot_training_curves_legends_leave_the_ln2_line_free():
    # curves above and below ln 2 everywhere: inside the Axes only the line's own band is free
    hist = [dict(iteration=50 * i, reconstruction=0.05 / (i + 1), similarity=0.01 / (i + 1),
                 pose_adversarial=0.85 + 0.1 * math.sin(i), discriminator_bce=0.5 + 0.1 * math.cos(i),
                 discriminator_accuracy=0.5 + 0.4 * math.sin(i / 2)) for i in range(80)]
    fig = viz_curves.plot_training_curves(hist)
    a, b, c = fig.axes
    assert [ax.get_title()[:3] for ax in (a, b, c)] == ["(a)", "(b)", "(c)"]   # the captions' letters
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax, level in ((b, math.log(2)), (c, 0.5)):
        legend = ax.get_legend().get_window_extent(renderer)
        box = ax.get_window_extent(renderer)
        outside = legend.x0 >= box.x1 or legend.x1 <= box.x0 or legend.y0 >= box.y1 or legend.y1 <= box.y0
        y = ax.transData.transform((0.0, level))[1]
        assert outside or not (legend.y0 <= y <= legend.y1), ax.get_title()


def test_plot_frame_metrics_cuts_off_spikes_and_marks_them():
    psnr, base = _spiky_psnr()
    fig = viz_rollout.plot_frame_metrics(psnr, np.linspace(0.9, 0.5, 40), base, np.linspace(0.8, 0.6, 40))
    ax = fig.axes[0]
    bulk = np.r_[psnr, np.delete(base, [9, 29])]
    low, high = ax.get_ylim()
    assert bulk.max() <= high < bulk.max() + 3.0 and low <= bulk.min()   # the bulk fills the axis
    marks = [ln for ln in ax.lines if ln.get_marker() == "^"]
    assert len(marks) == 1
    np.testing.assert_array_equal(marks[0].get_xdata(), [10, 30])
    np.testing.assert_allclose(marks[0].get_ydata(), high)                # on the top edge
    assert sorted(t.get_text() for t in ax.texts) == ["100 dB", "100 dB"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "DrNet", "baseline", "PSNR above the axis (its value written above)"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), base, rtol=1e-6)  # the curve itself is unchanged
    # +inf counts as a spike too
    inf_base = np.where(base > 99, np.inf, base)
    fig = viz_rollout.plot_frame_metrics(psnr, np.linspace(0.9, 0.5, 40), inf_base, np.linspace(0.8, 0.6, 40))
    assert fig.axes[0].get_ylim()[1] == pytest.approx(high)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["∞ dB", "∞ dB"]
    # without spikes every value is shown, with matplotlib's own limits as before
    for psnr, base in ((np.linspace(30, 20, 12), np.linspace(31, 22, 12)),       # decaying, no repeat
                       (np.r_[35.0, np.linspace(26, 22, 11)], None)):           # a high first step is no spike
        fig = viz_rollout.plot_frame_metrics(psnr, np.linspace(0.9, 0.5, 12), base,
                                             None if base is None else np.linspace(0.8, 0.6, 12))
        ax = fig.axes[0]
        values = psnr if base is None else np.r_[psnr, base]
        low, high = ax.get_ylim()
        assert low <= values.min() and high >= values.max()
        assert not [ln for ln in ax.lines if ln.get_marker() == "^"] and not ax.texts
        assert ax.get_autoscaley_on()


def test_grid_heatmaps_draw_one_colour_bar_for_the_shared_0_to_1_scale():
    from drnet_lib import viz_norb

    fig = viz_norb.grid_heatmaps(_norb_grid_runs(), NORB_GRID_METRICS)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and len(fig.axes) == len(NORB_GRID_METRICS) + 1
    heatmaps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert all(ax.collections[0].norm.vmin == 0 and ax.collections[0].norm.vmax == 1 for ax in heatmaps)
    assert bars[0].get_ylim() == pytest.approx((0.0, 1.0))
    assert [ax.get_title().split("\n")[0] for ax in heatmaps] == ["category from content", "category from pose",
                                                                  "category from pose"]   # left, middle, right


def test_show_clips_takes_column_and_row_labels(clips):
    degrees = [f"{20 * k}°" for k in range(5)]
    fig = viz.show_clips(clips, max_clips=3, max_frames=5, col_labels=degrees + ["unused"],
                         row_labels=["animal", "human", "airplane"])
    assert [ax.get_title() for ax in fig.axes[:5]] == degrees
    assert [fig.axes[5 * i].get_ylabel() for i in range(3)] == ["animal", "human", "airplane"]
    assert "clip 1 t=3" in by_label(fig)                           # tile labels do not change
    # a label longer than a tile is tall is broken at a space
    assert viz.show_clips(clips[:2, :3], row_labels=["walking", "hand clapping"]).axes[3].get_ylabel() == "hand\nclapping"
    # a single long word is kept whole, not cut ("handclappi\nng")
    assert viz.show_clips(clips[:2, :3], row_labels=["walking", "handclapping"]).axes[3].get_ylabel() == "handclapping"
    # a single clip gets its row label when one is given
    assert viz.show_clips(clips[0, :3], row_labels=["real"]).axes[0].get_ylabel() == "real"
    # too few labels is an error, not a silent mislabel
    with pytest.raises(ValueError, match="col_labels has 2 labels for 5 drawn frames"):
        viz.show_clips(clips, max_frames=5, col_labels=["a", "b"])
    with pytest.raises(ValueError, match="row_labels has 1 labels for 3 drawn clips"):
        viz.show_clips(clips, max_clips=3, row_labels=["a"])
    # without them the labels are as before
    fig = viz.show_clips(clips, max_clips=3, max_frames=4)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["t=1", "t=2", "t=3", "t=4"]
    assert [fig.axes[4 * i].get_ylabel() for i in range(3)] == ["clip 1", "clip 2", "clip 3"]
    assert viz.show_clips(clips[0, :3]).axes[0].get_ylabel() == ""   # one clip: no row label


def test_show_clips_row_labels_stay_apart_and_inside_the_figure():
    """KTH's six actions beside ten frames: "handclapping" is longer than a tile is tall, so the
    labels are written across, in a wider margin; upright, it ran into "handwaving" above it."""
    frames = np.random.default_rng(0).random((6, 10, 1, 64, 64), dtype=np.float32)
    actions = ["walking", "jogging", "running", "boxing", "handwaving", "handclapping"]
    for drawn in (10, 5, 3):
        fig = viz.show_clips(frames[:, :drawn], max_clips=6, max_frames=drawn, row_labels=actions)
        assert fig.get_size_inches()[0] <= BOOK_WIDTH_IN
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = [fig.axes[drawn * i].yaxis.label.get_window_extent(renderer) for i in range(6)]
        assert [fig.axes[drawn * i].get_ylabel() for i in range(6)] == actions
        width, height = fig.bbox.width, fig.bbox.height
        for box in boxes:
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (drawn, box)
        for upper, lower in zip(boxes, boxes[1:]):
            assert not upper.overlaps(lower), (drawn, upper, lower)
        plt.close(fig)
    # two words that fit a tile only on two lines are broken, not written across
    fig = viz.show_clips(frames, max_clips=2, max_frames=10, row_labels=["wave hands", "run"])
    assert fig.axes[0].get_ylabel() == "wave\nhands" and fig.axes[0].yaxis.label.get_rotation() == 90
    # an empty label is no label; one too long to draw is refused by name, not drawn off the figure
    assert viz.show_clips(frames[:2, :3], row_labels=["real", ""]).axes[3].get_ylabel() == ""
    with pytest.raises(ValueError, match="row label 'x{60}' is too long to draw beside its clip"):
        viz.show_clips(frames[:2, :10], row_labels=["x" * 60, "y"])


def test_rollout_strip_tiles_fill_the_book_column():
    frames = np.random.default_rng(0).random((3, 500, 1, 64, 64), dtype=np.float32)
    kth_steps = [1, 2, 5, 10, 20, 50, 100, 200]                       # 8 columns: larger tiles
    width = viz_rollout.rollout_strip(frames, frames[:, :20], kth_steps, n_observed=10).get_size_inches()[0]
    assert 7.0 < width <= BOOK_WIDTH_IN
    many = [1, 2, 3, 5, 10, 20, 50, 100, 200, 300, 400, 500]          # 12 columns: smaller tiles, same width
    fig = viz_rollout.rollout_strip(frames, None, many, n_observed=5)
    assert fig.axes[0].get_position().width * fig.get_size_inches()[0] < 0.7
    assert fig.get_size_inches()[0] <= BOOK_WIDTH_IN
    # ten frames of clips with row labels fit too (MNIST's and the chairs' test clips were 8.1 in)
    assert viz.show_clips(frames[:, :10], row_labels=["walking", "jogging", "handclapping"]
                          ).get_size_inches()[0] <= BOOK_WIDTH_IN
    fig = viz_rollout.rollout_strip(frames, None, kth_steps, n_observed=5, tile=0.5)   # or as asked
    assert fig.axes[0].get_position().width * fig.get_size_inches()[0] == pytest.approx(0.5)


def test_rollout_animation_frames_are_larger_and_grey_ones_stored_grey(clips):
    import base64
    import io
    import re

    from PIL import Image

    def first_frame(html):
        data = re.search(r"data:image/png;base64,([A-Za-z0-9+/=\\\n]*)", html).group(1)
        return Image.open(io.BytesIO(base64.b64decode(data.replace("\\", "").replace("\n", ""))))

    colour = first_frame(viz_rollout.rollout_animation(clips[0], clips[0, :5]))
    grey = first_frame(viz_rollout.rollout_animation(clips[0, :, :1], clips[0, :5, :1]))
    assert colour.mode == "RGB" and grey.mode == "L"
    assert colour.size == grey.size and colour.size[0] >= 300        # two 1.9-in panels at dpi 80
