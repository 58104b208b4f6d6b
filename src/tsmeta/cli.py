"""`tsmeta` command line: the workflow stages without Snakemake.

tsmeta runs [FILE | --config FILE]                   list runs and experiments
tsmeta validate [FILE | --config FILE]               check a config, name the bad key
tsmeta plan [FILE | --config FILE]                   per-run cost estimate (tsmeta.cost)
tsmeta check [FILE | --config FILE]                  set aside unreadable result files
tsmeta claims [FILE | --config FILE] [--results DIR]  the claims table from existing results
tsmeta tasks     --run NAME --out tasks.nc            (or --set key=value ...)
tsmeta simulate  --run NAME --tasks tasks.nc --out sim.nc [--checkpoint F] [--device cuda]
tsmeta theory    --run NAME --tasks tasks.nc --out theory.nc

Without --config, config/config.yaml of the current folder is used, else the one of the
repository the package was installed from (editable install). --set KEY=VALUE sets a run
parameter on top of the config's defaults, or on top of the run given with --run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tsmeta import config as tsconfig
from tsmeta import stages
from tsmeta.cost import SIMULATION_THREADS
from tsmeta.params import RunParams
from tsmeta.paths import ResultPaths


def _key_value(text: str) -> tuple[str, object]:
    """argparse type of --set: KEY=VALUE, VALUE read as YAML (1e6 is a number)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. N=500), got {text!r}")
    try:
        return key.strip(), tsconfig.loads(value, f"--set {key.strip()}")
    except tsconfig.ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config_path(args) -> Path:
    given = getattr(args, "file", None)
    if given and args.config and Path(given) != Path(args.config):
        raise ValueError(f"two config files given: {given} and --config {args.config}; name one")
    chosen = given or args.config
    return Path(chosen) if chosen else tsconfig.default_config_path()


