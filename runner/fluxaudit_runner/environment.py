"""What the numbers were measured on: recorded in every partial and the report."""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version

import torch

from fluxaudit.contract import Env
from fluxaudit.results import Environment


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _nvidia_driver() -> str | None:
    try:
        with open("/proc/driver/nvidia/version") as f:
            first = f.readline()
        for token in first.split():
            if token.count(".") >= 1 and token.replace(".", "").isdigit():
                return token
    except OSError:
        pass
    return None


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def collect(device: torch.device) -> Environment:
    gpu: dict[str, object] = {}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = {
            "gpu_name": props.name,
            "gpu_memory_bytes": int(props.total_memory),
            "compute_capability": f"{props.major}.{props.minor}",
            "driver": _nvidia_driver(),
            "cuda": torch.version.cuda,
        }
    return Environment(
        device=device.type,
        cpu=_cpu_name(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        diffusers=_version("diffusers"),
        gguf=_version("gguf"),
        transformers=_version("transformers"),
        python=platform.python_version(),
        host=socket.gethostname(),
        node=os.environ.get(Env.NODE_NAME),
        **gpu,
    )
