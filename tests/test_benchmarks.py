"""`python -m benchmarks NAME` replaces its module's part of RESULTS.md only."""

import types

import benchmarks.__main__ as bench
from keras_tricks.report import Report


def _fake_modules(monkeypatch, values):
    def import_module(name):
        short = name.removeprefix("benchmarks.bench_")
        return types.SimpleNamespace(
            run=lambda quick: [(f"{short} title", Report([{"ratio": values[short]}]))]
        )

    monkeypatch.setattr(bench, "_modules", lambda names: names or sorted(values))
    monkeypatch.setattr(bench.importlib, "import_module", import_module)


def test_a_partial_run_keeps_the_other_modules_parts(tmp_path, monkeypatch):
    out = tmp_path / "RESULTS.md"
    _fake_modules(monkeypatch, {"alpha": 1.25, "beta": 2.5})
    bench.main(["--out", str(out)])
    first = bench._parts(out)
    assert sorted(first) == ["alpha", "beta"]
    assert "| 1.25 |" in first["alpha"] and "| 2.5 |" in first["beta"]

    _fake_modules(monkeypatch, {"alpha": 1.75, "beta": 9.0})
    bench.main(["beta", "--out", str(out)])
    second = bench._parts(out)
    assert second["alpha"] == first["alpha"]
    assert "| 9 |" in second["beta"] and "| 2.5 |" not in second["beta"]
    assert out.read_text().startswith("# Benchmark results")
