"""Fixtures for the mlcomm Python tests.

Every rank runs the same tests in the same order (pytest under mpirun), so every test
must make the same collective calls on every rank, and no test may be skipped on some
ranks only. Each test gets its own communicator (`comm`), split from the session's
world communicator with a 20 s timeout: a test that fails early on one rank makes the
others time out on that communicator only, and the next test starts afresh.
"""

import gc

import pytest

import mlcomm

TEST_TIMEOUT_MS = 20000


@pytest.fixture(scope="session")
def world():
    w = mlcomm.Comm.world(timeout_ms=TEST_TIMEOUT_MS)
    yield w
    # left for the package's exit handler to destroy, together with MPI finalisation


@pytest.fixture
def comm(world):
    c = world.split(0, timeout_ms=TEST_TIMEOUT_MS)
    yield c
    gc.collect()
    if c.alive:
        try:
            c.destroy()
        except mlcomm.MlcommError:
            c.abort()
