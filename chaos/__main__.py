"""`scripts/chaos [NAME ...]`: run the experiments, print `N passed, M failed`, exit 1 on a
failure. Every process an experiment starts is stopped by its PID when it ends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.experiments import EXPERIMENTS, Result
from chaos.procs import ChaosError, Processes


async def run_one(name: str, keep: bool) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    procs = Processes(workdir)
    started = time.monotonic()
    try:
        result = await EXPERIMENTS[name](procs, workdir)
    except ChaosError as exc:
        result = Result(name, False, [f"could not run: {exc}"])
    finally:
        await asyncio.to_thread(procs.stop_all)
    result.seconds = time.monotonic() - started
    if not result.passed or keep:
        result.details.append(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--keep", action="store_true", help="keep every experiment's logs")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown:
        print(f"chaos: unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
        return 2
    logging.basicConfig(level=logging.WARNING)
    passed = failed = 0
    for name in args.names or list(EXPERIMENTS):
        print(f"--- {name}", flush=True)
        result = asyncio.run(run_one(name, args.keep))
        verdict = "PASS" if result.passed else "FAIL"
        print(f"{verdict} {result.name} ({result.seconds:.1f}s)")
        for line in result.details:
            print(f"     {line}")
        sys.stdout.flush()
        passed, failed = passed + result.passed, failed + (not result.passed)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
