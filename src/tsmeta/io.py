"""netCDF input and output: atomic writes, self-describing attributes, clear errors."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xarray as xr

from tsmeta.activations import activation
from tsmeta.params import RunParams

# What every file states; "activation" comes from the run's line of tsmeta.activations.
CONVENTIONS = {
    "model": "meta-learning teacher-student, arXiv 2408.12545; conventions of docs/model.md",
    "activation": None,
    "student": "s(x) = (1/sqrt(K)) sum_k w_k g(J_k . x / sqrt(N))",
    "teacher": "y = (1/sqrt(M)) sum_n u_n g(B_t,n . x / sqrt(N)) + noise_std * zeta",
    "task_teacher": "B_t = gamma B + sqrt(1 - gamma^2) dB_t, dB_t i.i.d. N(0, 1)",
    "loss": "mean over the set of (1/2) (s - y)^2",
    "order_parameters": "R_kn = J_k.B_n/N, Q_kl = J_k.J_l/N, T_nm = B_n.B_m/N",
    "time": "alpha = t / N, one fresh task per outer step t",
    "outer_update": "J -= eta_J grad_J L_val; w0 -= (eta_w0 / N) grad_w L_val",
    "eps_meta": (
        "head adapted from w0 by the inner rule with the exact expected gradient (P -> infinity), "
        "error E_x (1/2)(s - y)^2 against the noiseless task teacher, averaged over tasks"
    ),
    "eps_meta_p": (
        "the same with the head adapted on the task's P noisy training examples (the few-shot "
        "error): eps_meta + (eta_w^2 / (2 P K)) tr(Sigma_bar A) for inner_steps = 1"
    ),
}

VARIABLES = {
    "B": ("meta-teacher weights", "1"),
    "J": ("initial student (meta-learner) weights", "1"),
    "w0": ("head initialisation w0", "1"),
    "R0": ("initial student-teacher overlap R_kn = J_k.B_n/N", "1"),
    "Q0": ("initial student-student overlap Q_kl = J_k.J_l/N", "1"),
    "T": ("teacher-teacher overlap T_nm = B_n.B_m/N", "1"),
    "R": ("student-teacher overlap R_kn = J_k.B_n/N", "1"),
    "Q": ("student-student overlap Q_kl = J_k.J_l/N", "1"),
    "eps_meta": ("meta-generalisation error, closed form in the order parameters", "1"),
    "eps_meta_mc": (
        "error after adapting on mc_adapt examples, plain Monte Carlo (no formula)",
        "1",
    ),
    "eps_meta_mc_err": ("standard error of eps_meta_mc over the sampled tasks", "1"),
    "eps_meta_p": (
        "few-shot error: meta-generalisation error with the head adapted on P examples, "
        "closed form in the order parameters",
        "1",
    ),
    "eps_meta_p_mc": ("few-shot error (head adapted on P examples), plain Monte Carlo", "1"),
    "eps_meta_p_mc_err": ("standard error of eps_meta_p_mc over the sampled tasks", "1"),
    "diverged": ("1 where the run left the valid domain (non-finite or exploding)", "1"),
    "R_sd": ("predicted finite-N noise sd of R about the seed's own ODE path (LNA)", "1"),
    "Q_sd": ("predicted finite-N noise sd of Q about the seed's own ODE path (LNA)", "1"),
    "w0_sd": ("predicted finite-N noise sd of w0 about the seed's own ODE path (LNA)", "1"),
    "eps_meta_sd": ("predicted finite-N noise sd of eps_meta (LNA, delta method)", "1"),
    "growth_rate_end": (
        "largest real part of the eigenvalues of the drift's Jacobian at the ODE's last "
        "record: the growth rate of small perturbations there, per unit alpha",
        "1",
    ),
    "alpha_diverged": ("alpha at which the run was marked diverged (NaN if it did not)", "1"),
    "t": ("outer step (task count)", "1"),
}

# The dimension schema, written once: k, l index student units, n, m teacher units, i inputs.
TRAJECTORY_DIMS = {  # sim.nc and theory.nc
    "R": ("seed", "alpha", "k", "n"),
    "Q": ("seed", "alpha", "k", "l"),
    "w0": ("seed", "alpha", "k"),
    "T": ("seed", "n", "m"),
    "eps_meta": ("seed", "alpha"),
    "eps_meta_mc": ("seed", "alpha"),
    "eps_meta_mc_err": ("seed", "alpha"),
    "eps_meta_p": ("seed", "alpha"),
    "eps_meta_p_mc": ("seed", "alpha"),
    "eps_meta_p_mc_err": ("seed", "alpha"),
    "diverged": ("seed",),
    "alpha_diverged": ("seed",),
    "t": ("alpha",),
    "R_sd": ("seed", "alpha", "k", "n"),
    "Q_sd": ("seed", "alpha", "k", "l"),
    "w0_sd": ("seed", "alpha", "k"),
    "eps_meta_sd": ("seed", "alpha"),
    "growth_rate_end": ("seed",),
}
TASKS_DIMS = {  # tasks.nc
    "B": ("seed", "n", "i"),
    "J": ("seed", "k", "i"),
    "w0": ("seed", "k"),
    "R0": ("seed", "k", "n"),
    "Q0": ("seed", "k", "l"),
    "T": ("seed", "n", "m"),
}


def order_parameter_dataset(
    values: dict, seeds, K: int, M: int, alpha=None, dims=TRAJECTORY_DIMS, attrs=None
) -> xr.Dataset:
    """A Dataset of `values` (name -> array) with the dims of `dims` and the shared coords
    seed, alpha (if given), k, l, n, m; long names and units from VARIABLES."""
    coords = {"seed": seeds}
    if alpha is not None:
        coords["alpha"] = alpha
    coords.update(k=np.arange(K), l=np.arange(K), n=np.arange(M), m=np.arange(M))
    ds = xr.Dataset(
        {name: (dims[name], value) for name, value in values.items()},
        coords=coords,
        attrs=attrs or {},
    )
    return describe(ds)


class InputFileError(RuntimeError):
    """A stage was given a file that is missing, truncated or not what it expects."""


def params_to_attrs(params: RunParams) -> dict:
    """Every parameter as a netCDF attribute (None -> 'none'), plus the full set as JSON."""
    attrs = {f"param_{k}": ("none" if v is None else v) for k, v in params.to_dict().items()}
    attrs["params_json"] = json.dumps(params.to_dict(), sort_keys=True)
    attrs["run_name"] = params.name()
    conventions = {**CONVENTIONS, "activation": activation(params.activation).formula}
    attrs.update({f"convention_{k}": v for k, v in conventions.items()})
    return attrs


def params_from_attrs(attrs: dict) -> RunParams:
    return RunParams.from_dict(json.loads(attrs["params_json"]))


def describe(ds: xr.Dataset) -> xr.Dataset:
    """Attach long names and units to the variables this project knows."""
    for name, (long_name, units) in VARIABLES.items():
        if name in ds:
            ds[name].attrs.update(long_name=long_name, units=units)
    if "alpha" in ds.coords:
        ds["alpha"].attrs.update(long_name="time alpha = t / N", units="1")
    return ds


def versions() -> dict:
    import numpy
    import scipy
    import torch

    import tsmeta

    return {
        "version_tsmeta": tsmeta.__version__,
        "version_python": platform.python_version(),
        "version_numpy": numpy.__version__,
        "version_scipy": scipy.__version__,
        "version_torch": torch.__version__,
        "version_xarray": xr.__version__,
    }


def umask() -> int:
    """The process's umask (Linux: read, not set; elsewhere set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path in the folder of `path` to write to; when the block ends it gets
    the permissions of a newly created file (0666 less the umask, typically 0644; the
    temporary file itself is private) and is renamed onto `path`. Removed if the block
    raises, so `path` is never left half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file in the same folder, then rename."""
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
    return Path(path)


# How to make a file again after it was set aside (printed in the error messages).
REMAKE_HINT = (
    "run the same snakemake command again (e.g. `snakemake --cores all`, with your "
    "--configfile if you gave one) and it makes the file anew; outside Snakemake, rerun the "
    "tsmeta stage that makes it"
)
SET_ASIDE_SUFFIX = ".unreadable"
_SET_ASIDE = [False]  # set by `setting_aside_unreadable_files` (Snakemake jobs)


@contextmanager
def setting_aside_unreadable_files():
    """Inside the block, `open_dataset` renames an unreadable file to <name>.unreadable
    before it raises, so that rerunning the workflow makes the file again (a Snakemake job
    remakes a missing output, never a corrupt one)."""
    _SET_ASIDE.append(True)
    try:
        yield
    finally:
        _SET_ASIDE.pop()


def set_aside(path: str | os.PathLike, suffix: str = SET_ASIDE_SUFFIX) -> Path | None:
    """Rename `path` to path + suffix (replacing an older one); None if it is gone already
    (a job running beside this one set it aside first)."""
    path = Path(path)
    target = path.with_name(path.name + suffix)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target


def open_dataset(path: str | os.PathLike, stage: str | None = None, required=()) -> xr.Dataset:
    """Load a netCDF file into memory, with an error naming the file if it is unusable (and
    saying how to make it again; inside `setting_aside_unreadable_files`, set aside first)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file does not exist; {REMAKE_HINT}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4/HDF5 raise many types for a truncated file
        what = f"{path}: not a readable netCDF file ({type(exc).__name__}: {exc})"
        moved = set_aside(path) if _SET_ASIDE[-1] else None
        if moved is not None:
            raise InputFileError(f"{what}; moved aside to {moved}; {REMAKE_HINT}") from exc
        raise InputFileError(f"{what}; delete it (or move it aside), then {REMAKE_HINT}") from exc
    if stage is not None and ds.attrs.get("stage") != stage:
        raise InputFileError(
            f"{path}: expected a tsmeta '{stage}' file, found stage={ds.attrs.get('stage')!r}"
        )
    missing = [name for name in required if name not in ds.variables]
    if missing:
        raise InputFileError(f"{path}: missing variable(s) {missing}")
    return ds
