"""How good are anchor subsets? A seeded item-response world shaped like MMLU.

14,042 four-choice items (2PL items over a guessing floor that varies by item around 1/4; the fit
assumes one fixed floor of 1/4, so it is never exactly right), 60 checkpoints with known
abilities to fit on, 200 held out.
Prints, as Markdown (recorded in bench/README.md and docs/proxies.md):

1. the proxy's items as a fraction of the full benchmark (target <= 5%);
2. held-out mean absolute error, in points, of the anchor estimate and of the plain mean of a
   random subset of the same size, and the share of held-out checkpoints inside the 95% band;
3. agreement of a delta rule (+5 points) decided by the engine (``evaluate_rule``) on the
   anchors' estimate and on every item, over simulated checkpoint pairs (most drift, 40% leap:
   ``tripwire.proxies.simulate.leaps``), overall and for true changes within 10 points of the
   threshold (target >= 95% overall); for static anchor subsets and for a staged proxy
   (``tripwire.proxies.staged``: 100, 200, 400 then 702 anchors while the question is open);
4. ``tripwire policy check``'s MDE for the rule on an anchored task, and the engine's fire rate
   at threshold + MDE (planned: 80%);
5. the adaptive test (maximum information, stop when "score >= 50%?" is decided at 95%): items
   needed against the static anchors, and the share each decides;
6. on tiny models, through the real runner (``bench/proxy_seconds.py``): the seconds of a
   100-anchor proxy against its 2,000-item task, and a cached re-evaluation against a cold one
   (target under 5%).

Usage: ``python bench/proxy.py [--items 14042] [--anchors 100,400,702] [--stages ...]
[--pairs 1000] [--tiny-rounds 2] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import brentq

from tripwire.policy.power import Planning, rule_power
from tripwire.policy.schema import DeltaRule, Policy
from tripwire.policy.sizes import ItemCount
from tripwire.proxies.adaptive import adaptive_test, responder
from tripwire.proxies.anchors import choose_anchors, cross_validate, estimate_full, expected_se
from tripwire.proxies.irt import ItemParams, fit_2pl
from tripwire.proxies.simulate import (
    World,
    decision_agreement,
    leaps,
    make_world,
    staged_agreement,
)

Z95 = 1.959964
LEVEL = 0.50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=14042)
    parser.add_argument("--fit", type=int, default=60, help="checkpoints fitted")
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--anchors", default="100,400,702")
    parser.add_argument("--stages", default="100,200,400,702", help="nested staged-proxy sizes")
    parser.add_argument("--pairs", type=int, default=1000, help="checkpoint pairs decided")
    parser.add_argument("--adaptive", type=int, default=100, help="checkpoints tested adaptively")
    parser.add_argument("--guessing", type=float, default=0.25)
    parser.add_argument(
        "--shared", type=float, default=0.8, help="share of luck two checkpoints share (rows)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tiny-rounds", type=int, default=2, help="rounds of seconds on tiny models (0: skip)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    world = make_world(rng, args.items, guessing=args.guessing)
    train = world.answers(rng, rng.normal(0.0, 1.0, args.fit))
    held_theta = rng.normal(0.0, 1.3, args.held_out)
    held = world.answers(rng, held_theta)
    truth = held.mean(axis=1)
    started = time.perf_counter()
    fit = fit_2pl(train, floor=args.guessing)
    print(f"2PL fit on {args.fit} x {args.items}: {time.perf_counter() - started:.1f} s\n")

    rows = []
    for k in (int(x) for x in args.anchors.split(",")):
        validation = cross_validate(train, k, folds=5, seed=args.seed, floor=args.guessing)
        anchors = choose_anchors(fit.items, k, args.seed)
        est = estimate_full(held[:, anchors.index], anchors.index, fit.items, validation.misfit_sd)
        errors = est.score - truth
        pick = rng.choice(args.items, size=k, replace=False)
        random_errors = held[:, pick].mean(axis=1) - truth
        agreement = {}
        for mode in ("detected", "point"):
            agreement[mode] = decision_agreement(
                world,
                fit.items,
                anchors.index,
                validation.misfit_sd,
                delta_rule(mode),
                rng,
                rng.normal(0.0, 1.0, args.pairs),
                leaps(rng, args.pairs),
            )
        static_decided = np.mean(
            (est.score - 1.644854 * est.se >= LEVEL) | (est.score + 1.644854 * est.se < LEVEL)
        )
        rows.append((k, validation, errors, random_errors, est, agreement, static_decided))

    header = [
        "anchors",
        "share of items",
        "held-out MAE, anchors (cross-validated)",
        "held-out MAE, random subset",
        "95% band coverage",
        "mean band (se)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|---|")
    for k, validation, errors, random_errors, est, _, _ in rows:
        print(
            f"| {k} | {100 * k / args.items:.1f}% | {100 * np.mean(np.abs(errors)):.2f} points "
            f"({100 * validation.mae:.2f}) | {100 * np.mean(np.abs(random_errors)):.2f} points | "
            f"{np.mean(np.abs(errors) <= Z95 * est.se):.1%} | {100 * np.mean(est.se):.2f} points |"
        )
    print()
    header = [
        "anchors",
        "mode",
        "agreement with every item",
        "within 10 points of the threshold",
        "fired: every item / anchors",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|")
    for k, *_, agreement, _ in rows:
        for mode, found in agreement.items():
            print(
                f"| {k} | {mode} | {found.rate:.1%} | {found.rate_where(-5.0, 15.0):.1%} | "
                f"{found.full.mean():.1%} / {found.anchored.mean():.1%} |"
            )
    print()
    sizes = [int(x) for x in args.stages.split(",")]
    stages = [choose_anchors(fit.items, k, args.seed).index for k in sizes]
    header = [
        f"staged proxy ({' / '.join(map(str, sizes))} anchors)",
        "agreement with every item",
        "items per checkpoint: mean / median / max",
        "pairs decided at each stage",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|")
    coupled = World(world.items, world.guessing, shared=args.shared)
    for label, among in (("", world), (f", {args.shared:.0%} of the luck shared", coupled)):
        for mode in ("detected", "point"):
            staged = staged_agreement(
                among,
                fit.items,
                stages,
                rows[0][1].misfit_sd,
                delta_rule(mode),
                rng,
                rng.normal(0.0, 1.0, args.pairs),
                leaps(rng, args.pairs),
            )
            share = staged.items / args.items
            counts = np.bincount(staged.stage, minlength=len(sizes))
            print(
                f"| {mode}{label} | {staged.agreement.rate:.1%} | {share.mean():.1%} / "
                f"{np.median(share):.1%} / {share.max():.1%} | "
                f"{' / '.join(f'{c / args.pairs:.0%}' for c in counts)} |"
            )
    print()
    static = decision_agreement(
        coupled,
        fit.items,
        stages[-1],
        rows[0][1].misfit_sd,
        delta_rule("detected"),
        rng,
        rng.normal(0.0, 1.0, args.pairs),
        leaps(rng, args.pairs),
    )
    pair = coupled.answers(rng, np.array([0.0, 0.0]))
    print(
        f"{args.shared:.0%} of the luck shared (discordance of two equal checkpoints "
        f"{np.mean(pair[0] != pair[1]):.2f}): {sizes[-1]} static anchors agree on "
        f"{static.rate:.1%} in detected mode\n"
    )
    power_rows(world, fit.items, [(r[0], r[1].misfit_sd) for r in rows], rng, args)
    bias_rows(world, fit.items, rng, args)
    k_max = max(r[0] for r in rows)
    asked, decided, wrong = [], 0, 0
    misfit = rows[-1][1].misfit_sd
    for row in held[: args.adaptive]:
        result = adaptive_test(responder(row), fit.items, LEVEL, misfit_sd=misfit, max_items=k_max)
        asked.append(len(result.asked))
        if result.answer != "undecided":
            decided += 1
            wrong += (result.answer == "above") != (row.mean() >= LEVEL)
    n = len(asked)
    header = [f"level question (score >= {LEVEL:.0%}?) at 95%", "items asked", "decided"]
    print("| " + " | ".join([*header, "wrong among decided"]) + " |")
    print("|---|---|---|---|")
    print(
        f"| adaptive (max {k_max}) | median {np.median(asked):.0f}, mean {np.mean(asked):.0f} | "
        f"{decided / n:.0%} | {wrong}/{decided} |"
    )
    for k, *_, static_decided in rows:
        print(f"| static anchors | {k} | {static_decided:.0%} | |")
    if args.tiny_rounds > 0:
        from proxy_seconds import seconds_table  # bench/, beside this file

        print("\n" + "\n".join(seconds_table(args.tiny_rounds)))


def delta_rule(mode: str) -> DeltaRule:
    """The +5-point delta rule every agreement table decides."""
    return DeltaRule.model_validate(
        {"id": "r", "type": "delta", "benchmarks": ["t"], "threshold": 5.0, "mode": mode}
    )


def power_rows(
    world: World,
    fitted: ItemParams,
    anchor_sets: list[tuple[int, float]],
    rng: np.random.Generator,
    args: argparse.Namespace,
) -> None:
    """``tripwire policy check``'s MDE for a +5-point delta rule on an anchored task (from the
    anchor set's band at the fitted population's mean ability), checked: pairs whose baseline
    has that ability and whose true rise is threshold + MDE, decided by the engine on the
    anchors' estimates, should fire at the planned power (80%)."""
    policy = Policy.model_validate(
        {
            "schema_version": 1,
            "name": "bench",
            "proxy_suite": "proxy.yaml",
            "rules": [
                {
                    "id": "r",
                    "type": "delta",
                    "benchmarks": ["t"],
                    "threshold": 5.0,
                    "sequential": {"method": "none"},
                }
            ],
        }
    )
    rule = policy.rules[0]
    header = [
        "anchors",
        "policy check: change se / MDE (detected, 95%)",
        "measured: sd of the estimated change",
        "mean estimated change for the true",
        "fires at +5 + MDE",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|")
    for k, misfit in anchor_sets:
        index = choose_anchors(fitted, k, args.seed).index
        se = expected_se(index, fitted, misfit, 0.0)
        count = ItemCount(k, "anchors", estimate_se=se, shared_se=misfit)
        part = rule_power(rule, policy, {"t": count}, Planning(), "rules.0").parts[0]
        assert part.mde is not None and part.band is not None
        rise = rise_to(world, (5.0 + part.mde) / 100)
        found = decision_agreement(
            world,
            fitted,
            index,
            misfit,
            rule,
            rng,
            np.zeros(args.pairs),
            np.full(args.pairs, rise),
        )
        rate = float(found.anchored.mean())
        margin = 1.96 * np.sqrt(rate * (1 - rate) / args.pairs)
        answers = [world.answers(rng, np.array([0.0, rise])) for _ in range(args.pairs)]
        changes = np.array(
            [np.diff(estimate_full(a[:, index], index, fitted, misfit).score)[0] for a in answers]
        )
        print(
            f"| {k} | {part.band:.2f} / {part.mde:.1f} points | {100 * changes.std():.2f} | "
            f"{100 * changes.mean():.1f} for {5.0 + part.mde:.1f} | "
            f"{rate:.1%} +- {margin:.1%} (planned 80%) |"
        )
    print()


BIAS_ABILITIES = (-1.0, 0.0, 1.2, 2.0)


def bias_rows(
    world: World, fitted: ItemParams, rng: np.random.Generator, args: argparse.Namespace
) -> None:
    """Where the anchors' estimate is biased: its mean error (points) at a few true abilities,
    for 100 anchors chosen by information from the fitted parameters (what ``proxy fit``
    does), 100 random anchors with the same parameters, and 100 chosen with the world's true
    discrimination and difficulty; and the chosen anchors' true guessing floors."""
    k, reps = 100, 300
    oracle = ItemParams(world.items.a, world.items.b, fitted.floor)
    designs = [
        ("information, fitted parameters", fitted, choose_anchors(fitted, k, args.seed).index),
        ("random, fitted parameters", fitted, np.sort(rng.choice(args.items, k, replace=False))),
        ("information, true a and b", oracle, choose_anchors(oracle, k, args.seed).index),
    ]
    abilities = " | ".join(f"ability {t:+.1f}" for t in BIAS_ABILITIES)
    print(f"| 100 anchors: mean error of the estimate (points) | {abilities} | anchors' floor |")
    print("|---|" + "---|" * len(BIAS_ABILITIES) + "---|")
    for label, items, index in designs:
        cells = []
        for theta in BIAS_ABILITIES:
            answers = world.answers(rng, np.full(reps, theta))
            est = estimate_full(answers[:, index], index, items)
            cells.append(f"{100 * (est.score.mean() - world.p(np.array([theta])).mean()):+.2f}")
        floor = float(world.guessing[index].mean())
        print(f"| {label} | {' | '.join(cells)} | {floor:.3f} |")
    print(
        f"\nevery item's floor: mean {world.guessing.mean():.3f} (the fit assumes {fitted.floor})\n"
    )


def rise_to(world: World, change: float) -> float:
    """The ability rise (logits) from 0 that raises the expected full score by ``change``."""
    base = float(world.p(np.array([0.0])).mean())
    return float(brentq(lambda x: float(world.p(np.array([x])).mean()) - base - change, 0.0, 8.0))


if __name__ == "__main__":
    main()
