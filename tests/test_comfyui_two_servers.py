"""tools/run_workflow.py's ComfyServer beside another ComfyUI server on the same checkout.

The other server runs as a user's would, on ComfyUI's default database file (0.33+: it holds the
file's lock while it runs). Ours then asks for the assets system where the ComfyUI has it
(--enable-assets, which needs a working database: without its own database the server exits, as
the newest releases do without that flag) and must serve, with no database error in its log."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402

pytestmark = pytest.mark.comfyui
DATABASE_ERRORS = ("Could not acquire lock", "Database is locked", "Failed to initialize database",
                   "ASSETS_STARTUP_FAILED")


def lock_is_held(comfy_dir: Path) -> bool | None:
    """Whether some process holds the lock of the checkout's default database; None where this
    ComfyUI takes no lock (0.3.64; 0.33 locks <checkout>/user/comfyui.db.lock with filelock)."""
    db_module = comfy_dir / "app" / "database" / "db.py"
    if not db_module.is_file() or "FileLock" not in db_module.read_text():
        return None
    from filelock import FileLock, Timeout
    lock = FileLock(str(comfy_dir / "user" / "comfyui.db.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def test_a_second_server_on_the_same_checkout_serves(tmp_path):
    comfy_dir = Path(os.environ["COMFYUI_PATH"])
    # --enable-assets: 0.33 has it; 0.3.64 would refuse the unknown flag.
    assets = ["--enable-assets"] if "--enable-assets" in (comfy_dir / "comfy" / "cli_args.py").read_text() else []
    quick = ["--disable-all-custom-nodes"]
    other = run_workflow.ComfyServer(comfy_dir, sys.executable, cpu=True, extra_args=quick, database_url=None,
                                     log_path=tmp_path / "other.log")
    ours = None
    try:
        other.wait_ready()
        assert lock_is_held(comfy_dir) in (True, None)  # the clash is set up: the default database is taken
        ours = run_workflow.ComfyServer(comfy_dir, sys.executable, cpu=True, extra_args=quick + assets,
                                        log_path=tmp_path / "ours.log")
        ours.wait_ready()
        for server in (other, ours):
            stats = run_workflow.http_json(server.url + "/system_stats")
            assert stats["system"]["comfyui_version"], stats
        log = ours.log_path.read_text()
        assert not [error for error in DATABASE_ERRORS if error in log], log[-4000:]
    finally:
        for server in (ours, other):
            if server is not None:
                server.stop()
