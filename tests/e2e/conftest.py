from __future__ import annotations

import pytest

from config.stack import LocalStack
from tests.conftest import StackOrganization


@pytest.fixture(scope="module")
def stack(shared_stack: LocalStack, request: pytest.FixtureRequest) -> StackOrganization:
    """The module's own organization on the suite's shared stack; a module that needs settings of
    its own (or stops its stack) starts one instead."""
    return StackOrganization.create(shared_stack, request.module.__name__)
