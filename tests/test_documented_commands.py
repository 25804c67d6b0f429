"""Every command the docs show a reader still runs as written.

A renamed option, a removed make variable or a notebook parameter that moved would leave the
README, the book and the library's own error messages telling readers to type something that
fails. These tests collect the shell commands written there (`drnet`, `.venv/bin/drnet`,
`python -m drnet_lib.cli`, `torchrun -m drnet_lib.cli`, `make`, `papermill`, `tools/...`): in
fenced (``` or ~~~) and indented code blocks and inline code of the README, the book's pages and
the notebooks' markdown; in the strings of drnet_lib, tools/*.py and the book's code cells; in
the recording scripts. Each is checked against what it names: the
argument parser and configuration of ``drnet``, the Makefile, the notebook's parameters cell,
the tool's ``--help``. Nothing is run but the tools' ``--help``. Settings the prose names in backticks
(`train.lr_schedule`) must be settings of the configuration.

Where a command is shown whole (a line of a fenced code block), argparse must accept it and its
``--set`` settings must build a configuration. Where prose only names a piece of one
(`drnet train --record`), every option it names must exist, and the values it gives an option with
fixed choices must be among them. Placeholders the docs use for a value (K, X, N, TAG, DIR...)
and shell variables stand for any value. The recording scripts' ``drnet`` calls (tools/*.sh)
are checked the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import papermill
import pytest

from drnet_lib.cli import build_parser, data_fields, parse_set
from drnet_lib.config import PROFILES, get_config
from drnet_lib.reproduce import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]

# A command: its program as a whole word (drnet_lib/ in a folder listing is none), or a script of tools/
COMMAND = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:(?:drnet|torchrun|make|papermill)\s+\S|(?:\.venv/bin/)?(?:python )?tools/\S+\.(?:py|sh)\b)")
# Written in place of a value ("--seed K", "--record cuda<N>", "--size <size>", an f-string's {e}).
PLACEHOLDER = re.compile(r"^(K|X|N|DIR|TAG|PATH|PATH-TO-[A-Z-]+|/path/to/.*|.*<[^>]+>.*|\.\.\.|.*\$.*|.*\{[^}]*\}.*)$")


@dataclass(frozen=True)
class Mention:
    where: str      # file (and cell) it was read from
    text: str       # the command as written, comment and continuation lines resolved
    whole: bool     # shown as a full command (a code-block line), not a fragment in prose
    sentence: bool = False   # inside a sentence (a message, a docstring): words after it are prose

    def __str__(self):
        return f"{self.where}: {self.text}"


def _markdown_sources() -> dict[str, str]:
    """The docs a reader reads: README, the book's markdown pages, and the markdown cells of the
    book's and the chapters' notebooks."""
    out = {"README.md": (ROOT / "README.md").read_text(), "results/perf/README.md":
           (ROOT / "results/perf/README.md").read_text()}
    for path in sorted((ROOT / "book").glob("*.md")):
        out[str(path.relative_to(ROOT))] = path.read_text()
    for path in sorted([*(ROOT / "book").glob("*.ipynb"), *(ROOT / "notebooks").glob("*.ipynb")]):
        cells = json.loads(path.read_text())["cells"]
        out[str(path.relative_to(ROOT))] = "\n\n".join("".join(c["source"]) for c in cells
                                                         if c["cell_type"] == "markdown")
    return out


def _starts_a_command(text: str) -> bool:
    """A program and at least one word for it (a bare `torchrun` in prose names the program)."""
    return len(text.split()) >= 2 and COMMAND.match(text) is not None


def _as_typed(line: str) -> str:
    """A command line as the reader would type it: no shell prompt, ``.venv/bin/drnet`` and
    ``python -m drnet_lib.cli`` as ``drnet``."""
    line = re.sub(r"^\$\s+", "", line.strip())
    line = re.sub(r"^(?:\.venv/bin/)?drnet\b", "drnet", line)
    return re.sub(r"^(?:\.venv/bin/)?python -m drnet_lib\.cli\b", "drnet", line)


FENCE = re.compile(r"^[ \t]*(```+|~~~+)[^\n]*\n(.*?)^[ \t]*\1", re.M | re.S)


def _code_block_commands(where: str, text: str):
    """Lines of fenced code blocks (``` or ~~~, indented in a list too) and of 4-space indented
    blocks that start a command (``\\`` continues it onto the next line)."""
    blocks = [block for _, block in FENCE.findall(text)]
    blocks += ["\n".join(re.findall(r"^(?: {4}|\t)(\S.*)$", FENCE.sub("", text), re.M))]
    for block in blocks:
        lines = iter(block.splitlines())
        for line in lines:
            line = line.strip()
            while line.endswith("\\"):
                line = line[:-1] + " " + next(lines, "").strip()
            line = _as_typed(line.split(" # ")[0])
            if _starts_a_command(line):
                yield Mention(where, line, whole=not line.endswith("..."))


def _inline_commands(where: str, text: str):
    """Commands inside single backticks in prose (code blocks taken out first), also where the
    prose wraps them over two lines."""
    prose = FENCE.sub("", text)
    for snippet in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose):
        snippet = _as_typed(" ".join(snippet.split()).lstrip("!"))
        if _starts_a_command(snippet):
            yield Mention(where, snippet, whole=False)


def _library_messages():
    """``drnet ...`` commands that the library and the tools write in messages and docstrings, and
    those the book's code cells print for the reader."""
    texts = {str(p.relative_to(ROOT)): p.read_text()
             for p in sorted([*(ROOT / "drnet_lib").rglob("*.py"), *(ROOT / "tools").glob("*.py")])}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts[str(path.relative_to(ROOT))] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for where, text in texts.items():
        for match in re.finditer(r"drnet (?:train|reproduce|bench|data prepare)\b[^\"'`)\n,;]*", text):
            yield Mention(where, match.group(0).strip(), whole=False, sentence=True)


