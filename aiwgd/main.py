"""`aiwgd`: run the daemon in the foreground (Docker, systemd, launchd, a terminal)."""

from __future__ import annotations

import argparse
import sys

from aiwgd.infra.signals import PendingSignals


def main(argv: list[str] | None = None) -> int:
    # First: a SIGHUP or SIGTERM during start-up must neither kill the daemon nor be
    # lost (the loop takes them over and replays them). So the daemon's modules (a
    # few hundred milliseconds of imports) are loaded only after this.
    pending = PendingSignals().install()
    # Before any thread starts: each thread would otherwise get its own malloc arena.
    from aiwgd.infra.malloc import limit_arenas

    limit_arenas()
    # The youngest generation is collected every 10,000 allocations, not 700: a short
    # task allocates a few thousand objects (records, events, futures) and leaves no
    # cycles, so the default made several collections a task, 15 us of it (issue 9).
    import gc

    gc.set_threshold(10_000, 10, 10)

    import aiwgd
    from aiwgd.config import Paths, resolve_root
    from aiwgd.daemon import Daemon, StartupError
    from aiwgd.infra.exitcodes import EXIT_REFUSED
    from aiwgd.infra.pidlock import AlreadyRunning

    parser = argparse.ArgumentParser(prog="aiwgd", description="aiwg daemon (foreground)")
    parser.add_argument("--root", help="project root (default: $AIWG_ROOT or the cwd)")
    parser.add_argument("--foreground", action="store_true", help="accepted; always true")
    parser.add_argument("--version", action="version", version=f"%(prog)s {aiwgd.__version__}")
    parser.add_argument(
        "--no-stderr-log",
        action="store_true",
        help="log only to .aiwg/daemon/daemon.log (used by `aiwg start`)",
    )
    args = parser.parse_args(argv)
    paths = Paths(resolve_root(args.root))
    try:
        return Daemon(paths, log_to_stderr=not args.no_stderr_log, pending=pending).run()
    except AlreadyRunning as exc:
        print(f"aiwgd: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StartupError as exc:
        print(f"aiwgd: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
