"""Data parallelism: 8 simulated CPU devices give the 1-device results.

Each test runs a script in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (JAX fixes its device
count at start-up, so this process cannot host both runs); the script
compares a run on all 8 devices with the same run on a 1-device mesh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO_ROOT

from jaxsoft import sharding

PRELUDE = """
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import jaxsoft as js
from jaxsoft import train
import sys; sys.path.insert(0, "tests")
from _fake_data import blobs

assert jax.device_count() == 8, jax.devices()
one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
x, y = blobs(150, num_classes=3, num_features=16, seed=0)  # 150 = 18 * 8 + 6
x_test, y_test = blobs(61, num_classes=3, num_features=16, seed=1)
params = js.init_params(jax.random.key(0), 16, 3)
out = {}
"""


def run_on_8_devices(body: str) -> dict:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(REPO_ROOT),
    }
    script = PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fit_evaluate_and_lbfgs_on_8_devices_equal_1_device():
    out = run_on_8_devices(
        """
        kwargs = dict(key=jax.random.key(1), batch_size=16, epochs=3,
                      x_test=x_test, y_test=y_test)
        for name, mesh in (("eight", None), ("one", one)):
            result = train.fit(params, x, y, mesh=mesh, **kwargs)
            out[name] = {
                "W": np.asarray(result.params.W).tolist(),
                "b": np.asarray(result.params.b).tolist(),
                "devices": len(result.params.W.sharding.device_set),
                "history": [r.to_dict() for r in result.history],
            }
            ev = train.evaluate(result.params, x_test, y_test, chunk_size=4,
                                mesh=mesh).to_dict()
            out[name]["evaluation"] = ev
            exact, info = train.solve_lbfgs(
                js.init_params(jax.random.key(0), 16, 3, scale=0.0), x, y,
                l2=1e-2, mesh=mesh)
            out[name]["lbfgs"] = info._asdict()
        """
    )
    eight, one = out["eight"], out["one"]
    assert eight["devices"] == 8 and one["devices"] == 1
    np.testing.assert_allclose(eight["W"], one["W"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(eight["b"], one["b"], atol=1e-5, rtol=0)
    for a, b in zip(eight["history"], one["history"], strict=True):
        assert a["test_accuracy"] == b["test_accuracy"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    ev8, ev1 = eight["evaluation"], one["evaluation"]
    assert ev8["num_examples"] == ev1["num_examples"] == 61  # each row once
    assert ev8["confusion"] == ev1["confusion"]
    assert ev8["accuracy"] == ev1["accuracy"]
    assert ev8["loss"] == pytest.approx(ev1["loss"], rel=1e-6)
    assert ev8["calibration_error"] == pytest.approx(ev1["calibration_error"], abs=1e-6)
    assert eight["lbfgs"]["converged"] and one["lbfgs"]["converged"]
    assert eight["lbfgs"]["objective"] == pytest.approx(
        one["lbfgs"]["objective"], rel=1e-6
    )


@pytest.mark.slow
def test_pre_sharded_inputs_on_an_explicit_mesh():
    out = run_on_8_devices(
        """
        explicit = jax.make_mesh((4,), ("data",))  # explicit axes by default
        assert "Explicit" in str(explicit.axis_types)
        rows = NamedSharding(explicit, P("data"))
        xs, ys = jax.device_put(x[:148], rows), jax.device_put(y[:148], rows)
        kwargs = dict(key=jax.random.key(1), batch_size=16, epochs=2)
        sharded = train.fit(params, xs, ys, mesh=explicit, **kwargs)
        default_mesh = train.fit(params, xs, ys, **kwargs)  # onto all 8
        host = train.fit(params, x[:148], y[:148], mesh=one, **kwargs)
        out["diff"] = [
            float(np.abs(np.asarray(r.params.W) - np.asarray(host.params.W)).max())
            for r in (sharded, default_mesh)
        ]
        out["accuracy"] = train.evaluate(sharded.params, xs, ys).accuracy
        out["host_accuracy"] = train.evaluate(host.params, x[:148], y[:148]).accuracy
        """
    )
    assert max(out["diff"]) < 1e-5
    assert out["accuracy"] == out["host_accuracy"]


def test_a_batch_that_does_not_split_over_the_devices_is_refused():
    out = run_on_8_devices(
        """
        try:
            train.fit(params, x, y, key=jax.random.key(1), batch_size=20, epochs=1)
        except ValueError as err:
            out["message"] = str(err)
        """
    )
    assert "`batch_size=20`" in out["message"] and "8 devices" in out["message"]
    assert "16 or 24" in out["message"]


def test_a_mesh_without_a_data_axis_is_refused():
    import jax

    mesh = jax.make_mesh((1,), ("batch",))
    with pytest.raises(ValueError, match="'data'"):
        sharding.resolve_mesh(mesh)


def test_the_cli_refuses_a_batch_that_does_not_split_with_one_line(tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(REPO_ROOT),
    }
    run = str(tmp_path / "run")
    command = ["train", "--batch-size", "20", "--out", run]
    command += ["--data-dir", str(tmp_path / "tfds")]
    result = subprocess.run(
        [sys.executable, "-m", "jaxsoft", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "jaxsoft: error: `--batch-size 20` does not split evenly over the 8 devices"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_probe_and_weighted_solver_on_8_devices_equal_1_device():
    """`probe.sweep` with mesh=None (8 devices), a 4-device mesh and the
    1-device mesh, in memory and streamed, with sample weights; and the
    weighted `solve_lbfgs`: the same objectives (1e-5) and the same head."""
    out = run_on_8_devices(
        """
        from jaxsoft import probe
        four = jax.make_mesh((4,), ("data",), devices=jax.devices()[:4])
        w = np.random.default_rng(0).uniform(0.0, 3.0, len(y))
        runs = {}
        for name, mesh in (("eight", None), ("four", four), ("one", one)):
            for stream in (False, True):
                res = probe.sweep(
                    x, y, [1e-3, 1e-1], x_val=x_test, y_val=y_test,
                    sample_weight=w, mesh=mesh, chunk_rows=40,
                    max_device_bytes=0 if stream else None,
                )
                runs[f"{name}-{stream}"] = {
                    "objective": res.objective.tolist(), "best": res.best,
                    "devices": len(jax.devices()) if mesh is None else mesh.size,
                }
            zeros = js.init_params(jax.random.key(0), 16, 3, scale=0.0)
            _, info = train.solve_lbfgs(
                zeros, x, y, l2=1e-2, sample_weight=w, mesh=mesh
            )
            runs[f"{name}-lbfgs"] = {"objective": info.objective}
        out["runs"] = runs
        """
    )["runs"]
    assert out["eight-False"]["devices"] == 8
    reference = out["one-False"]
    for name, run in out.items():
        if name.endswith("lbfgs"):
            continue
        np.testing.assert_allclose(run["objective"], reference["objective"], rtol=1e-5)
        assert run["best"] == reference["best"], name
    for name in ("eight-lbfgs", "four-lbfgs"):
        assert out[name]["objective"] == pytest.approx(
            out["one-lbfgs"]["objective"], rel=1e-5
        )


@pytest.mark.slow
def test_the_exact_engine_in_float64_on_8_devices_equals_1_device():
    """`jaxsoft.exact.solve` in float64 (x64 mode on), 5 folds x 3 strengths
    on 8 devices and on one: with passes in blocks of 2 heads that skip the
    finished ones or every head in each pass, with the covariance from a
    sample of every 3rd row (NumPy, on the host) or from every row (a device
    array: the pass on the mesh), the same optimum to gtol 1e-10."""
    out = run_on_8_devices(
        """
        from jaxsoft.exact import passes, solve
        passes.MOMENTS_FULL_MAX_WORK, passes.MOMENTS_ROWS_PER_FEATURE = 0, 1
        passes.MOMENTS_SAMPLE_ROWS = 50
        sets = np.stack([np.arange(150) % 5 != k for k in range(5)])
        runs = {}
        with jax.enable_x64(True):
            rows = {"numpy": np.asarray(x, np.float64)}
            rows["device"] = jnp.asarray(rows["numpy"])
            for name, mesh in (("eight", None), ("one", one)):
                for columns in (6, 1 << 20):  # 6: blocks of 2 heads (3 classes)
                    passes.HEAD_BLOCK_COLUMNS = columns
                    for kind, features in rows.items():
                        sol = solve(
                            features, y, [1e-3, 1e-2, 1e-1], row_sets=sets,
                            rtol=0.0, gtol=1e-10, max_iter=2000, mesh=mesh,
                        )
                        runs[f"{name}-{columns}-{kind}"] = {
                            "objective": sol.objective.tolist(),
                            "W": sol.params.W.tolist(),
                            "dtype": str(sol.params.W.dtype),
                            "converged": bool(sol.converged.all()),
                            "passes": sol.passes.tolist(),
                        }
        out["runs"] = runs
        """
    )
    runs = out["runs"]
    reference = runs["one-1048576-device"]
    for name, run in runs.items():
        assert run["dtype"] == "float64" and run["converged"], name
        np.testing.assert_allclose(
            run["objective"], reference["objective"], rtol=1e-12, err_msg=name
        )
        np.testing.assert_allclose(run["W"], reference["W"], atol=1e-6, err_msg=name)
    # the sample changes the path (not the optimum)
    assert runs["one-1048576-numpy"]["passes"] != reference["passes"]


def test_to_host_returns_c_contiguous_numpy_for_every_kind_of_array():
    """The one host-copy helper (the checkpoints' too): NumPy in any order,
    lists and device arrays come back as C-contiguous NumPy of equal value."""
    import jax.numpy as jnp

    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    for value in (fortran, fortran.tolist(), jnp.asarray(fortran)):
        host = sharding.to_host(value)
        assert isinstance(host, np.ndarray)
        assert host.flags.c_contiguous
        np.testing.assert_array_equal(host, fortran)
    c_order = np.arange(4.0)
    assert sharding.to_host(c_order) is c_order  # no copy where none is needed
