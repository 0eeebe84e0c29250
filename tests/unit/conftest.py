"""Fixtures for the differential tests: the real JDK and the real Lucene as oracles.

Each is started once per test module and skips the tests that use it when its toolchain (a Java
21+, Maven) is missing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.oracle.jdk.oracle_client import JdkOracle
from tests.oracle.jvm_oracle import LineOracle, OracleUnavailableError
from tests.oracle.lucene.oracle_client import LuceneOracle

_Oracle = TypeVar("_Oracle", bound=LineOracle)


def _start_or_skip(
    oracle: Callable[[], _Oracle], unavailable: tuple[type[Exception], ...], prefix: str
) -> _Oracle:
    try:
        return oracle()
    except unavailable as exc:
        pytest.skip(f"{prefix}{exc}")


@pytest.fixture(scope="module")
def jdk_oracle() -> Iterator[JdkOracle]:
    """The real JDK and Elasticsearch's grok (tests/oracle/jdk)."""
    unavailable = (OracleUnavailableError, subprocess.CalledProcessError, OSError)
    oracle = _start_or_skip(JdkOracle, unavailable, "JDK oracle unavailable: ")
    yield oracle
    oracle.close()


@pytest.fixture(scope="module")
def lucene_oracle() -> Iterator[LuceneOracle]:
    """The real Lucene 10.4 (tests/oracle/lucene)."""
    oracle = _start_or_skip(LuceneOracle, (OracleUnavailableError,), "")
    yield oracle
    oracle.close()
