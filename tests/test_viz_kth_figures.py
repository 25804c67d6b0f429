"""The KTH figures read well in the book: no wider than its column, no text under 8 pt, log axes
labelled as such, one colour per guess on every figure, no overprinted labels, and one chance line
where the two splits' chance levels are equal.

The inputs mimic the book's (six actions, three seeds per β, the long legend labels of the
diagnostics page). tests/test_viz.py builds its KTH inputs inline in each test, so there is nothing
to import from it; these tests check the figures' reading, test_viz.py their content.
"""

import io
import itertools

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.image as mimage  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from drnet_lib import viz_adversarial, viz_kth, viz_kth_diagnostics, viz_rollout  # noqa: E402

from conftest import BOOK_WIDTH_IN, shown_texts, small_texts  # noqa: E402

ACTIONS = ("walking", "jogging", "running", "boxing", "handwaving", "handclapping")
COLUMN_PX = 765            # the book's text column at a 1920-px window; figures are saved at 100 dpi


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _schedule_row(iterations, shift):
    return {"iterations": iterations, "margin.drnet.moving": 1.4 + shift, "margin.drnet.in place": -8.2 + shift,
            "margin.ceiling.moving": 2.6 + shift, "margin.ceiling.in place": -5.5 + shift,
            "classification.action_from_pose": 0.52 + shift / 10, "classification.person_from_pose": 0.71 - shift / 10}


def _sweep_rows():
    """Three seeds at each of six β (0 among them), the seeds of 1e-4 with equal person-from-pose (as in the book)."""
    rows = []
    for k, beta in enumerate((1e-4, 5e-4, 1e-3, 2e-3, 1e-2, 0.0)):
        for seed in (0, 1, 2):
            rows.append({"beta": beta, "seed": seed, "person_from_pose": 0.6 if k == 0 else 0.6 - 0.05 * k + 0.02 * seed,
                         "action_from_pose": 0.59, "discriminator_accuracy": 0.9 - 0.08 * k,
                         "probe_person_from_pose": 0.4, "psnr_mean": 25.0, "motion_ratio": 0.05 + 0.01 * seed})
    return rows


def _margins(n_models=5, long=True):
    """``{model label: {action and group: dB}}`` like the diagnostics page's LSTM figure (Fig 35):
    five models whose margins differ by a tenth of a dB here and there."""
    names = ["DrNet cpu profile, cpu-profile LSTM (3 seeds)", "DrNet cpu profile, LSTM 256 × 20000 (3 seeds)",
             "DrNet train.iterations 9000, cpu-profile LSTM (1 seed)", "DrNet train.iterations 9000, LSTM 256 × 20000 (1 seed)",
             "ceiling, cpu profile: oracle (3 seeds)"] if long else [f"model {i}" for i in range(n_models)]
    values = {"walking": (1.1, 1.4, 1.5, 1.9, 2.9), "jogging": (1.2, 1.3, 1.8, 1.6, 2.9),
              "running": (2.1, 1.2, 1.9, 2.3, 3.0), "boxing": (-8.5, -7.1, -8.3, -6.2, -5.5),
              "handwaving": (-6.8, -5.5, -6.7, -5.3, -4.0), "handclapping": (-8.5, -8.0, -8.8, -6.8, -5.9),
              "moving": (1.5, 1.3, 1.7, 1.9, 2.9), "in place": (-7.9, -6.9, -7.9, -6.1, -5.1)}
    return {name: {g: v[i] for g, v in values.items()} for i, name in enumerate(names[:n_models])}


def _confusion(diagonal):
    return {a: {b: diagonal if a == b else (1 - diagonal) / 5 for b in ACTIONS} for a in ACTIONS}


def _curves(scale):
    steps = np.arange(1, 21)
    return {"alignment": 0.8 - 0.005 * steps * scale, "length_ratio": 1 + 0.2 * steps * scale,
            "error_ratio": 0.2 + 0.02 * steps * scale}


def _split(d_static, d_changing):
    return {"decoded_static": d_static, "decoded_changing": d_changing, "copy_last_static": 0.0001,
            "copy_last_changing": 0.006, "changing_share": 0.05}


def _by_action():
    return {a: {"psnr_mean": 24.3 + k, "oracle_psnr_mean": 25.9 + k, "copy_last_psnr_mean": 23.3 + 2 * k}
            for k, a in enumerate(ACTIONS)}


def _person_groups():
    return {f"β = {b}": {"even_odd_mlp": 0.7 - 0.05 * k, "across_mlp": 0.16, "even_odd_probe": 0.47 - 0.02 * k,
                         "across_probe": 0.16} for k, b in enumerate(("0", "0.0001", "0.0005", "0.001", "0.002", "0.01"))}


