"""torchrun environment helpers: rank queries, process-group setup, device choice, launching.

Cheap to import: torch is imported inside the functions that need it, because every CLI
invocation and every torchrun rank imports this module (``sslcore plugins`` must stay fast).

Before the process group exists, the rank helpers read the variables torchrun exports
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), so validation can run on every rank before any
expensive step; afterwards they ask ``torch.distributed``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from sslcore.errors import ConfigError

if TYPE_CHECKING:
    import torch


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer; "
                          "launch with torchrun, which sets it") from None


def _group_ready() -> bool:
    # If torch.distributed was never imported, no process group can exist: skip the import.
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return _group_ready() and world_size() > 1


def rank() -> int:
    """Global rank of this process (0 when not launched by torchrun)."""
    if _group_ready():
        import torch.distributed as dist

        return dist.get_rank()
    return _env_int("RANK", 0)


def world_size() -> int:
    """Number of ranks in the job (1 when not launched by torchrun)."""
    if _group_ready():
        import torch.distributed as dist

        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    """Rank of this process on its node; picks the GPU (0 when not launched by torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """True on global rank 0: the only rank that logs, checkpoints and shows progress."""
    return rank() == 0


def pick_device(prefer: str | None = None) -> torch.device:
    """The device: ``prefer`` if given, else ``cuda:LOCAL_RANK`` if CUDA is usable, else cpu.

    Raises:
        ConfigError: ``prefer`` names a CUDA device but CUDA is not available.
    """
    import torch

    if prefer not in (None, "", "auto"):
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {prefer!r} was requested but CUDA is not available on "
                              "this machine; use device 'cpu' or leave it unset")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(prefer: str | torch.device | None = None) -> torch.device:
    """Join the torchrun process group if there is one, and return this rank's device.

    The device is ``pick_device(prefer)``: ``cuda:LOCAL_RANK`` when CUDA is available, else
    cpu. The backend follows it: NCCL for CUDA, gloo for CPU (CPU-only machines and tests).
    Idempotent: a second call, or a call when the group already exists, only returns the device.
    """
    import torch
    import torch.distributed as dist

    device = pick_device(str(prefer) if prefer is not None else None)
    if world_size() > 1 and dist.is_available() and not dist.is_initialized():
        store = _attempt_store()
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL needs one GPU per rank, set before init
            dist.init_process_group(backend="nccl", device_id=device, **store)
        else:
            dist.init_process_group(backend="gloo", **store)
    return device


def _attempt_store() -> dict:
    """init_process_group arguments with a store private to this torchrun restart attempt.

    torchrun shares its rendezvous store with the workers, and that store outlives a restart:
    restarted workers would read the dead workers' addresses (gloo: "connection refused";
    pytorch/pytorch#135712). Keys are prefixed with the attempt number, which torchrun sets
    the same on every rank of a restarted group. Outside torchrun: the default env:// init.
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None:
        return {}
    import torch.distributed as dist

    store, rank_, world = next(dist.rendezvous("env://"))
    return {"store": dist.PrefixStore(f"sslcore/attempt{attempt}", store), "rank": rank_,
            "world_size": world}


def cleanup_distributed() -> None:
    """Destroy the process group if this process joined one (safe to call always)."""
    if _group_ready():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank; a no-op without a process group."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True when ``flag`` is set on any rank (one all-reduce); ``flag`` itself without a group.

    How the ranks agree to stop together when a signal reached only some of them.
    """
    if not is_distributed():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(flag)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0, keeping gradients to every rank's part.

    For global contrastive negatives: each rank's loss sees all ranks' embeddings, and the
    backward pass sends each rank the gradient of its own rows. Without a process group
    (one process) it returns ``t`` unchanged. Rank ``r``'s rows start at ``r * len(t)``.
    """
    if not is_distributed():
        return t
    import torch.distributed as dist
    from torch.distributed._functional_collectives import all_gather_single_autograd

    # The autograd variant: its backward reduce-scatters the gradients to their owners.
    return all_gather_single_autograd(t.contiguous(), gather_dim=0, group=dist.group.WORLD)


def all_reduce_mean_(t: torch.Tensor) -> torch.Tensor:
    """Average ``t`` in place over ranks (no gradient), e.g. a DINO center; a no-op alone."""
    if is_distributed():
        import torch.distributed as dist

        dist.all_reduce(t)  # gloo has no AVG: sum, then divide
        t /= world_size()
    return t


def torchrun_command(module_args: list[str], nproc: int, nnodes: int = 1,
                     rdzv_endpoint: str | None = None, max_restarts: int = 0) -> list[str]:
    """The ``python -m torch.distributed.run ... -m sslcore <module_args>`` command line.

    One node without an endpoint uses ``--standalone`` (a local rendezvous on a free port);
    several nodes rendezvous through the c10d backend at ``rdzv_endpoint`` (``host:port``),
    and every node runs the same command.

    Raises:
        ConfigError: a count is below 1, or several nodes are asked for without an endpoint.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if nnodes < 1:
        raise ConfigError(f"--nnodes must be at least 1, got {nnodes}")
    if max_restarts < 0:
        raise ConfigError(f"--max-restarts must be 0 or more, got {max_restarts}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes == 1 and not rdzv_endpoint:
        cmd.append("--standalone")
    elif not rdzv_endpoint:
        raise ConfigError(f"--nnodes {nnodes} needs a rendezvous endpoint host:port that every "
                          "node can reach (e.g. --rdzv-endpoint 10.0.0.1:29400)")
    else:
        cmd += ["--nnodes", str(nnodes), "--rdzv_backend", "c10d",
                "--rdzv_endpoint", rdzv_endpoint]
    cmd += ["--max_restarts", str(max_restarts), "-m", "sslcore", *module_args]
    return cmd


def launch_torchrun(module_args: list[str], nproc: int, nnodes: int = 1,
                    rdzv_endpoint: str | None = None, max_restarts: int = 0) -> int:
    """Run ``sslcore <module_args>`` under torchrun as a subprocess; return its exit code.

    torchrun (not a hand-written launcher) sets RANK/WORLD_SIZE/LOCAL_RANK, restarts failed
    workers up to ``max_restarts`` times and tears every rank down when one fails.

    A SIGTERM or SIGINT sent to this process alone (a scheduler signalling the job's main
    process) is passed on to torchrun, which passes it to its workers: they finish their step,
    checkpoint and exit. The return value is then ``128 + signal`` unless torchrun still
    ended cleanly. (torchrun starts each worker in its own session, so a signal to this
    process group reaches the workers only through torchrun.)
    """
    import signal
    import threading

    cmd = torchrun_command(module_args, nproc, nnodes, rdzv_endpoint, max_restarts)
    received: list[int] = []
    proc = subprocess.Popen(cmd)

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    stops = (signal.SIGTERM, signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in stops} if main else {}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:  # this process is being torn down: do not leave torchrun
            proc.terminate()
            proc.wait()
    return 128 + received[0] if received and code != 0 else code
