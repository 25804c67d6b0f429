"""Build the book as a reader gets it and check the HTML: numbers equal their JSON, no errors
on any page, every image and internal link resolves, Colab links point at real notebooks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

bs4 = pytest.importorskip("bs4")

from drnet_lib.claims import lookup  # noqa: E402
from drnet_lib.results import REPO_ROOT, grid_cell_summary, load_grid, load_runs, run_name, summarize  # noqa: E402

# the built book: the session fixture `html` in conftest.py (shared with test_browser.py)


def pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and p.name not in ("genindex.html", "search.html"))


def soup(path: Path):
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_every_toc_page_is_built(html):
    for page in ("book/intro", "book/method", "results/cpu/mnist_seed0", "book/results", "results/cpu/norb_seed0",
                 "book/norb_results", "results/cpu/suncg_seed0", "book/suncg_results",
                 "results/cpu/kth_seed0", "book/kth_results", "book/kth_diagnostics", "book/deviations",
                 "book/reproduce"):
        assert (html / f"{page}.html").exists(), page


def test_no_page_shows_an_error(html):
    for page in pages(html):
        text = soup(page).get_text()
        assert "Traceback (most recent call last)" not in text, page
        for out in soup(page).select("div.output.stderr, div.output.error, div.output.traceback"):
            assert not re.search(r"\b\w*(Error|Exception)\b", out.get_text()), (page, out.get_text()[:300])


def test_book_pages_tables_keep_their_rounding(html):
    """A table cell of a book page that prints six decimals is a Styler whose precision was lost
    (e.g. a second ``.format(dict)`` call resets the first call's ``precision`` for every other
    column): the page then shows digits no sentence relies on."""
    for page in sorted((html / "book").glob("*.html")):
        cells = [td.get_text(strip=True) for td in soup(page).select("table td")]
        unrounded = [c for c in cells if re.fullmatch(r"-?\d+\.\d{5,}", c)]
        assert not unrounded, (page.name, unrounded[:5])


def test_images_and_internal_links_resolve(html):
    for page in pages(html):
        doc = soup(page)
        for img in doc.find_all("img"):
            src = img.get("src", "")
            if src.startswith("data:") or urlparse(src).scheme:
                continue
            assert (page.parent / unquote(src)).resolve().exists(), (page, src)
        for a in doc.find_all("a", href=True):
            href = a["href"]
            parsed = urlparse(href)
            if parsed.scheme or href.startswith(("#", "mailto:")) or not parsed.path:
                continue
            assert (page.parent / unquote(parsed.path)).resolve().exists(), (page, href)


def test_colab_links_open_committed_notebooks(html):
    found = 0
    for page in pages(html):
        for a in soup(page).find_all("a", href=True):
            m = re.match(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(.+\.ipynb)$", a["href"])
            if m:
                found += 1
                assert "/./" not in a["href"]
                assert (REPO_ROOT / m.group(1)).exists(), a["href"]
    assert found, "no Colab launch link anywhere in the book"


def test_results_page_numbers_equal_the_json(html):
    """The results table shows, for each metric, the mean over seeds computed from the JSON."""
    runs = load_runs(REPO_ROOT / "results", "cpu", "mnist")
    tables = soup(html / "book" / "results.html").select("table")
    rows = _rows(tables[0])   # the seeds' table comes first
    checked = 0
    for key in ("probe.content_to_identity", "probe.pose_to_identity", "probe.pose_to_position_r2",
                "swap.identity_accuracy", "rollout.identity_accuracy.500"):
        assert key in rows, f"{key} missing from the results table"
        mean = summarize([lookup(r["metrics"], key) for r in runs])["mean"]
        assert rows[key][0] == f"{mean:.3f}", (key, rows[key][0], mean)
        checked += 1
    assert checked == 5
    # the longer pose LSTM's table: the chapter's runs and the lstm20k runs of the same seeds
    longer = load_runs(REPO_ROOT / "results", "cpu", "mnist_lstm20k")
    rows = next(r for r in map(_rows, tables) if "lstm.final_pose_mse" in r)
    same_seeds = [r for r in runs if r["seed"] in {x["seed"] for x in longer}]
    for key in ("rollout.motion_of_oracle.500", "rollout.identity_accuracy.500"):
        assert rows[key][0] == f"{summarize([lookup(r['metrics'], key) for r in same_seeds])['mean']:.4f}"
        assert rows[key][1] == f"{summarize([lookup(r['metrics'], key) for r in longer])['mean']:.4f}"
    # the adversarial weight: columns the chapter's runs (β = 0.1), then β = 0.01 and β = 0
    rows = next(r for r in map(_rows, tables) if "train.final.discriminator_accuracy" in r)
    columns = [runs] + [load_runs(REPO_ROOT / "results", "cpu", f"mnist_{tag}") for tag in ("beta1e-2", "noadv")]
    for key in ("train.final.discriminator_accuracy", "probe.pose_to_identity", "rollout.motion_of_oracle.500"):
        assert rows[key] == [f"{summarize([lookup(r['metrics'], key) for r in column])['mean']:.3f}" for column in columns]
    # the same runs' pose codes (tools/mnist_remeasure.py): the codes' spread and the motion kept at step 500
    codes = json.loads((REPO_ROOT / "results" / "cpu" / "mnist_pose_codes.json").read_text())["runs"]
    entries = [[codes[run_name("mnist", r["seed"], r.get("tag"))] for r in column] for column in columns]
    rows = next(r for r in map(_rows, tables) if "pose codes' spread (each model's units)" in r)
    assert rows["pose codes' spread (each model's units)"] == [
        f"{summarize([e['true']['spread'] for e in column])['mean']:.3f}" for column in entries]
    assert rows["predicted codes' motion kept, step 500"] == [
        f"{summarize([e['motion_kept']['500'] for e in column])['mean']:.3f}" for column in entries]
    # the pose LSTM without its output tanh (lstmlinear) beside the chapter's LSTM on the same DrNet models
    linear = load_runs(REPO_ROOT / "results", "cpu", "mnist_lstmlinear")
    rows = next(r for r in map(_rows, tables) if "rollout motion kept, step 500" in r)
    same_seeds = [r for r in runs if r["seed"] in {x["seed"] for x in linear}]
    assert rows["rollout motion kept, step 500"] == [
        f"{summarize([r['metrics']['rollout.motion_of_oracle']['500'] for r in column])['mean']:.3f}"
        for column in (same_seeds, linear)]


def _rows(table) -> dict[str, list[str]]:
    """A rendered pandas table's rows: the index cell's text -> the data cells' texts."""
    return {tr.find("th").get_text(strip=True): [td.get_text(strip=True) for td in tr.find_all("td")]
            for tr in table.select("tbody tr") if tr.find("th")}