STEP_CURVES = {label: 28 - 0.1 * k - 0.05 * np.arange(20) for k, label in
               enumerate(("DrNet (pose LSTM)", "decoded from true poses", "DrNet standing still", "copy last"))}

# every figure of viz_kth and viz_kth_diagnostics, drawn as the book's pages and the chapter draw it
FIGURES = {
    "classification_bars": lambda: viz_kth.classification_bars(
        {"β = 1e-4": {q: 0.5 for q, _ in viz_kth.QUESTIONS}, "β = 0": {q: 0.6 for q, _ in viz_kth.QUESTIONS}},
        chance={"action": 0.24, "person": 0.12}, errors={"β = 1e-4": {q: 0.03 for q, _ in viz_kth.QUESTIONS},
                                                          "β = 0": {q: 0.1 for q, _ in viz_kth.QUESTIONS}}),
    # the chapter's rollout figure (viz_rollout's, shared with Moving MNIST), drawn with KTH's values
    "horizon_plot": lambda: viz_rollout.horizon_plot({10: 0.36, 50: 0.25, 100: 0.23, 200: 0.23},
                                                     {10: 0.36, 50: 0.13, 100: 0.09, 200: 0.06}, 0.24, 0.56,
                                                     oracle_motion=0.8),
    "prediction_by_action": lambda: viz_kth_diagnostics.prediction_by_action(_by_action()),
    # the diagnostics page's β sweep (viz_adversarial's figure, shared with Moving MNIST), drawn with KTH's panels
    "adversarial_sweep": lambda: viz_adversarial.by_adversarial_weight(
        _sweep_rows(), viz_adversarial.KTH_PANELS, chance={"person_from_pose": 0.12, "action_from_pose": 0.24}),
    "margin_over_copy_last": lambda: viz_kth_diagnostics.margin_over_copy_last(_margins(), ylabel="prediction − copy last (dB)"),
    "psnr_by_clip_list": lambda: viz_kth.psnr_by_clip_list(
        {"as trained: 3 seeds, 240 clips": STEP_CURVES, "refreshed: 3 seeds, 240 clips": STEP_CURVES}),
    "error_split": lambda: viz_kth_diagnostics.error_split(
        {"cpu profile: oracle (3 seeds)": {"moving": _split(0.0008, 0.002), "in place": _split(0.0007, 0.0007)},
         "content_model vgg_unet (3 seeds)": {"moving": _split(0.0009, 0.0023), "in place": _split(0.0008, 0.0008)}}),
    "person_or_place": lambda: viz_kth_diagnostics.person_or_place(_person_groups(), {"even_odd": 0.119, "across": 0.119}),
    "schedule_plot": lambda: viz_kth_diagnostics.schedule_plot([_schedule_row(n, k / 4) for k, n in enumerate((1500, 3000, 6000, 12000))],
                                                   {"action": 0.24, "person": 0.12}),
    "refreshed_schedule_plot": lambda: viz_kth_diagnostics.refreshed_schedule_plot(
        {"as trained": [_schedule_row(n, 0.0) for n in (3000, 6000, 12000)],
         "refreshed": [_schedule_row(n, 0.5) for n in (3000, 6000, 12000)]}),
    "pose_code_motion": lambda: viz_kth_diagnostics.pose_code_motion({"moving": {"as trained": _curves(1), "refreshed": _curves(0.8)},
                                                          "in place": {"as trained": _curves(3), "refreshed": _curves(2.5)}}),
    "action_confusion": lambda: viz_kth.action_confusion(
        {"pose codes, as trained: mean of 3 seeds": _confusion(0.6), "pose codes, refreshed: mean of 3 seeds": _confusion(0.6),
         "the frames' motion (no DrNet): mean of 3 seeds": _confusion(0.85)}),
}