def _resolve(args) -> tuple[RunParams, dict, dict]:
    """Run parameters and settings from --config and --run, with --set key=value on top."""
    path = _config_path(args)
    cfg = tsconfig.load(path)
    tsconfig.validate(cfg)
    plan = tsconfig.expand(cfg)
    changes = dict(args.set)
    if args.run:
        if args.run not in plan.runs:
            raise SystemExit(f"tsmeta: run {args.run!r} is not in {path}; see `tsmeta runs`")
        params, sim, theory = (
            plan.runs[args.run],
            plan.sim_settings[args.run],
            plan.theory_settings[args.run],
        )
        if changes:
            params = RunParams.from_dict({**params.to_dict(), **changes})
    else:
        params = RunParams.from_dict({**(cfg.get("defaults") or {}), **changes})
        sim = dict(cfg.get("simulation") or {})
        theory = {**tsconfig.THEORY_DEFAULTS, **(cfg.get("theory") or {})}
    if getattr(args, "device", None):
        sim = {**sim, "device": args.device}
    if getattr(args, "checkpoint_every", None) is not None:
        sim = {**sim, "checkpoint_every": args.checkpoint_every}
    return params, sim, theory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tsmeta", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=None,
        help=f"config file (default: {tsconfig.DEFAULT_CONFIG} of the current folder, else of "
        "the repository)",
    )
    run_args = argparse.ArgumentParser(add_help=False)
    run_args.add_argument("--run", help="run name from the config (see `tsmeta runs`)")
    run_args.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_key_value,
        help="run parameter, on top of the config's defaults or of --run",
    )
    for command, text in (
        ("runs", "list runs and experiments"),
        ("validate", "validate a config file"),
        ("check", "open every result file; set aside unreadable ones"),
        ("plan", "per-run estimate of memory and time, each experiment's and the total"),
        ("claims", "evaluate the config's claims on its results: claims.nc, claims.md"),
    ):
        p = sub.add_parser(command, parents=[common], help=text)
        p.add_argument("file", nargs="?", metavar="FILE", help="config file (same as --config)")
        if command == "plan":
            p.add_argument("--memory-budget", type=float, help="MB per job (memory_budget)")
            p.add_argument("--max-runtime", type=float, help="minutes per job (max_runtime)")
        if command == "claims":
            p.add_argument(
                "--results", help="results folder to read and write (default: the config's)"
            )
    p = sub.add_parser("schema-doc", help="print the config keys as markdown tables")
    p.add_argument("--write", metavar="FILE", help="replace the generated tables of FILE instead")
    p = sub.add_parser("tasks", parents=[common, run_args], help="task-generation stage")
    p.add_argument("--out", required=True)
    p = sub.add_parser("simulate", parents=[common, run_args], help="simulation stage")
    p.add_argument("--tasks", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint", default=None, help="checkpoint file: resume from it if present")
    p.add_argument("--checkpoint-every", type=int, default=None, help="tasks between checkpoints")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    p.add_argument(
        "--threads",
        type=int,
        default=SIMULATION_THREADS,
        help="torch's CPU threads (default: %(default)s; 0: torch's own setting)",
    )
    p = sub.add_parser("theory", parents=[common, run_args], help="ODE theory stage")
    p.add_argument("--tasks", required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.command == "validate":
            path = _config_path(args)
            tsconfig.validate(tsconfig.load(path))
            print(f"{path}: valid")
        elif args.command == "check":
            cfg = tsconfig.load(_config_path(args))
            tsconfig.validate(cfg)
            return _check(tsconfig.expand(cfg))
        elif args.command == "claims":
            cfg = tsconfig.load(_config_path(args))
            tsconfig.validate(cfg)
            return _claims(tsconfig.expand(cfg), args.results)
        elif args.command == "schema-doc":
            if args.write:
                print(f"wrote {tsconfig.write_schema_doc(args.write)}")
            else:
                print(tsconfig.schema_markdown())
        elif args.command == "plan":
            print(_plan_table(args))
        elif args.command == "runs":
            cfg = tsconfig.load(_config_path(args))
            tsconfig.validate(cfg)
            plan = tsconfig.expand(cfg)
            for name, exp in plan.experiments.items():
                print(f"{name}: {len(exp.runs)} run(s)")
                for run in exp.runs:
                    print(f"  {run}")
        elif args.command == "tasks":
            params, _, _ = _resolve(args)
            stages.make_tasks(params, args.out)
        elif args.command == "simulate":
            params, sim, _ = _resolve(args)
            stages.set_threads(args.threads)
            stages.make_simulation(args.tasks, params, sim, args.out, checkpoint=args.checkpoint)
        elif args.command == "theory":
            params, _, theory = _resolve(args)
            stages.make_theory(args.tasks, params, theory, args.out)
    except (tsconfig.ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"tsmeta: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _plan_table(args) -> str:
    """The cost table of the config, with --memory-budget / --max-runtime on top of it."""
    from tsmeta.cost import cost_table

    cfg = tsconfig.load(_config_path(args))
    for key in ("memory_budget", "max_runtime"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    plan = tsconfig.validate(cfg)
    return cost_table(plan)


def _claims(plan: tsconfig.Plan, results: str | None) -> int:
    """The claims rule without Snakemake: every claim on the result files that exist."""
    if not plan.claims:
        raise ValueError("the config has no `claims`")
    paths = ResultPaths(results or plan.results)
    out_nc, out_md = paths.claims("nc"), paths.claims("md")
    inputs = paths.claim_inputs(plan)
    stages.make_claims(plan.claims, inputs, out_nc, out_md, paths.root, plan.claims_left_out)
    print(Path(out_md).read_text())
    print(f"wrote {out_nc} and {out_md}")
    return 0


def _check(plan: tsconfig.Plan) -> int:
    """Open every existing result file of the plan; set aside those that cannot be read."""
    from tsmeta.io import InputFileError, open_dataset, setting_aside_unreadable_files

    results = Path(plan.results)
    files = [Path(f) for f in ResultPaths(plan.results).result_files(plan)]
    files = [f for f in files if f.exists()]
    bad = []
    with setting_aside_unreadable_files():
        for path in files:
            try:
                open_dataset(path)
            except InputFileError as exc:
                bad.append(str(exc))
    for message in bad:
        print(f"tsmeta: {message}", file=sys.stderr)
    print(f"{len(files)} file(s) under {results}/ checked, {len(bad)} unreadable and set aside")
    if bad:
        print("make them again with the snakemake command you ran (e.g. snakemake --cores all)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
