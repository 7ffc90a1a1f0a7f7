"""Parsl sites: a small YAML file (``execution/sites/local.yaml``, ``slurm.yaml``, ``pbs.yaml``) made into a
Parsl `~parsl.config.Config` with one HighThroughputExecutor.

A site says where the workers run (this machine, Slurm or PBS jobs), how many nodes per job (a *block*), how
many worker processes per node, and what to run on a node before the workers start.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigurationError

__all__ = ["PROVIDERS", "SiteConfig", "load_site", "site_path"]

PROVIDERS = ("local", "slurm", "pbs")
EXECUTOR_LABEL = "opendrp"


@dataclasses.dataclass
class SiteConfig:
    """Where and how Parsl runs openDRP's workers.

    Attributes
    ----------
    provider : `str`
        ``local`` (this machine), ``slurm`` or ``pbs``.
    nodes : `int`
        Nodes per block (one batch job).
    cores : `int`
        Worker processes per node; each runs one quantum at a time (1 core each).
    max_blocks : `int`
        Blocks (batch jobs) Parsl may hold at once.
    walltime : `str`
        Wall-time limit of a block, ``HH:MM:SS`` (batch providers).
    partition : `str`, optional
        Slurm partition.
    queue : `str`, optional
        PBS queue.
    account : `str`, optional
        Account or project charged (Slurm ``-A``, PBS ``-A``).
    mem_per_node_gb : `int`, optional
        Memory requested per node (GB; Slurm ``--mem``).
    exclusive : `bool`
        Request whole nodes (Slurm ``--exclusive``).
    select_options : `str`
        Appended to the PBS select statement (``:mem=128gb``).
    scheduler_options : `str`
        Extra ``#SBATCH`` / ``#PBS`` lines.
    worker_init : `str`
        Shell lines run on each node before the workers start (activate the environment).
    heartbeat_s : `int`
        Seconds without a heartbeat after which Parsl declares a worker node lost (its quanta fail as
        transient and are retried).
    """

    provider: str = "local"
    nodes: int = 1
    cores: int = 1
    max_blocks: int = 1
    walltime: str = "01:00:00"
    partition: str | None = None
    queue: str | None = None
    account: str | None = None
    mem_per_node_gb: int | None = None
    exclusive: bool = True
    select_options: str = ""
    scheduler_options: str = ""
    worker_init: str = ""
    heartbeat_s: int = 120

    def validate(self) -> None:
        """Raise `ConfigurationError` naming the offending field."""
        if self.provider not in PROVIDERS:
            raise ConfigurationError(f"site provider {self.provider!r} is unknown", fix=f"one of {PROVIDERS}")
        for name in ("nodes", "cores", "max_blocks"):
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(f"site field {name} must be >= 1", where=name)
        if self.provider == "local" and self.nodes != 1:
            raise ConfigurationError("the local provider has one node", where="nodes", fix="nodes: 1")
        parts = str(self.walltime).split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ConfigurationError(f"walltime {self.walltime!r} is not HH:MM:SS", where="walltime")

    @property
    def workers(self) -> int:
        """Worker processes when every block is running: quanta that can run at once."""
        return self.nodes * self.cores * self.max_blocks

    def parsl_config(self, run_dir: Path) -> Any:
        """The Parsl `~parsl.config.Config`: one HighThroughputExecutor on this site's provider."""
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor
        from parsl.launchers import MpiExecLauncher, SingleNodeLauncher, SrunLauncher

        # the driver's environment first on PATH: Parsl starts `process_worker_pool.py` from PATH
        init = f"export PATH={Path(sys.executable).parent}:$PATH\n{self.worker_init}".strip()
        provider: Any
        address: str | None
        if self.provider == "local":
            from parsl.providers import LocalProvider

            provider = LocalProvider(
                init_blocks=1, min_blocks=0, max_blocks=1, worker_init=init, launcher=SingleNodeLauncher()
            )
            address = "127.0.0.1"
        elif self.provider == "slurm":
            from parsl.providers import SlurmProvider

            provider = SlurmProvider(
                partition=self.partition,
                account=self.account,
                nodes_per_block=self.nodes,
                cores_per_node=self.cores,
                mem_per_node=self.mem_per_node_gb,
                init_blocks=0,
                min_blocks=0,
                max_blocks=self.max_blocks,
                walltime=self.walltime,
                scheduler_options=self.scheduler_options,
                worker_init=init,
                exclusive=self.exclusive,
                launcher=SrunLauncher() if self.nodes > 1 else SingleNodeLauncher(),
            )
            address = None  # Parsl finds an address the compute nodes can reach
        else:
            from parsl.providers import PBSProProvider

            provider = PBSProProvider(
                account=self.account,
                queue=self.queue,
                scheduler_options=self.scheduler_options,
                select_options=self.select_options,
                worker_init=init,
                nodes_per_block=self.nodes,
                cpus_per_node=self.cores,
                init_blocks=0,
                min_blocks=0,
                max_blocks=self.max_blocks,
                walltime=self.walltime,
                launcher=MpiExecLauncher() if self.nodes > 1 else SingleNodeLauncher(),
            )
            address = None
        htex = HighThroughputExecutor(
            label=EXECUTOR_LABEL,
            provider=provider,
            address=address,
            cores_per_worker=1.0,
            max_workers_per_node=self.cores,
            heartbeat_threshold=self.heartbeat_s,
            heartbeat_period=max(1, min(30, self.heartbeat_s // 4)),
            worker_logdir_root=str(run_dir / "workers"),
            # the interchange runs on the driver's machine, with the driver's Python (PATH may lack the venv)
            interchange_launch_cmd=[sys.executable, "-m", "parsl.executors.high_throughput.interchange"],
        )
        return Config(
            executors=[htex],
            run_dir=str(run_dir),
            retries=0,  # retries are openDRP's (by failure class), not Parsl's
            strategy="simple",
            max_idletime=60.0,
            initialize_logging=True,
            usage_tracking=0,
        )


def site_path(site: str | os.PathLike[str]) -> Path:
    """The YAML file of a site: a path, or the name of a site shipped with openDRP (``local``)."""
    path = Path(site)
    if path.exists():
        return path
    shipped = Path(str(resources.files("opendrp.execution") / "sites" / f"{site}.yaml"))
    if shipped.exists():
        return shipped
    raise ConfigurationError(
        f"no Parsl site {str(site)!r}",
        where="--site",
        fix="give a site YAML file, or one of: local, slurm, pbs (opendrp/execution/sites/)",
    )


def load_site(site: str | os.PathLike[str] | None) -> SiteConfig:
    """Read and validate a site YAML file (default: ``local``)."""
    path = site_path(site or "local")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read the Parsl site YAML ({exc})", where=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigurationError(
            f"a site YAML is a mapping of fields, not a {type(doc).__name__}", where=str(path)
        )
    known = {f.name for f in dataclasses.fields(SiteConfig)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown site field(s) {unknown}", where=str(path), fix=f"known: {sorted(known)}"
        )
    cfg = SiteConfig(**{k: v for k, v in doc.items() if v is not None or k in known})
    cfg.worker_init = cfg.worker_init or ""
    cfg.scheduler_options = cfg.scheduler_options or ""
    cfg.select_options = cfg.select_options or ""
    cfg.validate()
    return cfg
