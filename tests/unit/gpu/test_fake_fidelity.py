"""The NVML double must mirror pynvml: same function names and parameters, and it
must implement every pynvml function the product code calls."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pynvml

from tests.doubles.fake_pynvml import FakePynvml

PRODUCT = Path(__file__).resolve().parents[3] / "collectors" / "gpu"


def _fake_functions() -> dict[str, object]:
    return {n: f for n, f in inspect.getmembers(FakePynvml, inspect.isfunction) if n.startswith("nvml")}


def test_every_fake_function_has_pynvmls_signature() -> None:
    fakes = _fake_functions()
    assert len(fakes) > 40
    for name, fn in fakes.items():
        real = getattr(pynvml, name, None)
        assert real is not None, f"{name} is not a pynvml function"
        real_params = list(inspect.signature(real).parameters)
        fake_params = list(inspect.signature(fn).parameters)[1:]  # minus self
        assert fake_params == real_params, f"{name}: {fake_params} != pynvml's {real_params}"


def test_fake_implements_every_nvml_function_the_product_calls() -> None:
    called: set[str] = set()
    for path in PRODUCT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("nvml") and node.attr[4:5].isupper():
                if callable(getattr(pynvml, node.attr, None)) and inspect.isfunction(getattr(pynvml, node.attr)):
                    called.add(node.attr)
    assert "nvmlEventSetWait_v2" in called and "nvmlDeviceGetFieldValues" in called
    missing = called - set(_fake_functions())
    assert not missing, f"the double lacks {sorted(missing)}"
