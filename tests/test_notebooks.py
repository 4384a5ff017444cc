"""Every notebook runs top to bottom in a fresh kernel, offline, and says
what it computed.

The notebooks' first cell installs jaxsoft only when it is not importable; here
it is, so nothing is downloaded. `02` runs with its parameters cell overridden
(the way papermill injects parameters) to the embedded `digits` dataset.

Each notebook is executed once per test session (the module-scoped
``executed`` fixture); the tests of its numbers read that execution's printed
outputs, check them against the notebook's own text and, where cheap, against
values computed here independently (NumPy, scikit-learn). The cells stay free
of asserts.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from jaxsoft.compile_cache import DEFAULT_MAX_BYTES

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Extra source run right after a notebook's "parameters" cell.
PARAMETER_OVERRIDES: dict[str, str] = {
    "02_train_mnist.ipynb": 'DATASET = "digits"\nEPOCHS = 3\n',
}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def inject_parameters(notebook, source: str) -> None:
    """Inserts ``source`` after the cell tagged "parameters" (papermill's rule)."""
    for index, cell in enumerate(notebook.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            injected = nbformat.v4.new_code_cell(source)
            injected.metadata["tags"] = ["injected-parameters"]
            notebook.cells.insert(index + 1, injected)
            return
    raise AssertionError("the notebook has no cell tagged 'parameters'")


def test_there_are_notebooks():
    assert [p.name for p in notebook_paths()][:1] == ["01_softmax_regression.ipynb"]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name} has outputs; clear them before committing"
            )


# A code cell longer than this is split (the issue found cells of 45 lines).
MAX_CODE_CELL_LINES = 35


def code_sources(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_cells_teach(path):
    """Short cells without asserts; a Colab badge, a runtime note, the devices."""
    cells = json.loads(path.read_text())["cells"]
    first = "".join(cells[0]["source"])
    assert (
        f"colab.research.google.com/github/jaxsoft/jaxsoft/blob/main/notebooks/{path.name}"
        in first
    )
    assert "**Runtime.**" in first and "GPU" in first and "TPU" in first
    sources = code_sources(path)
    assert any("jax.devices()" in source for source in sources)
    for source in sources:
        assert not re.search(r"^\s*assert\b", source, re.MULTILINE), (
            f"{path.name}: checks belong in tests/test_notebooks.py, not in "
            f"a cell:\n{source}"
        )
        lines = len(source.splitlines())
        assert lines <= MAX_CODE_CELL_LINES, (
            f"{path.name}: a code cell of {lines} lines (at most "
            f"{MAX_CODE_CELL_LINES}); split it:\n{source}"
        )
        if "[tensorflow]" in source:  # never a second TensorFlow beside Colab's
            assert 'find_spec("tensorflow")' in source, source


def execute(path: Path, workdir: Path):
    notebook = nbformat.read(path, as_version=4)
    if path.name in PARAMETER_OVERRIDES:
        inject_parameters(notebook, PARAMETER_OVERRIDES[path.name])
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    return notebook


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """``executed(path)``: the notebook run once (later calls reuse the run)."""
    runs: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as patch:
        # The kernel inherits this environment; datasets are prepared here.
        tfds_dir = os.environ.get("TFDS_DATA_DIR")
        patch.setenv("TFDS_DATA_DIR", tfds_dir or str(tmp_path_factory.mktemp("tfds")))

        def run(path: Path):
            if path.name not in runs:
                if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
                    # A cache folder per notebook, bounded as a notebook's
                    # `js.enable_compilation_cache()` bounds it, so that the
                    # kernel, before and after that call, and the commands it
                    # starts all keep it alike (JAX's bounded cache cannot
                    # share a folder with an unbounded one).
                    suite = os.environ["JAXSOFT_TEST_SUITE_CACHE"]
                    folder = os.path.join(suite, "notebooks", path.stem)
                    patch.setenv("JAX_COMPILATION_CACHE_DIR", folder)
                    patch.setenv(
                        "JAX_COMPILATION_CACHE_MAX_SIZE", str(DEFAULT_MAX_BYTES)
                    )
                try:
                    runs[path.name] = execute(path, tmp_path_factory.mktemp(path.stem))
                except Exception as error:
                    runs[path.name] = error
                    raise
            result = runs[path.name]
            if isinstance(result, Exception):
                pytest.fail(f"{path.name} did not run: {type(result).__name__}")
            return result

        yield run


@pytest.mark.slow
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, executed):
    notebook = executed(path)
    streams = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "stream"
    ]
    assert streams, "the notebook printed nothing"
    warned = [s.text for s in streams if s.name == "stderr" and "Warning" in s.text]
    assert not warned, f"{path.name} shows warnings: {warned}"


