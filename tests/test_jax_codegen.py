"""The jax_codegen backend: JAX's derivative programs run as generated NumPy code.

Agreement with the jax backend on every example model and operator (1e-13 relative
in float64), the generated source, pickles that run where importing JAX fails, fork
pools after the parent computed with JAX, the disk cache and the errors.
"""

from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import diffops
from _backends import require_backend
from _cases import CASES, case_derivative, points, rng_for

pytestmark = pytest.mark.usefixtures("_needs_backends")

RTOL = {np.float64: 1e-13, np.float32: 2e-6}


@pytest.fixture
def _needs_backends():
    require_backend("jax")
    require_backend("jax_codegen")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test writes its generated modules into its own directory."""
    monkeypatch.setenv("DIFFOPS_CODEGEN_CACHE", str(tmp_path / "cache"))


def potential(x):
    import jax.numpy as jnp

    return jnp.sum(jnp.sin(x) * x**2) + x[0] * x[-1]


def banana(x):
    return -(x[0] ** 2) / 2 - (x[1] - x[0] ** 2) ** 2


def _close(got, want, dtype, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    rtol = RTOL[np.dtype(dtype).type]
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def _agreement_params():
    return [
        pytest.param(case, op, id=f"{case.id}-{op}")
        for case in CASES
        if case.runs_on("jax") and case.runs_on("jax_codegen")
        for op in case.ops
    ]


@pytest.mark.parametrize(("case", "op"), _agreement_params())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_agrees_with_jax_on_the_example_models(case, op, dtype):
    jax_d = case_derivative("jax", case, op)
    gen_d = case_derivative("jax_codegen", case, op)
    for i, x in enumerate(points(case)):
        x = x.astype(dtype)
        want, got = jax_d(x), gen_d(x)
        assert len(got) == len(want)
        if callable(want[0]):
            rng = rng_for("closure", case.id, op, i)
            m = rng.standard_normal(want[0].arg_shape).astype(dtype)
            _close(got[0](m), want[0](m), dtype, f"{case.id} {op} closure")
            want, got = want[1:], got[1:]
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, dtype, f"{case.id} {op} output {k}")


def test_source_is_numpy_code_per_call_signature():
    d = diffops.hessian_grad_and_value(banana, backend="jax_codegen")
    assert d.source == ""  # nothing generated before the first call
    d(np.array([0.3, -0.7]))
    source = d.source
    assert "def hessian_grad_and_value_of_banana" in source
    assert "import numpy as np" in source
    assert "jax" not in source.replace("from a JAX program", "")
    d(np.array([0.3, -0.7], dtype=np.float32))
    assert d.source.count("def hessian_grad_and_value_of_banana(") == 2
    assert diffops.grad_and_value(banana, backend="jax").source is None


def test_extra_arguments_and_closures():
    def logistic(beta, data):
        import jax.numpy as jnp

        z = data["X"] @ beta
        return jnp.sum(data["y"] * z - jnp.log1p(jnp.exp(z))) - data["scale"] * (
            beta @ beta
        )

    rng = np.random.default_rng(3)
    data = {
        "X": rng.standard_normal((7, 3)),
        "y": (rng.random(7) < 0.5).astype(float),
        "scale": 0.5,
    }
    beta = rng.standard_normal(3)
    for op in ("hvp_grad_and_value", "mtp_hessian_grad_and_value"):
        want = diffops.DerivativeFunction(logistic, op, "jax")(beta, data)
        got = diffops.DerivativeFunction(logistic, op, "jax_codegen")(beta, data)
        m = rng.standard_normal(want[0].arg_shape)
        _close(got[0](m), want[0](m), np.float64, op)
        for g, w in zip(got[1:], want[1:], strict=True):
            _close(g, w, np.float64, op)


def test_unsupported_extra_argument_is_a_clear_error():
    d = diffops.grad_and_value(lambda x, s: x[0] * len(s), backend="jax_codegen")
    with pytest.raises(TypeError, match=r"extra arguments .* not str"):
        d(np.ones(2), "abc")


def test_untranslated_primitive_names_it_and_suggests_jax():
    def spectral(x):
        import jax.numpy as jnp

        a = jnp.outer(x, x) + jnp.eye(x.shape[0])
        return jnp.sum(jnp.linalg.eigh(a)[0] ** 2)

    d = diffops.grad_and_value(spectral, backend="jax_codegen")
    with pytest.raises(NotImplementedError, match=r"'eigh'.*backend=\"jax\""):
        d(np.array([0.3, 0.5, -0.2]))


def test_disk_cache_skips_generation(monkeypatch, tmp_path):
    from diffops.codegen import emit

    x = np.array([0.3, -0.7])
    first = diffops.hessian_grad_and_value(lambda y: banana(y), backend="jax_codegen")
    want = first(x)
    assert list((tmp_path / "cache").glob("*.json"))

    def fail(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(emit, "emit_module", fail)
    # Another function object with the same program: traced, not generated.
    second = diffops.hessian_grad_and_value(lambda y: banana(y), backend="jax_codegen")
    for g, w in zip(second(x), want, strict=True):
        _close(g, w, np.float64, "cached")
    monkeypatch.setenv("DIFFOPS_CODEGEN_CACHE", "off")
    third = diffops.hessian_grad_and_value(lambda y: banana(y), backend="jax_codegen")
    with pytest.raises(AssertionError, match="generated again"):
        third(x)


# ---------------------------------------------------------------------------------
# Other processes


def _blocked_path(directory):
    directory.mkdir()
    (directory / "jax.py").write_text("raise ImportError('jax is blocked here')\n")
    return str(directory)


def test_pickle_runs_where_importing_jax_fails(tmp_path):
    x = np.array([0.3, -1.2, 0.8])
    m = np.array([0.5, 0.1, -2.0])
    d = diffops.hvp_grad_and_value(potential, backend="jax_codegen")
    closure, grad, value = d(x)  # generated here; the child only runs it
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(d))
    out = tmp_path / "out.npz"
    code = f"""
        import pickle, sys
        sys.path.insert(0, {_blocked_path(tmp_path / "blocked")!r})
        sys.path.insert(1, {str(tmp_path.parent)!r})
        try:
            import jax
        except ImportError:
            pass
        else:
            raise SystemExit("jax imported")
        import numpy as np
        d = pickle.load(open({str(tmp_path / "d.pkl")!r}, "rb"))
        closure, grad, value = d(np.array({x.tolist()!r}))
        np.savez({str(out)!r}, closure(np.array({m.tolist()!r})), grad, value)
        assert "jax" not in sys.modules or sys.modules["jax"] is None
        print(d.backend)
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "jax_codegen"
    saved = np.load(out)
    for k, want in enumerate((closure(m), grad, value)):
        _close(saved[f"arr_{k}"], want, np.float64, f"child output {k}")


