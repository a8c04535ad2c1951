"""The MCP conformance suite's applicable server scenarios pass (benchmarks/conformance.py), when the suite is
installed (CONFORMANCE_BIN or `conformance` on PATH; it needs Node)."""

from __future__ import annotations

import pytest

from benchmarks.conformance import APPLICABLE, conformance_bin, run


@pytest.mark.skipif(conformance_bin() is None, reason="the MCP conformance suite (npm) is not installed")
def test_applicable_conformance_scenarios_pass():
    results = run(conformance_bin())
    assert results == dict.fromkeys(APPLICABLE, True)
