"""Command line of the model zoo.

    python -m attnlib.zoo train --block se          # train one block (and write weights + card)
    python -m attnlib.zoo train --all --jobs 2      # the baseline and every block, seeds 0, 1, 2
    python -m attnlib.zoo score --all --jobs 2      # measure every seed's test accuracy and localisation
    python -m attnlib.zoo evaluate --all --json     # re-measure the shipped weights; per model over seeds
    python -m attnlib.zoo observe                   # the papers' observations -> weights/observations.json
    python -m attnlib.zoo list                      # the models with shipped weights
    python -m attnlib.zoo export-onnx --out DIR     # every model (seed 0) as ONNX with its maps (live pages)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import checkpoint, pipeline


def _names(args) -> list[str]:
    if args.all:
        return pipeline.all_models()
    if not args.block:
        raise SystemExit("give --block NAME (repeatable) or --all")
    return list(args.block)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attnlib.zoo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train zoo models and write their weights and cards")
    t.add_argument("--block", action="append", help="registry name, or 'baseline' (repeatable)")
    t.add_argument("--all", action="store_true", help="the baseline and every registered block")
    t.add_argument("--steps", type=int, default=pipeline.train.STEPS)
    t.add_argument("--seeds", type=int, nargs="+", default=list(pipeline.train.SEEDS), help="model seeds")
    t.add_argument("--jobs", type=int, default=1, help="models trained at once (processes)")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--out", default=None, help="directory for weights and cards (default: the shipped ones)")
    t.add_argument("--skip-existing", action="store_true", help="keep models that already have a card")
    sc = sub.add_parser("score", help="measure saved models on the test scenes and write it into their cards")
    sc.add_argument("--block", action="append")
    sc.add_argument("--all", action="store_true", help="every model with weights in the directory")
    sc.add_argument("--dir", default=None)
    sc.add_argument("--threads", type=int, default=None)
    sc.add_argument("--jobs", type=int, default=1, help="processes")
    sc.add_argument("--missing", action="store_true", help="only the seeds whose card has no scores yet")
    e = sub.add_parser("evaluate", help="accuracy and scores of trained models on fresh test scenes")
    e.add_argument("--block", action="append")
    e.add_argument("--all", action="store_true", help="every model with weights in the directory")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--dir", default=None, help="weights directory (default: the shipped ones)")
    ob = sub.add_parser("observe", help="re-test the papers' observations on every seed; write observations.json")
    ob.add_argument("--only", action="append", help="one observation (repeatable); default all")
    ob.add_argument("--dir", default=None)
    ob.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds (default: all)")
    e.add_argument("--from-cards", action="store_true",
                   help="summarise the numbers the cards recorded instead of re-measuring every seed")
    e.add_argument("--jobs", type=int, default=1, help="processes for re-measuring")
    sub.add_parser("list", help="models with weights")
    ex = sub.add_parser("export-onnx", help="export every zoo model (seed 0) to ONNX with its maps as outputs")
    ex.add_argument("--out", required=True, help="directory for <name>.onnx and manifest.json")
    ex.add_argument("--block", action="append", help="only these models (repeatable); default all")
    ex.add_argument("--jobs", type=int, default=1, help="processes exporting at once")
    ex.add_argument("--fp32", action="store_true", help="keep float32 initializers (default: lossless float16)")
    ex.add_argument("--no-cache", action="store_true", help="re-export even when the cache holds the graph")
    args = p.parse_args(argv)

    if args.command == "list":
        for n in checkpoint.available():
            print(n)
        return 0
    if args.command == "export-onnx":
        from . import onnx_export

        if args.jobs < 1:
            raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
        onnx_export.export_all(args.out, args.block, fp16=not args.fp32, use_cache=not args.no_cache,
                               jobs=args.jobs, log=lambda m: print(m, file=sys.stderr, flush=True))
        return 0
    if args.command == "train":
        for flag in ("steps", "jobs", "threads"):
            v = getattr(args, flag)
            if v is not None and v < 1:
                raise SystemExit(f"--{flag} must be at least 1, got {v}")
        if any(s < 0 for s in args.seeds):
            raise SystemExit(f"--seeds must be non-negative ints, got {args.seeds}")
        t0 = time.perf_counter()
        pipeline.train_many(_names(args), tuple(args.seeds), steps=args.steps, jobs=args.jobs,
                            threads=args.threads or 1, directory=args.out, device=args.device,
                            skip_existing=args.skip_existing,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return 0
    if args.command == "score":
        names = checkpoint.available(args.dir, scored=False) if args.all else _names(args)
        pairs = [(n, sd) for n in names for sd in checkpoint.seeds(n, args.dir)
                 if checkpoint.paths(n, args.dir, sd)[0].exists()
                 and not (args.missing and "scores" in checkpoint.read_card(n, args.dir, sd))]
        t0 = time.perf_counter()
        pipeline.score_many(pairs, jobs=args.jobs, threads=args.threads or 1, directory=args.dir,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"scored in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return 0
    if args.command == "observe":
        from . import observations

        res = observations.run_all(args.dir, args.only, log=lambda m: print(m, file=sys.stderr, flush=True),
                                   seeds=args.seeds)
        if args.only or args.seeds:  # keep the other observations and seeds already in the file
            try:
                res = observations.merge(observations.load_all(args.dir), res)
            except checkpoint.WeightsError:
                pass
        print(observations.save_all(res, args.dir), file=sys.stderr)
        return 0
    names = checkpoint.available(args.dir) if args.all else _names(args)
    results = pipeline.evaluate_all(names, directory=args.dir, fresh=not args.from_cards, jobs=args.jobs,
                                    log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(pipeline.format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
