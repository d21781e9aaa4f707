"""Tests for the tangler (book/a1_tangler.ipynb -> asynciodepth/tangle.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asynciodepth.tangle import (
    HEADER_FIRST_LINE,
    TangleError,
    differences,
    main,
    split_directives,
    tangle,
    write_package,
)

REPO = Path(__file__).resolve().parents[1]


def write_notebook(path: Path, *cells: str | tuple[str, str]) -> None:
    """Write a minimal notebook; a cell is code, or a (cell_type, source) pair."""
    json_cells = []
    for cell in cells:
        cell_type, source = cell if isinstance(cell, tuple) else ("code", cell)
        json_cells.append({"cell_type": cell_type, "source": source, "metadata": {}})
    path.write_text(
        json.dumps({"cells": json_cells, "nbformat": 4, "nbformat_minor": 5})
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "src" / "asynciodepth").mkdir(parents=True)
    return tmp_path


def test_split_directives_takes_only_leading_lines():
    directives, code = split_directives(
        "#| default_exp demo\n#| export\nx = 1\n#| export\n"
    )
    assert directives == {"default_exp": "demo", "export": None}
    assert code == "x = 1\n#| export"


def test_exported_cells_in_order_with_markers(repo: Path):
    write_notebook(
        repo / "book" / "01_a.ipynb",
        '#| default_exp demo\n#| export\n"""Doc."""',
        ("markdown", "#| export\nnot code"),
        "print('experiment')",
        ["#| export\n", "def f():\n", "    return 1\n"],
    )
    generated = tangle(repo)
    path = repo / "src" / "asynciodepth" / "demo.py"
    assert list(generated) == [path]
    assert generated[path] == (
        f"{HEADER_FIRST_LINE}book/01_a.ipynb.\n"
        "# DO NOT EDIT BY HAND: edit the notebook, then run `make tangle`.\n"
        "\n\n# %% book/01_a.ipynb cell 0\n"
        '"""Doc."""\n'
        "\n\n# %% book/01_a.ipynb cell 3\n"
        "def f():\n    return 1\n"
    )


def test_several_notebooks_feed_one_module_in_file_order(repo: Path):
    write_notebook(repo / "book" / "02_b.ipynb", "#| export __init__\nB = 2")
    write_notebook(repo / "book" / "01_a.ipynb", "#| export __init__\nA = 1")
    write_notebook(repo / "book" / "03_c.ipynb", "#| export sub.mod\nC = 3")
    generated = tangle(repo)
    init = generated[repo / "src" / "asynciodepth" / "__init__.py"]
    assert init.index("A = 1") < init.index("B = 2")
    assert "from book/01_a.ipynb, book/02_b.ipynb." in init
    assert repo / "src" / "asynciodepth" / "sub" / "mod.py" in generated


def test_export_without_module_is_an_error(repo: Path):
    write_notebook(repo / "book" / "01_a.ipynb", "#| export\nx = 1")
    with pytest.raises(
        TangleError, match=r"book/01_a.ipynb cell 0: '#\| export' names no"
    ):
        tangle(repo)
    assert main(["--root", str(repo)]) == 2


def test_check_passes_after_tangle_and_fails_on_hand_edit(repo: Path, capsys):
    write_notebook(
        repo / "book" / "01_a.ipynb", "#| default_exp demo\n#| export\nX = 42"
    )
    assert differences(repo) == [
        "src/asynciodepth/demo.py: missing; run `make tangle` to generate it"
    ]
    assert write_package(repo) == ["tangled src/asynciodepth/demo.py"]
    assert differences(repo) == []
    assert main(["--check", "--root", str(repo)]) == 0

    module = repo / "src" / "asynciodepth" / "demo.py"
    module.write_text(module.read_text().replace("X = 42", "X = 41"))
    [problem] = differences(repo)
    assert problem.startswith("src/asynciodepth/demo.py: differs from its notebooks")
    assert "-X = 41\n+X = 42" in problem
    assert main(["--check", "--root", str(repo)]) == 1
    assert "tangle check failed" in capsys.readouterr().err


def test_module_without_notebook_fails_check_and_is_deleted_by_tangle(repo: Path):
    write_notebook(
        repo / "book" / "01_a.ipynb", "#| default_exp demo\n#| export\nX = 1"
    )
    write_package(repo)
    (repo / "book" / "01_a.ipynb").unlink()
    assert differences(repo) == [
        "src/asynciodepth/demo.py: no notebook generates this module; "
        "export its code from a notebook, or delete it"
    ]
    assert write_package(repo) == ["deleted src/asynciodepth/demo.py"]
    assert differences(repo) == []


def test_hand_written_module_fails_check_and_is_kept(repo: Path):
    (repo / "src" / "asynciodepth" / "handmade.py").write_text("X = 1\n")
    assert len(differences(repo)) == 1
    assert write_package(repo) == []
    assert (repo / "src" / "asynciodepth" / "handmade.py").exists()


def test_the_repository_is_its_notebooks_output():
    assert differences(REPO) == []


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_build")
    )
    shutil.copytree(
        REPO / "src",
        tmp_path / "src",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    return tmp_path


def test_hand_editing_a_real_module_makes_the_command_line_check_fail(repo_copy: Path):
    module = repo_copy / "src" / "asynciodepth" / "hello.py"
    module.write_text(
        module.read_text().replace("MEAN_PAUSE = 0.08", "MEAN_PAUSE = 0.01")
    )
    script = repo_copy / "src" / "asynciodepth" / "tangle.py"
    check = subprocess.run(
        [sys.executable, str(script), "--check"],
        cwd=repo_copy,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    assert "\n-MEAN_PAUSE = 0.01" in check.stderr
    assert "\n+MEAN_PAUSE = 0.08" in check.stderr
    fix = subprocess.run(
        [sys.executable, str(script)], cwd=repo_copy, capture_output=True, text=True
    )
    assert fix.stdout.strip() == "tangled src/asynciodepth/hello.py"
    again = subprocess.run(
        [sys.executable, str(script), "--check"],
        cwd=repo_copy,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr


# Classes that span cells: @continues, and redefinition in later cells.

GREETER = (
    '#| default_exp demo\n#| export\n"""Doc."""',
    "#| export\nclass Greeter:\n"
    '    """Says hello."""\n\n'
    "    __slots__ = ('name',)\n\n"
    "    def __init__(self, name):\n        self.name = name\n\n"
    "    def greet(self):\n        return 'hi ' + self.name\n\n"
    "    def other(self):\n        return 1",
)


def module_of(repo: Path, *cells: str) -> tuple[str, dict]:
    """Tangle one notebook of `cells`; return the module's text and its namespace."""
    write_notebook(repo / "book" / "01_a.ipynb", *cells)
    text = tangle(repo)[repo / "src" / "asynciodepth" / "demo.py"]
    namespace: dict = {}
    exec(compile(text, "demo.py", "exec"), namespace)
    return text, namespace


