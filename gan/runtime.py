"""Process-level settings that the heavy numeric work of several stages needs."""

from __future__ import annotations

import ctypes

import torch


def keep_freed_memory(mmap_threshold: int = 512 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc reuse freed large blocks instead of returning them to the kernel.

    Extraction chunks, training steps and inference passes allocate the same 10-250 MB arrays
    over and over. By default glibc maps and unmaps each one and the kernel zero-fills every page
    again, which costs more system time than the work itself on a small CPU (bench/README.md has
    the figures). Raising the mmap and trim thresholds keeps those blocks in the heap for the
    next use; memory stays bounded by one step's working set. Process-wide, so only entry
    points (stages, benches) call it. Returns False (and changes nothing) where glibc is not the
    allocator.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from malloc.h
    return bool(libc.mallopt(m_mmap_threshold, mmap_threshold)
                and libc.mallopt(m_trim_threshold, trim_threshold))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' | 'cpu' | 'cuda' (a params value) -> the torch device; CUDA GPU ``local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device is cuda but no CUDA GPU is visible; set it to auto or cpu")
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device("cpu")


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16).

    Without it oneDNN emulates bf16 convolutions and they are slower than fp32 (20x, measured
    on an AVX2-only EPYC), so 'auto' must not pick bf16 there. Read from the kernel's CPU flags;
    False where they cannot be read (not Linux).
    """
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """'auto' | 'fp32' | 'bf16' (a params value) -> the autocast dtype, None for plain fp32.

    auto: bf16 on a CUDA GPU that supports it and on a CPU with bf16 hardware, else fp32.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        else:
            name = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    return torch.bfloat16 if name == "bf16" else None


def describe_cpu(cpuinfo: str = "/proc/cpuinfo") -> str:
    """'AMD EPYC 9R14, 2 threads, avx512_bf16' style: what a model card or a benchmark records
    as the machine (the model name, the threads torch uses, native bf16 or not)."""
    name = "unknown CPU"
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("model name"):
                    name = " ".join(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    bf16 = "native bf16" if cpu_has_native_bf16(cpuinfo) else "no native bf16"
    return f"{name}, {torch.get_num_threads()} threads, {bf16}"


def describe_device(device: torch.device) -> str:
    """The machine a run used, for its provenance: the GPU's name on CUDA, else describe_cpu()."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return describe_cpu()