def _script_commands():
    """The ``drnet`` calls of the recording scripts (tools/*.sh), continuation lines joined; their
    ``record FILE ARGS`` helper runs ``drnet bench ARGS``. Shell variables stand for any value."""
    for path in sorted((ROOT / "tools").glob("*.sh")):
        text = re.sub(r"\\\n\s*", " ", path.read_text())
        where = str(path.relative_to(ROOT))
        for match in re.finditer(r"(?<![\w/-])drnet (?:train|reproduce|bench|data prepare)\b[^|>;&\n]*", text):
            yield Mention(where, match.group(0).strip(), whole=False)
        for match in re.finditer(r"^\s*record \S+ ([^|>;&\n]*)", text, re.M):
            yield Mention(where, f"drnet bench {match.group(1).strip()}", whole=False)


@lru_cache(maxsize=None)
def documented_commands() -> tuple[Mention, ...]:
    found = []
    for where, text in _markdown_sources().items():
        found += [*_code_block_commands(where, text), *_inline_commands(where, text)]
    found += [*_library_messages(), *_script_commands()]
    return tuple(dict.fromkeys(found))


def _of(program: str) -> list[Mention]:
    """The mentions of ``program`` ("tools": a script of tools/, after any VAR=value or python)."""
    if program == "tools":   # after any VAR=value and python
        return [m for m in documented_commands()
                if re.match(r"^(?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?(?:python )?tools/", m.text)]
    return [m for m in documented_commands() if m.text.split()[0] == program]


# -- drnet -------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices if actions else {}


def _drnet_argv(m: Mention) -> list[str]:
    words = shlex.split(m.text.replace("[", " ").replace("]", " "))
    if words[0] == "torchrun":   # torchrun's own options, then -m drnet_lib.cli and drnet's words
        assert "drnet_lib.cli" in words, f"{m}: torchrun does not run drnet_lib.cli"
        return words[words.index("drnet_lib.cli") + 1:]
    return words[1:]


def _alternatives(value: str, action: argparse.Action | None = None) -> list:
    """``a|b`` as its values, converted by the option's type (``--image-size 64|128``)."""
    convert = (action.type if action is not None and callable(action.type) else str)
    return [convert(v) for v in value.split("|")]


# Values argparse leaves to the configuration to check (drnet would refuse others when run).
_PROFILES = {profile for profiles in PROFILES.values() for profile in profiles}
KNOWN_VALUES = {("train", "experiment"): set(PROFILES), ("bench", "experiments"): set(PROFILES),
                ("reproduce", "experiments"): set(NOTEBOOKS), ("prepare", "dataset"): {*PROFILES, "chairs"},
                **{(command, dest): _PROFILES for command in ("train", "reproduce", "bench")
                   for dest in ("profile", "profiles")}}


def _allowed(parser: argparse.ArgumentParser, action: argparse.Action):
    """The values ``action`` takes, where they are fixed: argparse's choices, or KNOWN_VALUES."""
    return action.choices or KNOWN_VALUES.get((parser.prog.split()[-1], action.dest))


