#!/usr/bin/env python3
"""The attack campaign against rsendmail's spool, queue runner and SMTP server.

Usage: chaos/run.py [--quick] [--only SECTION[,SECTION]] [--seed N] [--keep] [-v]
                    [--table FILE]

Sections (chaos/<name>.py): crash (SIGKILL at every Nth system call of submissions and
queue runs), concurrency (many runners and submitters, a stopped runner), faults (SMTP
servers that fail at every step), exhaustion (full disks, no inodes, fd and file-size
limits), corrupt (damaged and planted spool files), hostile (clients of the -bd daemon).

--quick is the bounded part CI runs (scripts/test-all); without it every case runs at
full size. Prints the results table (Markdown) and writes it to --table when given.
Exits 1 when any promise broke (a row with held = NO), 0 otherwise.
"""
import argparse
import importlib
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SECTIONS = ["crash", "concurrency", "faults", "exhaustion", "corrupt", "hostile"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--table", default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    rel = common.ROOT / "target" / "release"
    bin_ = Path(os.environ.get("RSENDMAIL_RELEASE_BIN", rel / "rsendmail"))
    deliver = bin_.parent / "rsendmail-deliver"
    for b in (bin_, deliver):
        if not b.exists():
            sys.exit(f"chaos: {b} missing (cargo build --release --bins)")
    scratch = Path(tempfile.mkdtemp(prefix="rsendmail-chaos-"))
    os.chmod(scratch, 0o755)
    ctx = common.Context(bin=bin_, deliver=deliver, scratch=scratch, quick=a.quick, seed=seed,
                         smtp_sink=os.environ.get("RSENDMAIL_SMTP_SINK"), verbose=a.verbose)
    wanted = [s for s in (a.only.split(",") if a.only else SECTIONS) if s]
    rows = []
    print(f"chaos: seed {seed}, {'quick' if a.quick else 'full'}, scratch {scratch}",
          flush=True)
    for name in wanted:
        if name not in SECTIONS:
            sys.exit(f"chaos: no section {name!r} (have: {', '.join(SECTIONS)})")
        path = Path(__file__).resolve().parent / f"{name}.py"
        if not path.exists():
            continue
        t0 = time.monotonic()
        try:
            mod = importlib.import_module(name)
            got = mod.run(ctx)
        except Exception:
            traceback.print_exc()
            got = [common.Row(name, "(section crashed)", held=False,
                              note=traceback.format_exc().splitlines()[-1][:200])]
        rows.extend(got)
        bad = sum(1 for r in got if not r.held)
        print(f"chaos: {name}: {len(got)} cases, {bad} broken, "
              f"{time.monotonic() - t0:.0f} s", flush=True)
    table = common.markdown(rows)
    print(table)
    if a.table:
        Path(a.table).write_text(table)
    broken = [r for r in rows if not r.held]
    if not a.keep and not broken:
        shutil.rmtree(scratch, ignore_errors=True)
    elif broken:
        print(f"chaos: {len(broken)} broken; scratch kept in {scratch} (seed {seed})")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