def test_a_continued_class_is_one_class_statement_in_the_module(repo: Path):
    text, namespace = module_of(
        repo,
        *GREETER,
        "print('an experiment')",
        "#| export\n@continues(Greeter)\nclass Greeter:\n"
        "    # shouting\n    def shout(self):\n        return self.greet().upper()",
    )
    assert text.count("class Greeter") == 1
    assert "@continues" not in text
    assert "    # %% book/01_a.ipynb cell 3\n    # shouting\n    def shout" in text
    assert namespace["Greeter"]("ann").shout() == "HI ANN"
    assert namespace["Greeter"].__slots__ == ("name",)


def test_a_redefined_method_is_exported_once_in_its_first_place(repo: Path):
    text, namespace = module_of(
        repo,
        *GREETER,
        "#| export\n@continues(Greeter)\nclass Greeter:\n"
        "    def greet(self):\n        return 'hello ' + self.name",
    )
    assert text.count("def greet") == 1
    assert text.index("def __init__") < text.index("def greet") < text.index("def other")
    # The method after the replacement is marked as its own cell's again.
    assert "# %% book/01_a.ipynb cell 2\n    def greet" in text
    assert "# %% book/01_a.ipynb cell 1\n    def other" in text
    assert namespace["Greeter"]("bo").greet() == "hello bo"