def _check_drnet_fragment(m: Mention, argv: list[str]) -> None:
    """The subcommand exists; every option is that subcommand's; values of options with fixed
    choices are among them (each of ``a|b``); ``--set`` keys are settings of the configuration."""
    parser = build_parser()
    while argv and argv[0] in _subparsers(parser):
        parser = _subparsers(parser)[argv.pop(0)]
    options = parser._option_string_actions
    positionals = [a for a in parser._actions if not a.option_strings and _allowed(parser, a)]
    action, given = None, []
    for word in argv + ["--"]:
        if word.startswith("--") and word != "--":
            for name in word.split("=")[0].split("|"):   # [--resume|--no-resume]
                assert name in options, f"{m}: {parser.prog} has no option {name} (it has {sorted(options)})"
                action = options[name]
            continue
        if word == "--" or word.startswith("-"):
            action = None
            continue
        if action is None and m.sentence:   # a bare word after the command: the sentence goes on
            break
        if action is not None and action.dest == "set":   # the key counts even where the value is a variable
            given.append(word)
            continue
        if PLACEHOLDER.match(word):
            continue
        if action is None and positionals and not m.sentence:   # the dataset of `drnet data prepare`
            allowed = _allowed(parser, positionals[0])
            for value in _alternatives(word):
                assert value in allowed, f"{m}: {value!r} is not one of {sorted(allowed)}"
        elif action is not None and _allowed(parser, action):
            allowed = _allowed(parser, action)
            for value in _alternatives(word, action):
                assert value in allowed, (f"{m}: {action.option_strings[0]} does not take {value!r} "
                                          f"(it takes {sorted(allowed)})")
    for item in given:
        key = item.partition("=")[0]
        assert _is_setting(key), f"{m}: --set {key} is not a setting (config.py's ExperimentConfig)"


@lru_cache(maxsize=None)
def _setting_names() -> frozenset[str]:
    cfg = get_config("mnist", "smoke", 0)
    return frozenset(f"{section}.{field.name}" for section in ("model", "data", "train", "lstm", "eval")
                     for field in dataclasses.fields(getattr(cfg, section)))


def _is_setting(key: str) -> bool:
    return key in _setting_names()


def _first_alternative(word: str) -> str:
    return word.split("|")[0] if "|" in word and not word.startswith("-") else word


def _placeholder_value(word: str) -> str:
    """A value for a placeholder where argparse needs one (a number where a number is written)."""
    return {"K": "0", "X": "0.001", "N": "1"}.get(word, "value")