def test_glued_prose_numbers_equal_the_json(html):
    runs = load_runs(REPO_ROOT / "results", "cpu", "mnist")
    text = re.sub(r"\s+", " ", soup(html / "book" / "results.html").get_text(" "))
    assert f"over {len(runs)} seeds" in text
    mean_min = summarize([r["provenance"]["wall_s"] / 60 for r in runs])["mean"]
    assert f"took {mean_min:.1f} minutes on average" in text


def test_norb_page_numbers_equal_the_json(html):
    """The paper-vs-ours table shows mean ± std over seeds of each headline key, from the JSON."""
    runs = load_runs(REPO_ROOT / "results", "cpu", "norb")
    text = re.sub(r"\s+", " ", soup(html / "book" / "norb_results.html").get_text(" "))
    for variant in ("adv", "noadv"):
        for code in ("content", "pose"):
            s = summarize([lookup(r["metrics"], f"classification.{variant}.{code}") for r in runs])
            assert f"{s['mean']:.3f} ± {s['std']:.3f}" in text, (variant, code)
    assert "recalled" in text  # the paper's values never appear unlabelled
    # the grid's spread table: every cell's mean ± std over its seeds
    grid = load_grid(REPO_ROOT / "results", "cpu", "norb_grid")
    for _, cell in grid_cell_summary(grid, ["classification.pose"]).iterrows():
        mean, std = cell["classification.pose mean"], cell["classification.pose std"]
        assert (f"{mean:.2f} ± {std:.2f}" if std == std else f"{mean:.2f}") in text, dict(cell)