# --- the numbers each notebook states -------------------------------------


def printed(notebook, marker: str) -> str:
    """What the one code cell whose source contains ``marker`` printed."""
    cells = [c for c in notebook.cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{len(cells)} code cells contain {marker!r}"
    return "".join(o.text for o in cells[0].outputs if o.get("output_type") == "stream")


def prose(notebook) -> str:
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def found(pattern: str, text: str, group: int = 1) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return match.group(group)


def test_lecture_notebook_numbers(executed):
    nb = executed(NOTEBOOKS / "01_softmax_regression.ipynb")
    text = prose(nb)
    # The slide's worked example: -log(0.78) in nats and in base 10.
    losses = printed(nb, "loss_base10 =")
    nats = float(found(r"ln\(y_hat\)\)\s+= ([\d.]+) nats", losses))
    base10 = float(found(r"log10\(y_hat\)\) = ([\d.]+)", losses))
    assert (
        nats
        == round(-math.log(0.78), 3)
        == float(found(r"\*\*([\d.]+) nats\*\*", text))
    )
    assert base10 == round(-math.log10(0.78), 3)
    assert (
        float(found(r"-\\log\(0\.78\) = ([\d.]+)\$: that is the base-10", text))
        == base10
    )
    # From the slide's logits, unrounded (NumPy float64 here).
    o = np.array([3.2, 1.3, 0.2, 0.8])
    p = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
    assert (
        found(r"Dog's probability is ([\d.]+) before rounding", text) == f"{p[0]:.3f}"
    )
    stated = float(found(r"-\\ln 0\.775 = ([\d.]+)\$ nats", text))
    ce = float(found(r"label 0\s+: ([\d.]+)", printed(nb, "ce_lib =")))
    assert stated == round(-math.log(p[0]), 3) == round(ce, 3)
    rounded = [
        float(v)
        for v in found(r"rounded to 2 digits: \[(.*)\]", printed(nb, "p_dog =")).split(
            ","
        )
    ]
    assert rounded == [round(v, 2) for v in p]
    slide = [
        float(v)
        for v in found(r"the slide's probabilities, \(([\d., ]+)\)", text).split(",")
    ]
    assert slide == rounded
    assert found(r"Rounded, they sum to ([\d.]+)", text) == f"{sum(rounded):.2f}"
    # Where exp overflows, per float format.
    for dtype, pattern in [
        (np.float32, r"infinite for \$o > ([\d.]+)\$"),
        (np.float16, r"overflows for \$o > ([\d.]+)\$"),
    ]:
        assert float(found(pattern, text)) == round(math.log(np.finfo(dtype).max), 1)
    limits = printed(nb, "def largest_logit(dtype):\n    return float(")
    assert float(
        found(r"float16\s+exp\(o\) is finite for o up to\s+([\d.]+)", limits)
    ) == round(math.log(np.finfo(np.float16).max), 2)
    # Solution 9.1: what each learning rate did, as its text says.
    sweep = {
        float(lr): (float(final), [float(v) for v in last.split()])
        for lr, final, last in re.findall(
            r"lr\s+([\d.]+): final loss ([\d.]+), the last four \[([\d. ]+)\]",
            printed(nb, "# @title 9.1"),
        )
    }
    final = {lr: value for lr, (value, _) in sweep.items()}
    assert sorted(final) == [0.01, 0.1, 1.0, 10.0]
    assert final[0.01] > min(final.values()) + 0.05  # still far from its minimum
    assert abs(final[0.1] - final[1.0]) < 0.01  # close to each other
    assert final[10.0] > max(final[0.1], final[1.0])  # worse than both
    jumps = np.diff(sweep[10.0][1])
    assert (jumps > 0).any() and (jumps < 0).any()  # up and down


def probe_rows(pattern: str, text: str) -> list[tuple[str, ...]]:
    rows = re.findall(pattern, text, re.MULTILINE)
    assert rows, f"no rows matching {pattern!r} in:\n{text}"
    return rows


NB03 = NOTEBOOKS / "03_linear_probe.ipynb"
SWEEP_ROW = (
    r"^\s*([\d.e+-]+)\s+([\d.]+)\s+(\d+)\s+(True|False)\s+([\d.]+)\s+([\d.]+)"
    r"(  <- chosen)?$"
)


def sweep_table(nb) -> dict[str, np.ndarray]:
    rows = probe_rows(SWEEP_ROW, printed(nb, "res = probe.sweep(x_train"))
    columns = list(zip(*rows, strict=True))
    return {
        "l2": np.array(columns[0], float),
        "objective": np.array(columns[1], float),
        "converged": np.array([v == "True" for v in columns[3]]),
        "train": np.array(columns[4], float),
        "val": np.array(columns[5], float),
        "chosen": np.array([v != "" for v in columns[6]]),
    }


def test_probe_notebook_numbers(executed):
    nb = executed(NB03)
    text = prose(nb)
    # The splits: 80% / 20% of the digits' training split, and its test split.
    sizes = printed(nb, "def features(")
    n_train, n_val, n_test = (
        int(found(rf"{name} \((\d+), 256\)", sizes))
        for name in ("train", "val", "test")
    )
    assert n_val == (n_train + n_val) // 5
    assert int(found(r"validation part \((\d+)%\)", text)) == round(
        100 * n_val / (n_train + n_val)
    )
    assert int(found(r"on those (\d+) images", text)) == n_test

    # The sweep: every head converged; the choice follows the stated rule.
    t = sweep_table(nb)
    assert len(t["l2"]) == 9 and t["converged"].all()
    np.testing.assert_allclose(t["l2"], np.geomspace(1e-5, 1e-1, 9), rtol=0.02)
    best_val = t["val"].max()
    ties = np.flatnonzero(t["val"] == best_val)
    best = int(ties[np.argmax(t["l2"][ties])])  # ties: the larger l2
    assert np.flatnonzero(t["chosen"]).tolist() == [best]
    chosen = printed(nb, "head = res.params")
    assert int(found(r"(\d+) strength\(s\) share", chosen)) == len(ties)
    assert float(found(r"chosen l2 ([\d.e+-]+):", chosen)) == t["l2"][best]
    assert float(found(r"validation accuracy ([\d.]+)", chosen)) == best_val
    test_accuracy = float(found(r"test accuracy ([\d.]+)", chosen))
    # "Weak penalties fit the training part almost perfectly; strong ones
    # underfit both."
    assert t["train"][0] >= 0.99
    assert t["train"][-1] < t["train"][best] and t["val"][-1] < t["val"][best]

    # scikit-learn's objective is never below jaxsoft's, and furthest above it
    # at the weakest penalties.
    sk = probe_rows(
        r"^\s*([\d.e+-]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$",
        printed(nb, "LogisticRegression(C=1 / (l2 * len(y_train))"),
    )
    sk_obj, js_obj = (np.array([float(r[k]) for r in sk]) for k in (1, 2))
    np.testing.assert_allclose(js_obj, t["objective"], atol=1e-6)
    gap = sk_obj - js_obj
    assert (gap >= -2e-6).all(), gap
    assert np.argmax(gap) < len(gap) // 2, gap

    # `jaxsoft probe` in its own process: the same choice, the same head.
    cli = printed(nb, "done = subprocess.run(")
    assert found(r"exit code (\d+)", cli) == "0"
    cli_rows = probe_rows(
        r"^\s*([\d.e+-]+)(?:\s+\S+){6}\s+([\d.]+)(?:\s+\S+){3}(  <- chosen)?$", cli
    )
    cli_test = np.array([float(r[1]) for r in cli_rows])
    assert [r[2] != "" for r in cli_rows] == t["chosen"].tolist()
    assert abs(cli_test[best] - test_accuracy) <= 5e-5
    compared = printed(nb, 'cli_head = js.Params(saved["W"], saved["b"])')
    chose = re.search(r"chose l2 (\S+) \(the sweep above: (\S+)\)", compared)
    assert chose and chose[1] == chose[2] == f"{t['l2'][best]:.1e}", compared
    assert "on 100.0% of the test split" in compared

    # Solution 2: each head's test accuracy, as the command computed it too.
    by_head = probe_rows(
        r"^l2 ([\d.e+-]+): validation ([\d.]+), test ([\d.]+)$",
        printed(nb, "# @title 2"),
    )
    np.testing.assert_allclose([float(r[2]) for r in by_head], cli_test, atol=5e-5)
    np.testing.assert_allclose([float(r[1]) for r in by_head], t["val"], atol=0)


def test_probe_notebook_head_matches_scikit_learn(executed):
    """The chosen head's objective and test accuracy, as the notebook printed
    them, against scikit-learn's solution of the same objective (tight
    tolerance) on the notebook's features, with the objective in float64."""
    nb = executed(NB03)
    t = sweep_table(nb)
    best = int(np.flatnonzero(t["chosen"])[0])
    l2 = float(np.geomspace(1e-5, 1e-1, 9)[best])
    printed_test = float(
        found(r"test accuracy ([\d.]+)", printed(nb, "head = res.params"))
    )

    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from jaxsoft import data

    scope = {"np": np, "data": data}
    features_cell = next(c.source for c in nb.cells if "def features(" in c.source)
    exec(features_cell, scope)  # the notebook's features (fixed seed), nothing else
    x, y = scope["x_train"].astype(np.float64), scope["y_train"]
    with threadpool_limits(1):
        fit = LogisticRegression(C=1 / (l2 * len(y)), tol=1e-6, max_iter=5000).fit(x, y)
    o = x @ fit.coef_.T + fit.intercept_
    m = o.max(axis=1)
    lse = m + np.log(np.exp(o - m[:, None]).sum(axis=1))
    objective = np.mean(lse - o[np.arange(len(y)), y]) + l2 / 2 * np.sum(fit.coef_**2)
    assert abs(objective - t["objective"][best]) <= 2e-6, (
        objective,
        t["objective"][best],
    )
    sk_test = fit.score(scope["x_test"], scope["y_test"])
    assert abs(sk_test - printed_test) <= 1 / len(scope["y_test"]) + 5e-5, (
        sk_test,
        printed_test,
    )


def test_training_notebook_numbers(executed):
    nb = executed(NOTEBOOKS / "02_train_mnist.ipynb")
    results = printed(nb, 'test = summary["test"]')
    summary_accuracy = float(
        found(r"test accuracy ([\d.]+) on (\d+) examples", results)
    )
    n_test = int(found(r"test accuracy [\d.]+ on (\d+) examples", results))
    assert (
        float(found(r"from the checkpoint: test accuracy ([\d.]+)", results))
        == summary_accuracy
    )
    wrong = printed(nb, "wrong = np.flatnonzero(")
    n_wrong = int(found(r"(\d+) of (\d+) test images misclassified", wrong))
    assert abs(n_wrong - round(n_test * (1 - summary_accuracy))) <= 1
    epochs = printed(nb, "experiment.train_and_evaluate(config")
    overridden = found(r"EPOCHS = (\d+)", PARAMETER_OVERRIDES["02_train_mnist.ipynb"])
    assert found(r"(\d+) epochs in metrics.jsonl", epochs) == overridden
