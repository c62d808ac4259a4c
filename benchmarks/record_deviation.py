"""How far the records of re-executed notebooks moved from the stored ones, per kind.

This is how the tolerances of the notebook regression (tests/test_notebook_records.py) were
derived and how they are checked under a new setting. Re-run the notebooks under a setting
(retraining cold), keep the executed copies, then compare:

    ATEN_CPU_CAPABILITY=default OTNSD_RUNS=$(mktemp -d) OTNSD_EXECUTED=/tmp/cpu_a \\
        .venv/bin/python -m pytest tests/test_notebook_records.py -k reproduce
    .venv/bin/python benchmarks/record_deviation.py /tmp/cpu_a

Prints one row per kind: records, largest |deviation|, largest relative deviation, the kind's
tolerance and the largest share of it used (1.0 = at the limit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from otnsd.notebook import read_records  # noqa: E402
from test_notebook_records import TOLERANCES, WITH_RECORDS  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("executed", type=Path, help="folder with the re-executed notebooks")
    parser.add_argument("--worst", type=int, default=0, help="also list the N records that used most of their tolerance")
    args = parser.parse_args(argv)
    rows, used = {}, []
    for path in WITH_RECORDS:
        fresh_path = args.executed / path.name
        if not fresh_path.exists():
            print(f"(no {fresh_path}: skipped)")
            continue
        stored, fresh = read_records(path), read_records(fresh_path)
        for name, (s, kind) in stored.items():
            if name not in fresh or isinstance(s, (bool, str)):
                continue
            v = float(fresh[name][0])
            dev = abs(v - s)
            rel = dev / abs(s) if s else float("inf") if dev else 0.0
            tol = TOLERANCES[kind]
            share = dev / (tol.abs + tol.rel * abs(s)) if (tol.abs + tol.rel * abs(s)) else float("inf")
            n, d, r, u = rows.get(kind, (0, 0.0, 0.0, 0.0))
            rows[kind] = (n + 1, max(d, dev), max(r, rel), max(u, share))
            used.append((share, f"{path.name[:2]} {name}", s, v))
    print(f"| kind | records | max abs dev | max rel dev | tolerance | max share of tolerance |")
    print("|---|---:|---:|---:|---|---:|")
    for kind, (n, d, r, u) in sorted(rows.items()):
        t = TOLERANCES[kind]
        tol = " + ".join(x for x in (f"{t.abs:g}" if t.abs else "", f"{t.rel:g}·|stored|" if t.rel else "") if x)
        print(f"| {kind} | {n} | {d:.3g} | {r:.2%} | {tol} | {u:.2f} |")
    for share, name, s, v in sorted(used, reverse=True)[: args.worst]:
        print(f"  {share:5.2f}  {name}: stored {s:.5g}, re-run {v:.5g}")


if __name__ == "__main__":
    main()