def test_kth_page_numbers_equal_the_json(html):
    """The KTH claims table shows mean ± std over seeds of each claim's key, from the JSON."""
    from drnet_lib.claims import CLAIMS

    runs = load_runs(REPO_ROOT / "results", "cpu", "kth")
    text = re.sub(r"\s+", " ", soup(html / "book" / "kth_results.html").get_text(" "))
    for claim in CLAIMS["kth"]:
        s = summarize([lookup(r["metrics"], claim.key) for r in runs])
        assert f"{s['mean']:.3f} ± {s['std']:.3f}" in text, claim.key
    assert f"over {len(runs)} seeds" in text
    # the summary at the top quotes the same seeds' prediction means
    short = re.sub(r"\s+", " ", soup(html / "book" / "kth_results.html").find(id="in-short").get_text(" "))
    drnet, copy_last = (summarize([r["metrics"][key] for r in runs])["mean"]
                        for key in ("prediction.psnr_mean", "prediction.copy_last_psnr_mean"))
    assert f"average {drnet:.1f} dB PSNR, the last observed frame {copy_last:.1f} dB" in short
    # and the pose-code measurement's in-place first step, mean over the chapter's models as trained
    # (kth_bnasis_seed*: the chapter's weights and BatchNorm statistics, measured by kth_remeasure)
    codes = json.loads((REPO_ROOT / "results" / "cpu" / "kth_pose_codes.json").read_text())["runs"]
    in_place = [e["in place"] for run, e in codes.items() if run.startswith("kth_bnasis_seed")]
    length, cosine = (sum(e[key][0] for e in in_place) / len(in_place) for key in ("length_ratio", "alignment"))
    tight = re.sub(r"\s+([).,:;])", r"\1", short)   # a glued number is its own element: no space before ")"
    assert f"move {length:.1f} times as far as the true ones at the first step, in no true direction (cosine {cosine:.2f})" in tight


def test_kth_diagnostics_beta0_comparison_equals_the_json(html):
    """The diagnostics page sets each seed's β = 0 model (kth_noadv_seed*, with a pose LSTM) beside the
    chapter's β = 10⁻⁴ model of the same seed: its prose quotes both rollouts' motion at the last step."""
    chapter = {r["seed"]: r for r in load_runs(REPO_ROOT / "results", "cpu", "kth")}
    noadv = load_runs(REPO_ROOT / "results", "cpu", "kth_noadv")
    assert noadv and all(r["config"]["train"]["adversarial_weight"] == 0 for r in noadv)
    text = re.sub(r"\s+", " ", soup(html / "book" / "kth_diagnostics.html").get_text(" "))
    last = lambda r: list(r["metrics"]["rollout.motion_of_oracle"].values())[-1]
    per_seed = "; ".join(f"seed {r['seed']}: {last(r):.2f} against {last(chapter[r['seed']]):.2f}" for r in noadv)
    assert per_seed in text
    means = [summarize([last(r) for r in runs])["mean"] for runs in (noadv, [chapter[r["seed"]] for r in noadv])]
    assert f"keep {means[0]:.2f} of the motion of the frames decoded from the true poses on average, against {means[1]:.2f}" in text


def test_datasets_page_lists_every_registered_file_with_its_hash(html):
    from drnet_lib.data import chairs, kth, mnist, norb, registry  # noqa: F401  (they register their files)

    text = soup(html / "book" / "datasets.html").get_text(" ")
    assert "withdrawn" in text
    for f in registry.REGISTRY.values():
        assert f.filename in text, f.key
        if f.pinned:
            assert f.pinned[1] in text, f.key


