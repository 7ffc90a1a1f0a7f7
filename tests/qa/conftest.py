"""Fixtures of the QA tests."""

from __future__ import annotations

import pytest
from tests.qa.qa_synth import Survey, make_survey


@pytest.fixture(scope="session")
def survey() -> Survey:
    return make_survey()
