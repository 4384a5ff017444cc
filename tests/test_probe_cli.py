"""`jaxsoft probe` as a user meets it: weights from .npz files, messages, Ctrl-C, logs.

References are independent of the weights' code path: integer weights must
give what the same rows repeated give.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from jaxsoft import probe
from jaxsoft.cli import probe as command

D, Q = 5, 3
L2 = [1e-3, 1e-2, 1e-1]


def _split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(Q, D)) * 1.5
    y = rng.integers(0, Q, size=n).astype(np.int32)
    x = (centres[y] + rng.normal(size=(n, D))).astype(np.float32)
    return x, y


TRAIN, VAL, TEST = _split(0, 120), _split(1, 60), _split(2, 60)


def _args(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["probe", "--out", str(tmp_path / "out"), *extra])


def _probe(folder, train, val, test, *extra: str) -> dict:
    """Runs the probe on .npz files written from (x, y[, w]) tuples."""
    folder.mkdir()
    names = []
    for name, split in {"train": train, "val": val, "test": test}.items():
        arrays = dict(zip(("x", "y", "sample_weight"), split, strict=False))
        np.savez(folder / f"{name}.npz", **arrays)
        names += [f"--{name}", str(folder / f"{name}.npz")]
    l2 = ["--l2", *map(str, L2)]
    assert command.run(_args(folder, *names, *l2, "--quiet", *extra)) == 0
    return json.loads((folder / "out" / "heads.json").read_text())


def _repeated(split, w):
    return tuple(np.repeat(a, w, axis=0) for a in split)


def test_npz_sample_weight_equals_repeated_rows(tmp_path):
    rng = np.random.default_rng(3)
    weights = [rng.integers(0, 4, size=len(s[1])) for s in (TRAIN, VAL, TEST)]
    pairs = list(zip((TRAIN, VAL, TEST), weights, strict=True))
    weighted = _probe(tmp_path / "w", *[(*s, w) for s, w in pairs])
    repeated = _probe(tmp_path / "r", *[_repeated(s, w) for s, w in pairs])
    unweighted = _probe(tmp_path / "u", TRAIN, VAL, TEST)
    assert weighted["best"] == repeated["best"]
    for key in ("objective", "val_accuracy", "test_accuracy"):
        got = [h[key] for h in weighted["heads"]]
        want = [h[key] for h in repeated["heads"]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    ignored = [h["objective"] for h in unweighted["heads"]]
    assert not np.allclose(ignored, [h["objective"] for h in repeated["heads"]])


def test_npz_bad_sample_weight_is_named(tmp_path):
    w = np.ones(len(TRAIN[1]))
    w[4] = -1.0
    with pytest.raises(probe.ProbeInputError, match="weight"):
        _probe(tmp_path / "neg", (*TRAIN, w), VAL, TEST)


@pytest.fixture
def files(tmp_path):
    np.savez(tmp_path / "one_class.npz", x=TRAIN[0], y=np.zeros_like(TRAIN[1]))
    keep = TRAIN[1] != 2
    np.savez(tmp_path / "no_two.npz", x=TRAIN[0][keep], y=TRAIN[1][keep])
    np.savez(tmp_path / "val.npz", x=VAL[0], y=VAL[1])
    np.savez(tmp_path / "train.npz", x=TRAIN[0], y=TRAIN[1])
    (tmp_path / "objects.npz").write_bytes(b"\x80\x04K\x01.")  # a pickle
    (tmp_path / "text.npz").write_text("hello")
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--train", "one_class.npz"], "training split has one class"),
        (["--train", "one_class.npz", "--val", "val.npz"], "training split has one"),
        (["--train", "no_two.npz", "--val", "val.npz"], "class 2 is in y_val but"),
        (["--train", "text.npz"], "not an .npz or .npy archive"),
        (["--train", "objects.npz"], "not an .npz or .npy archive"),
        (["--train", "train.npz", "--val", "text.npz"], "not an .npz or .npy"),
    ],
)
def test_rough_edges_have_clear_messages(files, flags, message):
    flags = [str(files / f) if f.endswith(".npz") else f for f in flags]
    with pytest.raises(probe.ProbeInputError, match=message) as info:
        command.run(_args(files, *flags, "--quiet"))
    text = str(info.value)
    assert "\n" not in text and "pickle" not in text and "y_val has label" not in text


def test_ctrl_c_writes_nothing_and_promises_no_resume(files, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "sweep", interrupted)
    args = _args(files, "--train", str(files / "train.npz"), "--quiet")
    assert command.run(args) == 130
    err = capsys.readouterr().err
    assert "probe interrupted; nothing was written" in err
    assert "--resume" not in err
    assert not (files / "out").exists()


def test_progress_off_a_terminal_is_one_line_per_head(files, capsys):
    args = _args(files, "--train", str(files / "train.npz"), "--val",
                 str(files / "val.npz"), "--l2", *map(str, L2))  # fmt: skip
    assert command.run(args) == 0  # pytest's captured stderr is not a tty
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("probe:")]
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert lines and all(f"/{len(L2)} heads done" in line for line in lines)
    assert done == sorted(set(done))  # one line per newly finished head
    assert len(lines) <= len(L2)