def _png_width(fig) -> int:
    """The figure's width in pixels as the book saves it (100 dpi, bbox_inches="tight")."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    buffer.seek(0)
    return mimage.imread(buffer).shape[1]


def _overlapping(texts, renderer):
    """The pairs of ``texts`` whose drawn boxes overlap (by more than half a pixel each way)."""
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(a.get_text(), b.get_text()) for (a, p), (b, q) in itertools.combinations(zip(texts, boxes), 2)
            if min(p.x1, q.x1) - max(p.x0, q.x0) > 0.5 and min(p.y1, q.y1) - max(p.y0, q.y0) > 0.5]


def _centres_x(fig):
    return [ax.get_position().x0 for ax in fig.axes]


def test_every_kth_figure_fits_the_book_column():
    too_wide = {}
    for name, draw in FIGURES.items():
        fig = draw()
        inches, pixels = fig.get_size_inches()[0], _png_width(fig)
        if inches > BOOK_WIDTH_IN or pixels > COLUMN_PX:
            too_wide[name] = (inches, pixels)
        plt.close(fig)
    assert not too_wide


def test_every_kth_figure_is_drawn_by_these_checks():
    """A figure added to viz_kth or viz_kth_diagnostics without an entry in FIGURES would escape them."""
    import inspect

    figures = {name for module in (viz_kth, viz_kth_diagnostics)
               for name, function in inspect.getmembers(module, inspect.isfunction)
               if function.__module__ == module.__name__ and not name.startswith("_")}
    assert figures - {"series_colours"} <= set(FIGURES)


def test_panels_keep_the_order_the_captions_name():
    """Captions say left/middle/right (or left to right): those panels stay side by side, in order."""
    fig = FIGURES["action_confusion"]()
    assert [ax.get_title().replace("\n", " ") for ax in fig.axes] == [
        "pose codes, as trained: mean of 3 seeds", "pose codes, refreshed: mean of 3 seeds",
        "the frames' motion (no DrNet): mean of 3 seeds"]
    for name in ("action_confusion", "pose_code_motion", "person_or_place", "schedule_plot",
                 "refreshed_schedule_plot", "psnr_by_clip_list", "error_split", "horizon_plot"):
        fig = FIGURES[name]()
        x = _centres_x(fig)
        assert x == sorted(x) and len({round(ax.get_position().y0, 3) for ax in fig.axes}) == 1, name
    # the sweep's four panels read left to right, then top to bottom
    fig = FIGURES["adversarial_sweep"]()
    assert [ax.get_title() for ax in fig.axes] == [label for _, label, _ in viz_adversarial.KTH_PANELS]
    (a, b), (c, d) = [[ax.get_position() for ax in row] for row in (fig.axes[:2], fig.axes[2:])]
    assert a.x0 < b.x0 and c.x0 < d.x0 and a.y0 > c.y0 and b.y0 > d.y0
    assert _png_width(fig) <= COLUMN_PX


def test_no_kth_figure_has_text_under_8_points():
    small = {}
    for name, draw in FIGURES.items():
        fig = draw()
        texts = small_texts(fig)
        if texts:
            small[name] = texts
        plt.close(fig)
    assert not small


def test_log_x_axes_say_so():
    for name, draw in FIGURES.items():
        fig = draw()
        log_axes = [ax for ax in fig.axes if ax.get_xscale() == "log"]
        if name in ("horizon_plot", "schedule_plot", "refreshed_schedule_plot"):
            assert log_axes == fig.axes, name
        assert all("(log scale)" in ax.get_xlabel() for ax in log_axes), name
        plt.close(fig)


def test_person_or_place_draws_one_chance_line_when_the_splits_chances_are_equal():
    fig = viz_kth_diagnostics.person_or_place(_person_groups(), {"even_odd": 0.119, "across": 0.119})
    for ax in fig.axes:
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(0.119)
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    chance = [t.get_text() for t in legend.get_texts() if "chance" in t.get_text()]
    assert len(chance) == 1 and "both" in chance[0] and "0.12" in chance[0]
    # unequal: both lines, each in its split's colour, its value in its label
    fig = viz_kth_diagnostics.person_or_place(_person_groups(), {"even_odd": 0.15, "across": 0.11})
    for ax in fig.axes:
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert [line.get_ydata()[0] for line in dashed] == [0.15, 0.11]
        assert [mcolors.to_hex(line.get_color()) for line in dashed] == [mcolors.to_hex("C0"), mcolors.to_hex("C1")]
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    chance = [t.get_text() for t in legend.get_texts() if "chance" in t.get_text()]
    assert len(chance) == 2 and "0.15" in chance[0] and "0.11" in chance[1]
    # the bars' value labels (8 pt now, in a narrower figure) do not overprint
    fig = FIGURES["person_or_place"]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert not _overlapping(ax.texts, renderer)


def _colour_of(ax, label):
    for artist in ax.get_lines() + ax.patches:
        if artist.get_label() == label:
            return mcolors.to_hex(artist.get_color() if isinstance(artist, Line2D) else artist.get_facecolor())
    for container in ax.containers:
        if container.get_label() == label:
            return mcolors.to_hex(container.patches[0].get_facecolor())
    raise KeyError(label)


def test_each_guess_has_one_colour_on_every_figure():
    chapter = {"DrNet (pose LSTM)": "C0", "decoded from true poses": "C1", "DrNet standing still": "C2",
               "copy last": "black"}                                    # the chapter's executed figure
    # the chapter's order and the diagnostics page's (standing still before the ceiling) alike
    for order in (list(STEP_CURVES), ["DrNet (pose LSTM)", "DrNet standing still", "decoded from true poses", "copy last"]):
        fig = viz_kth.psnr_by_clip_list({"a": {k: STEP_CURVES[k] for k in order}, "b": {k: STEP_CURVES[k] for k in order}})
        for ax in fig.axes:
            assert {k: _colour_of(ax, k) for k in order} == {k: mcolors.to_hex(c) for k, c in chapter.items()}
    ax = viz_kth_diagnostics.prediction_by_action(_by_action()).axes[0]
    bars = {label: _colour_of(ax, label) for _, label in viz_kth_diagnostics.PREDICTORS}
    assert bars == {"DrNet (predicted poses)": mcolors.to_hex("C0"), "decoded from true poses": mcolors.to_hex("C1"),
                    "copy last frame": mcolors.to_hex("black")}
    # series the map does not name take the colour cycle in order (the clip-list figure: blue, orange)
    ax = viz_kth.psnr_by_clip_list({"ours": {"DrNet, as trained": STEP_CURVES["copy last"],
                                             "DrNet, refreshed": STEP_CURVES["copy last"],
                                             "copy last": STEP_CURVES["copy last"]}}).axes[0]
    assert [_colour_of(ax, k) for k in ("DrNet, as trained", "DrNet, refreshed")] == [mcolors.to_hex("C0"),
                                                                                      mcolors.to_hex("C1")]


def test_schedule_plot_legend_tells_dashed_from_solid():
    fig = FIGURES["schedule_plot"]()
    left = fig.axes[0]
    legend = left.get_legend()
    assert legend.handlelength >= 3                      # long enough to show the dashes
    handles = dict(zip([t.get_text() for t in legend.get_texts()], legend.legend_handles))
    drnet, ceiling = handles["DrNet, moving"], handles["decoded from true poses, moving"]
    assert drnet.get_linestyle() == "-" and ceiling.get_linestyle() == "--"
    # open markers for the dashed series, filled for the solid ones, as refreshed_schedule_plot
    assert mcolors.to_hex(ceiling.get_markerfacecolor()) == "#ffffff"
    assert mcolors.to_hex(drnet.get_markerfacecolor()) == mcolors.to_hex(drnet.get_color())


def test_margin_over_copy_last_labels_are_apart_and_inside_the_axes():
    for gaps in (_margins(), _margins(3, long=False)):
        fig = viz_kth_diagnostics.margin_over_copy_last(gaps)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        assert len(ax.texts) == 8 * len(gaps)
        assert not _overlapping(ax.texts, renderer)
        frame = ax.get_window_extent(renderer)
        for t in ax.texts:                               # headroom: no label touches the frame
            box = t.get_window_extent(renderer)
            assert frame.y0 + 1 < box.y0 and box.y1 < frame.y1 - 1, t.get_text()
        legend = ax.get_legend()                         # the legend fits in the figure
        assert legend.get_window_extent(renderer).x1 <= fig.bbox.x1 and legend.get_window_extent(renderer).x0 >= 0


def test_adversarial_sweep_seed_labels_at_equal_values_stand_apart():
    rows = _sweep_rows()
    fig = FIGURES["adversarial_sweep"]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    person = fig.axes[0]
    labels = [t for t in person.texts if t.get_text() in {"0", "1", "2"}]
    assert len(labels) == len(rows)
    at_1e4 = [t for t, r in zip(labels, rows) if r["beta"] == 1e-4]      # equal values, one β
    assert len({t.xy[0] for t in at_1e4}) == 3
    assert [t.get_text() for t in sorted(at_1e4, key=lambda t: t.xy[0])] == ["0", "1", "2"]
    for ax in fig.axes:
        assert not _overlapping([t for t in ax.texts if t.get_text() in {"0", "1", "2"}], renderer)
    # β = 0 has its place on the axis, first; each β's runs sit around its tick, on its mean's bar
    ticks = [t.get_text() for t in person.get_xticklabels()]
    assert ticks == ["0", "0.0001", "0.0005", "0.001", "0.002", "0.01"]
    for tick, bar in zip(person.get_xticks(), person.patches):
        assert bar.get_x() < tick < bar.get_x() + bar.get_width()
    assert all(abs(t.xy[0] - ticks.index("0.0001")) < 0.5 for t in at_1e4)
    plt.close(fig)
