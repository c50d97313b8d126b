"""Where a run computes: the torchrun process group, the device, the autocast, the GPU's peak.

torch is imported inside the functions: importing this module (as plan and ladder do, through
train.py) costs nothing.
"""
from __future__ import annotations

from proxyrank.errors import ParamsError
from proxyrank.training.params import TrainParams


def distributed() -> tuple[int, int]:
    """(rank, world size): under torchrun (WORLD_SIZE > 1) joins the process group once."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and os.environ.get("PROXYRANK_DDP_BACKEND") != "gloo"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def pick_device(t: TrainParams):
    import torch

    if t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ParamsError("train.device: 'cuda' asked for, but torch sees no CUDA device")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def autocast_for(t: TrainParams, device):
    """bf16 autocast on CUDA by default (the paper's setting); fp32 elsewhere unless asked."""
    import contextlib
    import functools

    import torch

    bf16 = t.precision == "bf16" or (t.precision == "auto" and device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


# Dense bf16 peak of known GPUs (vendor data sheets), for MFU; others log MFU as null.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12,
                   "L4": 121e12, "A10": 125e12}


def peak_flops(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
