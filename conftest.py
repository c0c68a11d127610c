"""Doctests of the package (``pytest --doctest-modules``, see pyproject.toml) see ``torch``, ``nn``
and every public name of ``ipt_compose``, as a reader of the docstrings would have imported them;
each example starts from the same seed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _pytest.doctest import DoctestItem
from torch import nn

import ipt_compose


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    if isinstance(request.node, DoctestItem):
        doctest_namespace.update(torch=torch, nn=nn)
        doctest_namespace.update({name: getattr(ipt_compose, name) for name in ipt_compose.__all__})
        torch.manual_seed(0)
