"""What importing upstream results costs: `import_upstream` over N upstream runs, made by
copying one real run of `../shared/data/upstream/dryrun-test-001` (three judges with per-item
judgments, the agent's JSON output) into T0..T6 sub-tests; then the same import again
(unchanged records are not rewritten).

    python benchmarks/bench_upstream_import.py [--runs 700] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from pytest_scylla.upstream import import_upstream

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "upstream" / "dryrun-test-001"
TOP_FILES = ("prompt.md", "criteria.md", "rubric.yaml", "checkpoint.json")


def make_tree(root: Path, runs: int) -> Path:
    """An upstream folder with `runs` copies of T0/00/run_01, spread over T0..T6."""
    tree = root / "dryrun-test-001"
    shutil.copytree(SOURCE / "config", tree / "config")
    for name in TOP_FILES:
        shutil.copy(SOURCE / name, tree / name)
    template = SOURCE / "T0" / "00" / "run_01"
    per_subtest = 10
    for index in range(runs):
        tier = f"T{index % 7}"
        subtest = f"{index // (7 * per_subtest):02d}"
        number = (index // 7) % per_subtest + 1
        target = tree / tier / subtest / f"run_{number:02d}"
        shutil.copytree(template, target)
        record = json.loads((target / "run_result.json").read_text())
        record["run_number"] = number
        (target / "run_result.json").write_text(json.dumps(record))
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=700)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        tree = make_tree(root, args.runs)
        start = time.perf_counter()
        imported = import_upstream(tree, root / "results")
        first = time.perf_counter() - start
        start = time.perf_counter()
        import_upstream(tree, root / "results")
        again = time.perf_counter() - start
    figures = {
        "runs": len(imported.records),
        "import_s": round(first, 3),
        "import_again_s": round(again, 3),
        "per_run_ms": round(1000 * first / max(1, len(imported.records)), 2),
    }
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
