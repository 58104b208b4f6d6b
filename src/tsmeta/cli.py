"""`tsmeta` command line: the workflow stages without Snakemake.

tsmeta runs [--config config/config.yaml]            list runs and experiments
tsmeta validate [--config FILE]                      check a config, name the bad key
tsmeta tasks     --run NAME --out tasks.nc            (or --set key=value ...)
tsmeta simulate  --run NAME --tasks tasks.nc --out sim.nc [--checkpoint F] [--device cuda]
tsmeta theory    --run NAME --tasks tasks.nc --out theory.nc
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from tsmeta import config as tsconfig
from tsmeta import stages
from tsmeta.params import RunParams

DEFAULT_CONFIG = "config/config.yaml"


def _parse_value(text: str):
    return yaml.safe_load(text)


def _resolve(args) -> tuple[RunParams, dict, dict]:
    """Run parameters and settings from --config/--run, or from --set key=value."""
    cfg = tsconfig.load(args.config)
    tsconfig.validate(cfg)
    plan = tsconfig.expand(cfg)
    if args.run:
        if args.run not in plan.runs:
            raise SystemExit(f"tsmeta: run {args.run!r} is not in {args.config}; see `tsmeta runs`")
        params, sim, theory = (
            plan.runs[args.run],
            plan.sim_settings[args.run],
            plan.theory_settings[args.run],
        )
    else:
        values = {**(cfg.get("defaults") or {})}
        values.update({k: _parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)})
        params = RunParams.from_dict(values)
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
        "--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)"
    )
    run_args = argparse.ArgumentParser(add_help=False)
    run_args.add_argument("--run", help="run name from the config (see `tsmeta runs`)")
    run_args.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="run parameter, on top of the config's defaults")  # fmt: skip
    sub.add_parser("runs", parents=[common], help="list runs and experiments")
    sub.add_parser("validate", parents=[common], help="validate a config file")
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
    p.add_argument("--threads", type=int, default=None)
    p = sub.add_parser("theory", parents=[common, run_args], help="ODE theory stage")
    p.add_argument("--tasks", required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.command == "validate":
            tsconfig.validate(tsconfig.load(args.config))
            print(f"{args.config}: valid")
        elif args.command == "schema-doc":
            if args.write:
                print(f"wrote {tsconfig.write_schema_doc(args.write)}")
            else:
                print(tsconfig.schema_markdown())
        elif args.command == "runs":
            cfg = tsconfig.load(args.config)
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
    except (tsconfig.ConfigError, ValueError, RuntimeError) as exc:
        print(f"tsmeta: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
