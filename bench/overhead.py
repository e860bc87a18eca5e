#!/usr/bin/env python3
"""What an option costs, from one bench/compare.sh run whose targets include
switchyard-base (the reference binary or configuration) and the variants to weigh
(switchyard, switchyard-json, ...).

compare.sh interleaves the targets within each repetition, so two targets of the same
repetition ran seconds apart on the same machine state. On a noisy machine the ratio of
such a pair is far steadier than either rate alone: this prints, per scenario and target,
the median per-core rate and the median of the per-repetition ratios to the reference.

    bench/overhead.py build/bench/results.jsonl [--reference switchyard-base] [--markdown]
"""
import argparse
import json
import statistics
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--reference", default="switchyard-base")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    per_core = defaultdict(dict)  # (scenario, target) -> {rep: units per CPU second}
    for line in open(args.results):
        r = json.loads(line)
        if "bench" not in r:
            continue
        if r.get("errors"):
            raise SystemExit(f"{r['target_name']} {r['bench']} rep {r['rep']}: {r['errors']} errors")
        per_core[(r["bench"], r["target_name"])][r["rep"]] = r["units"] / r["cpu_s"]
    if args.markdown:
        print("| scenario | target | per-core rate (median) | ratio to reference (median of pairs) | pairs |")
        print("|---|---|---|---|---|")
    for scenario in sorted({k[0] for k in per_core}):
        ref = per_core.get((scenario, args.reference), {})
        targets = sorted(t for s, t in per_core if s == scenario)
        targets.sort(key=lambda t: t != args.reference)
        for t in targets:
            reps = per_core[(scenario, t)]
            ratios = [reps[r] / ref[r] for r in reps if r in ref]
            rate = statistics.median(reps.values())
            ratio = statistics.median(ratios) if ratios else float("nan")
            spread = " ".join(f"{x:.2f}" for x in ratios)
            if args.markdown:
                print(f"| {scenario} | {t} | {rate:,.0f} | {ratio:.3f} | {spread} |")
            else:
                print(f"{scenario:6} {t:18} {rate:10,.0f}/s  x{ratio:.3f}  ({spread})")


if __name__ == "__main__":
    main()
