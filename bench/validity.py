"""Do the statistical modes and the shipped policies keep their error rates?

Prints, as Markdown tables (the ones recorded in docs/policies.md):

1. each mode on a +5-point delta at n = 200 and 700 with discordance 0.1, 0.2 and 0.4: the
   no-change fire rate per look and over runs of 50 looks, the MDE ``tripwire policy check``
   computes, and the power at threshold + MDE (for ``cannot_rule_out``: quiet at threshold -
   MDE);
2. exact coverage of the paired interval's one-sided 95% bounds when every changed item moves
   one way (emergence), the engine's Tango score interval beside the Agresti-Min interval it
   replaced, and the worst coverage over a grid of two-way discordance;
3. false alarms of combinators over 10 unchanged benchmarks;
4. every shipped policy (triggers/*.yaml): run-wide no-change fire rate over 50 looks, and the
   power of each comparison at its threshold + MDE.

Every figure is a simulation through the engine's own functions (``tripwire.policy.validity``).
Targets: run-wide false fires <= 5% for every shipped policy; power >= 80% at threshold + MDE
(the MDE is the change with 80% power by construction: a simulated rate counts when it is within
two Monte Carlo standard errors of 80% or above); coverage >= 94% for n >= 50. Rates carry their
Monte Carlo standard error.

Usage: ``python bench/validity.py [--runs 1000] [--replicates 4000] [--seed 0] [--only modes]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tripwire.policy.schema import load_policy
from tripwire.policy.simulation import Rate
from tripwire.policy.stats import PairedScore, agresti_min
from tripwire.policy.validity import (
    combinator_rates,
    coverage_rows,
    mode_rows,
    policy_row,
    shipped_policies,
    worst_coverage,
)

ROOT = Path(__file__).resolve().parents[1]


def pct(rate: Rate) -> str:
    return f"{rate.rate:.1%} ± {rate.se:.1%}"


def ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def powered(rate: Rate) -> bool:
    """At least 80% within two Monte Carlo standard errors: the MDE is the change at which the
    power is 80% by construction, so a simulation lands on either side of it."""
    return rate.rate + 2 * rate.se >= 0.80


def modes(args: argparse.Namespace) -> None:
    print("## Modes on a +5-point delta (one benchmark, 50 looks a run)\n")
    print(
        "| mode | n | discordance | no change: per look | no change: 50-look run | MDE | "
        "power at | power | run <= 5% | power >= 80% |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in mode_rows(runs=args.runs, replicates=args.replicates, seed=args.seed):
        sense = "quiet" if row.mode == "cannot_rule_out" else "fires"
        print(
            f"| {row.mode} | {row.n} | {row.discordance:.1f} | {pct(row.per_look)} | "
            f"{pct(row.run_wide)} | {row.mde:.1f} | {row.decides_at:+.1f} ({sense}) | "
            f"{pct(row.power)} | {ok(row.run_wide.rate <= 0.05)} | "
            f"{ok(powered(row.power))} |"
        )
    print()


def coverage(_: argparse.Namespace) -> None:
    print("## Coverage of one-sided 95% bounds, every changed item moving up (exact)\n")
    print("| n | true rise | Tango score (engine) | Agresti-Min (before) | >= 94% |")
    print("|---|---|---|---|---|")
    for row in coverage_rows():
        print(
            f"| {row.n} | +{100 * row.p12:g} points | {row.tango.worst:.1%} | "
            f"{row.agresti_min.worst:.1%} | {ok(row.tango.worst >= 0.94)} |"
        )
    print()
    print(
        "Worst coverage over every true (newly right, newly wrong) share in steps of 0.02 "
        "up to 0.4 together:\n"
    )
    print("| n | Tango score (engine) | at | Agresti-Min | at |")
    print("|---|---|---|---|---|")
    for n in (50, 100, 200):
        t, t_at = worst_coverage(n, PairedScore)
        a, a_at = worst_coverage(n, agresti_min)
        print(f"| {n} | {t:.1%} | {t_at} | {a:.1%} | {a_at} |")
    print()


def combinators(args: argparse.Namespace) -> None:
    print("## Combinators over 10 unchanged benchmarks (one look at alpha = 5%, 200 items)\n")
    print("| rule | fires | <= 5% |")
    print("|---|---|---|")
    for label, rate in combinator_rates(replicates=args.replicates // 2, seed=args.seed).items():
        print(f"| {label} | {pct(rate)} | {ok(rate.rate <= 0.05 + 3 * rate.se)} |")
    print()


def policies(args: argparse.Namespace) -> None:
    print(
        "## Shipped policies (50 looks a run, no true change; each comparison at its "
        "threshold + MDE)\n"
    )
    for path in shipped_policies(ROOT):
        loaded = load_policy(path)
        t0 = time.perf_counter()
        row = policy_row(loaded, runs=args.runs, replicates=args.replicates // 2, seed=args.seed)
        took = time.perf_counter() - t0
        print(
            f"**{path.name}** (discordance {row.discordance:.2f}): run-wide no-change fire "
            f"rate {pct(row.run_wide)} ({ok(row.run_wide.rate <= 0.05)} <= 5%; {took:.0f} s)\n"
        )
        if row.comparisons:
            print("| rule | comparison | mode | items | MDE | at | power | >= 80% |")
            print("|---|---|---|---|---|---|---|---|")
            for c in row.comparisons:
                sense = "quiet" if c.mode == "cannot_rule_out" else "fires"
                print(
                    f"| {c.rule} | {c.label} | {c.mode} | {c.items} | {c.mde:.1f} | "
                    f"{c.decides_at:+.1f} ({sense}) | {pct(c.power)} | "
                    f"{ok(powered(c.power))} |"
                )
        print()


PARTS = {"modes": modes, "coverage": coverage, "combinators": combinators, "policies": policies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs of 50 looks per figure")
    parser.add_argument("--replicates", type=int, default=4000, help="single looks per figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(PARTS), action="append")
    args = parser.parse_args()
    t0 = time.perf_counter()
    for name in args.only or list(PARTS):
        PARTS[name](args)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