def test_a_property_and_its_setter_in_one_continuation_both_stay(repo: Path):
    text, namespace = module_of(
        repo,
        *GREETER,
        "#| export\n@continues(Greeter)\nclass Greeter:\n"
        "    @property\n    def size(self):\n        return len(self.name)\n\n"
        "    @size.setter\n    def size(self, value):\n        self.name = 'x' * value",
    )
    assert text.count("def size") == 2
    greeter = namespace["Greeter"]("abc")
    greeter.size = 5
    assert greeter.size == 5


def test_a_redefined_function_is_exported_once_in_its_first_place(repo: Path):
    text, namespace = module_of(
        repo,
        '#| default_exp demo\n#| export\n"""Doc."""',
        "#| export\ndef helper():\n    return 1\n\n\nAFTER = 'after'",
        "#| export\ndef helper():\n    return 2",
    )
    assert text.count("def helper") == 1
    assert text.index("def helper") < text.index("AFTER")
    assert namespace["helper"]() == 2


@pytest.mark.parametrize(
    "cell, message",
    [
        ("@continues(Nobody)\nclass Nobody:\n    x = 1", "no earlier exported cell"),
        ("@continues(Greeter)\nclass Greeter(object):\n    x = 1", "over `class"),
        ("@continues(Greeter)\nclass Other:\n    x = 1", r"over class Other"),
        ('@continues(Greeter)\nclass Greeter:\n    """Doc."""', "docstring"),
    ],
)
def test_a_malformed_continuation_is_an_error(repo: Path, cell: str, message: str):
    write_notebook(repo / "book" / "01_a.ipynb", *GREETER, "#| export\n" + cell)
    with pytest.raises(TangleError, match=message):
        tangle(repo)


def test_a_continuation_before_its_class_is_an_error(repo: Path):
    write_notebook(
        repo / "book" / "01_a.ipynb",
        "#| default_exp demo\n#| export\n@continues(Greeter)\nclass Greeter:\n    x = 1",
        GREETER[1],
    )
    with pytest.raises(TangleError, match="no earlier exported cell"):
        tangle(repo)


def test_continuing_an_exported_class_in_a_cell_not_exported_is_refused(repo: Path):
    write_notebook(
        repo / "book" / "01_a.ipynb",
        *GREETER,
        "@continues(Greeter)\nclass Greeter:\n    x = 1",
    )
    with pytest.raises(TangleError, match="cell 2: @continues.Greeter. in a cell"):
        tangle(repo)


def test_a_notebook_only_class_may_be_continued_anywhere(repo: Path):
    write_notebook(
        repo / "book" / "01_a.ipynb",
        *GREETER,
        "class Toy:\n    pass",
        "@continues(Toy)\nclass Toy:\n    x = 1",
    )
    assert "Toy" not in tangle(repo)[repo / "src" / "asynciodepth" / "demo.py"]


def test_a_module_without_continuations_keeps_its_cells_verbatim(repo: Path):
    cell = "import os\n\n# a comment\n\n\nX = 1  # trailing\n\n\ndef f():\n    pass\n# end"
    text, _ = module_of(repo, "#| default_exp demo\n#| export\n" + cell)
    assert text.endswith("# %% book/01_a.ipynb cell 0\n" + cell + "\n")


def test_continues_in_the_notebook_extends_the_class_itself():
    from asynciodepth.tangle import continues

    class Base:
        def hello(self):
            return "base"

    class Child(Base):
        __slots__ = ()

    early = Child()

    @continues(Child)
    class Child:  # noqa: F811
        def hello(self):
            return "child of " + super().hello()

        @classmethod
        def make(cls):
            return cls()

        @property
        def kind(self):
            return type(self).__name__

    assert Child is type(early)
    assert early.hello() == "child of base"
    assert Child.make().kind == "Child"
    assert Child.__doc__ is None and Child.__qualname__.endswith("Child")


def test_continues_refuses_slots_and_another_name():
    from asynciodepth.tangle import continues

    class Thing:
        pass

    with pytest.raises(TypeError, match="__slots__"):

        @continues(Thing)
        class Thing:  # noqa: F811
            __slots__ = ("x",)

    with pytest.raises(TypeError, match="over class Other"):

        @continues(Thing)
        class Other:
            pass
