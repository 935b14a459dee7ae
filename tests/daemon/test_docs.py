"""The README stays true to the daemon: every method it serves is documented."""

from __future__ import annotations

from tests.utils import REPO, DaemonProc


def test_readme_documents_every_rpc_method(daemon: DaemonProc) -> None:
    served = {m["name"] for m in daemon.call("rpc.discover")["methods"]}
    readme = (REPO / "README.md").read_text()
    missing = sorted(name for name in served if f"`{name}`" not in readme)
    assert not missing, f"README.md's method table lacks: {missing}"


def test_readme_first_screen_shows_the_two_commands() -> None:
    first_screen = (REPO / "README.md").read_text()[:3000]
    assert "make run" in first_screen and "make test" in first_screen