def test_report_shows_every_claim_with_its_json_value_and_verdict(html):
    from drnet_lib.claims import CLAIMS

    doc = soup(html / "book" / "report.html")
    # a cell's text as copied: the <wbr> break points in a measurement's name add no characters
    rows = [[td.get_text().strip() for td in tr.find_all("td")] for tr in doc.select("table tbody tr")]
    for experiment, claims in CLAIMS.items():
        runs = load_runs(REPO_ROOT / "results", "cpu", experiment)
        for claim in claims:
            s = summarize([lookup(r["metrics"], claim.key) for r in runs])
            row = next((r for r in rows if claim.key in r and claim.claim in r), None)
            assert row is not None, (experiment, claim.key)
            assert f"{s['mean']:.3f} ± {s['std']:.3f}" in " ".join(row)
            verdict = "supported" if claim.met(s["mean"]) else "not supported"
            meeting = sum(claim.met(lookup(r["metrics"], claim.key)) for r in runs)
            assert (verdict if meeting in (0, len(runs)) else f"{verdict} (seeds disagree)") in row
    text = doc.get_text(" ")
    assert "recalled" in text and "unverified" in text


def test_every_figure_a_book_page_draws_is_in_its_output(html):
    """A cell that makes a figure (``fig = ...``) must carry it as an image; a cell whose data is
    missing says so in words ("No ... recorded") instead. (ipykernel 7's inline backend once showed
    only a page's first figure and dropped the rest without a word.)"""
    import nbformat

    executed = sorted((html.parent / "jupyter_execute" / "book").glob("*.ipynb"))
    assert executed, "jupyter-book wrote no executed book pages"
    checked = 0
    for path in executed:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or not re.search(r"^\s*fig(, \w+)? = ", cell.source, re.M):
                continue
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            says_missing = any(o.get("text", "").startswith("No ") for o in cell.outputs)
            assert images or says_missing, (path.name, cell.source[:120])
            checked += 1
    assert checked >= 5


def test_performance_summary_states_each_cpus_ratio_to_the_authors_and_the_goal(html):
    """The summary at the top of the performance page quotes, for each CPU, the ratio of our
    iteration to the authors' that its results/perf file holds (our defaults), and its verdict."""
    import json

    section = soup(html / "book" / "performance.html").find(id="in-short")
    assert section is not None
    text = re.sub(r"\s+", " ", section.get_text(" "))
    rows = [json.loads(line) for path in sorted((REPO_ROOT / "results" / "perf").glob("bench_cpu*_authors.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]
    defaults = [r for r in rows if not r["ours_overrides"]]
    assert defaults, "no CPU timing of the authors' code beside ours"
    for r in defaults:
        verdict = "goal met" if r["ours_over_authors"] <= 0.7 else "goal not met"
        assert f"{r['ours_over_authors']:.2f}x on the CPU {r['host_cpu']} ({verdict})" in text, r["host_cpu"]


def test_book_pages_hide_their_code():
    """The results pages narrate; their code is there for who asks (hide-input: a toggle) or not
    shown at all (remove-input). A code cell without either prints its source into the page."""
    import nbformat

    for path in sorted((REPO_ROOT / "book").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                tags = set(cell.metadata.get("tags", []))
                assert tags & {"hide-input", "remove-input", "hide-cell", "remove-cell"}, \
                    (path.name, cell.get("id"), cell.source[:80])


def test_colab_cells_fetch_the_repository_the_book_is_configured_with():
    """A page opened on Colab from its launch button or badge has only itself: the chapter notebooks
    install drnet_lib from the repository, and the book's own pages (which read results/) clone it.
    Both must name the repository of _config.yml, the one the launch links point at."""
    import nbformat
    import yaml

    url = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["repository"]["url"]
    for folder, fetch in (("book", f"git clone -q --depth 1 {url} "), ("notebooks", f"git+{url}@")):
        for path in sorted((REPO_ROOT / folder).glob("*.ipynb")):
            colab = [c.source for c in nbformat.read(path, as_version=4).cells if "google.colab" in c.source]
            assert colab and fetch in colab[0], path.name