def test_child_without_jax_needs_it_only_for_new_shapes(tmp_path):
    d = diffops.grad_and_value(potential, backend="jax_codegen")
    d(np.ones(3))
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(d))
    code = f"""
        import pickle, sys
        sys.path.insert(0, {_blocked_path(tmp_path / "blocked")!r})
        import numpy as np
        d = pickle.load(open({str(tmp_path / "d.pkl")!r}, "rb"))
        d(np.ones(3))
        try:
            d(np.ones(4))
        except ImportError as err:
            print("ImportError", err)
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError" in result.stdout


_FORKED = {}


def _evaluate_in_child(x):
    closure, jac, value = _FORKED["d"](x)
    return closure(np.ones((1, 3))), jac, value


def torus(x):
    import jax.numpy as jnp

    r = jnp.sqrt(x[0] ** 2 + x[1] ** 2)
    return jnp.stack([(r - 1) ** 2 + x[2] ** 2 - 0.25])


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_fork_pool_after_the_parent_computed_with_jax():
    d = diffops.mhp_jacobian_and_value(torus, backend="jax_codegen")
    xs = [np.array([0.8, -0.5, 0.3]) * (1 + 0.1 * k) for k in range(4)]
    _FORKED["d"] = d
    want = [_evaluate_in_child(x) for x in xs]
    reference = diffops.mhp_jacobian_and_value(torus, backend="jax")
    reference(xs[0])  # the parent has computed with JAX
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # os.fork() in a process that ran JAX
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(_evaluate_in_child, xs)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            _close(a, b, np.float64, "fork child")
