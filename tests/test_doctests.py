"""Every docstring example in the library runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import attnlib
import attnlib.blocks

MODULES = sorted(
    {"attnlib", "attnlib.registry", "attnlib.capture", "attnlib.validation", "attnlib.images", "attnlib.trace",
     "attnlib.stepper", "attnlib.plotting", "attnlib.temperature", "attnlib.cost",
     "attnlib.links", "attnlib.exercises", "attnlib.zoo.report", "attnlib.show", "attnlib.interactive", "attnlib.ppocr", "attnlib.htmlout"}
    | {f"attnlib.blocks.{m.name}" for m in pkgutil.iter_modules(attnlib.blocks.__path__)}
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module_name} failed"
