"""One process schedules a database: a second engine on it is refused until the first one stops."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from treedistill.server.engine import Engine
from treedistill.server.errors import InvalidInput
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def test_second_engine_on_the_same_database_is_refused(db_path, env):
    first = await Engine(db_path, env).start()
    try:
        with pytest.raises(InvalidInput, match=rf"in use by another treedistill process \(pid {os.getpid()}\)"):
            await Engine(db_path, env).start()
    finally:
        await first.close()
    second = await Engine(db_path, env).start()  # released on close
    await second.close()


async def test_lock_of_a_killed_process_is_released(db_path, env):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from treedistill.server.store.lock import DatabaseLock;"
         f"DatabaseLock({str(db_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InvalidInput, match=f"pid {holder.pid}"):
            await Engine(db_path, env).start()
    finally:
        holder.kill()
        holder.wait()
    engine = await Engine(db_path, env).start()
    await engine.close()


async def test_a_database_in_a_directory_that_does_not_exist_yet_is_created(tmp_path, env):
    engine = await Engine(tmp_path / "new" / "dir" / "treedistill.db", env).start()
    await engine.close()
    assert (tmp_path / "new" / "dir" / "treedistill.db").exists()