def _check_drnet_whole(m: Mention, argv: list[str]) -> None:
    """argparse accepts the command; a train command's settings build its configuration."""
    placeholders = any(PLACEHOLDER.match(w) for w in argv)
    argv = [_placeholder_value(w) if PLACEHOLDER.match(w) else _first_alternative(w) for w in argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{m}: drnet's parser refuses it (see the usage message above)")
    if args.command == "train" and not placeholders:   # a placeholder's stand-in is no real setting
        overrides = parse_set(args.set)
        get_config(args.experiment, args.profile, args.seed, overrides, **data_fields(args, overrides))


def test_the_docs_show_drnet_commands():
    """The collection itself works: the README's and the book's commands are found."""
    texts = {m.text for m in _of("drnet")}
    assert "drnet reproduce --profile cpu --experiments mnist --seeds 0 1 2 --force" in texts
    assert any(m.whole and m.where == "book/reproduce.md" and "--grid" in m.text for m in _of("drnet"))
    assert any(m.where.startswith("drnet_lib/") for m in _of("drnet"))
    assert _of("torchrun") and _of("make") and _of("papermill") and _of("tools")


@pytest.mark.parametrize("mention", [*_of("drnet"), *_of("torchrun")], ids=str)
def test_drnet_commands_in_the_docs_parse(mention):
    argv = _drnet_argv(mention)
    _check_drnet_fragment(mention, list(argv))
    if mention.whole:
        _check_drnet_whole(mention, argv)


def test_the_fragment_check_catches_a_renamed_option_and_a_bad_choice():
    bad = [Mention("x", "drnet train --experiments mnist", False),
           Mention("x", "drnet data prepare chess --source embedded", False),
           Mention("x", "drnet bench --profiles cpu gpu", False),
           Mention("x", "drnet reproduce --experiments chairs", False),
           Mention("x", "drnet train --set train.iteration=5", False)]
    for m in bad:
        with pytest.raises(AssertionError, match=re.escape(m.text)):
            _check_drnet_fragment(m, _drnet_argv(m))


# -- settings named in prose ----------------------------------------------------------------------------
FILE_SUFFIXES = {"pt", "json", "jsonl", "ipynb", "npz", "txt", "py", "md", "sh", "yml", "csv", "png"}   # `lstm.pt`: a file


def _settings_named_in_prose() -> list[tuple[str, str]]:
    """``(file, section.name)`` for every dotted setting the docs put in backticks (glue keys,
    module paths like drnet_lib.data.norb and file names left out)."""
    found = []
    for where, text in _markdown_sources().items():
        for snippet in re.findall(r"(?<!\{glue:text\})`([^`\n]*)`", text):
            for key in re.findall(r"(?<![\w./])((?:model|data|train|lstm|eval)\.[a-z_][a-z_0-9]*)(?![\w.(/])", snippet):
                if key.split(".")[1] not in FILE_SUFFIXES:
                    found.append((where, key))
    return found


def test_every_setting_the_docs_name_is_a_setting():
    named = _settings_named_in_prose()
    assert len(named) > 20, "the docs name settings in backticks; the search must find them"
    unknown = sorted({f"{where}: {key}" for where, key in named if not _is_setting(key)})
    assert not unknown, f"settings the docs name that config.py does not have: {unknown}"


# -- make ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _makefile() -> tuple[frozenset[str], str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([a-z][\w-]*):", text, re.M)), text


@pytest.mark.parametrize("mention", _of("make"), ids=str)
def test_make_commands_in_the_docs_name_targets_and_variables_the_makefile_has(mention):
    targets, text = _makefile()
    for word in shlex.split(mention.text)[1:]:
        if "=" in word:
            variable = word.split("=")[0]
            assert re.search(rf"^{variable} \??:?=", text, re.M), f"{mention}: the Makefile has no {variable}"
        elif not word.startswith("-"):
            assert word in targets, f"{mention}: the Makefile has no target {word} (it has {sorted(targets)})"


# -- papermill -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mention", _of("papermill"), ids=str)
def test_papermill_commands_in_the_docs_name_notebooks_and_their_parameters(mention):
    words = shlex.split(mention.text)[1:]
    notebooks = [w for w in words if w.endswith(".ipynb") and w != "out.ipynb"]
    assert notebooks, f"{mention}: names no notebook"
    path = ROOT / notebooks[0]
    assert path.is_file(), f"{mention}: {notebooks[0]} does not exist"
    parameters = papermill.inspect_notebook(str(path))
    for flag, name in zip(words, words[1:]):
        if flag == "-p":
            assert name in parameters, f"{mention}: {notebooks[0]} has no parameter {name} ({sorted(parameters)})"


# -- tools/ --------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _tool_help(script: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, f"{script} --help failed:\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("mention", _of("tools"), ids=str)
def test_tool_commands_in_the_docs_name_tools_options_and_variables_they_have(mention):
    words = mention.text.replace("[", " ").replace("]", " ").split()   # [--device cuda]: optional
    environment = [w.split("=")[0] for w in words if re.match(r"^[A-Z_]+=", w)]
    script = next(w for w in words if w.startswith("tools/"))
    path = ROOT / script
    assert path.is_file(), f"{mention}: {script} does not exist"
    for variable in environment:   # e.g. CPU_TAG=... tools/record_cpu_bench.sh
        assert variable in path.read_text(), f"{mention}: {script} does not read {variable}"
    if path.suffix != ".py":
        return
    usage = _tool_help(script)
    rest = words[words.index(script) + 1:]
    for option, value in zip(rest, rest[1:] + [""]):
        if option.startswith("--"):
            assert option in usage, f"{mention}: {script} has no option {option}"
            choices = re.search(rf"{option} \{{([^}}]+)\}}", usage)
            if choices and value and not value.startswith("-") and not PLACEHOLDER.match(value):
                assert value in choices.group(1).split(","), f"{mention}: {option} does not take {value!r}"


# -- commands the library builds for its advice ------------------------------------------------------
def _built_commands() -> list[Mention]:
    """The ``drnet data prepare`` lines that error messages build (data.advice, kth_layout) for
    stand-in and real files of every dataset, at every frame size and with --skip-corrupt, under
    data roots with a space in their names (Colab's "My Drive")."""
    from drnet_lib.data.advice import STANDIN_SIZES, prepare_command, standin_fix
    from drnet_lib.data.kth_layout import prepare_kth_command

    built = [prepare_command(dataset, "/data root", "--source real") for dataset in PROFILES]
    for size in STANDIN_SIZES:
        built += [re.search(r"`(.*)`", standin_fix(f"/my data/standin/{size}/{dataset}/file", dataset)).group(1)
                  for dataset in PROFILES]
        built.append(prepare_kth_command(f"/my data/standin/{size}/kth/boxing/person01_boxing_d1_uncomp.avi", 32))
    built += [prepare_kth_command("/my data/kth/boxing/person01_boxing_d1_uncomp.avi", image_size, *extra)
              for image_size in (None, 64, 128) for extra in ((), ("--skip-corrupt",))]
    return [Mention("built by drnet_lib.data", text, whole=True) for text in built]


@pytest.mark.parametrize("mention", _built_commands(), ids=str)
def test_commands_the_library_builds_for_its_advice_parse(mention):
    argv = _drnet_argv(mention)
    _check_drnet_fragment(mention, list(argv))
    _check_drnet_whole(mention, argv)
