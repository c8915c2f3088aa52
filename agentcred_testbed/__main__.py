"""``python -m agentcred_testbed up|down|status``: what ``make testbed-up/down`` run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentcred_testbed import stack
from agentcred_testbed.procs import StateDir, TestbedError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentcred_testbed")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state",
        type=Path,
        default=stack.default_root(),
        help="folder for pids, logs, data and the env file (default: .testbed)",
    )
    args = parser.parse_args(argv)
    state = StateDir(args.state.resolve())
    try:
        if args.command == "up":
            stack.up(state, log=lambda m: print(m, file=sys.stderr))
            print(f"testbed up; environment in {state.root / stack.ENV_FILE}", file=sys.stderr)
        elif args.command == "down":
            stack.down(state)
            left = stack.leftovers(state)
            if left:
                print(f"still running: {', '.join(left)}", file=sys.stderr)
                return 1
            print("testbed down", file=sys.stderr)
        else:
            running = stack.all_running(state)
            print("running" if running else "not running")
            return 0 if running else 1
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
