"""Process-level settings that the heavy numeric work of several stages needs."""

from __future__ import annotations

import ctypes
import os
import re

import torch

from gan.config import PRECISIONS


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


THREADS_VARIABLE = "PPE_THREADS"  # the environment's say in how many CPU threads torch uses


def choose_threads(requested: int = 0, auto: bool = True) -> int | None:
    """CPU threads for torch: ``requested`` when > 0, else the PPE_THREADS environment
    variable when set, else with ``auto`` the cores the other work on the machine leaves idle
    (cores minus the other processes running now, at least 1), else None (torch's default:
    every core). torch's threads spin while they wait, so on a busy machine all of them cost
    more than one (bench/README.md, "enhance: threads and start-up"). ValueError names a bad
    PPE_THREADS."""
    if requested > 0:
        return requested
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{THREADS_VARIABLE}={text!r}: must be a whole number of threads "
                             ">= 1 (or unset)")
        return int(text)
    if not auto:
        return None
    cores = os.cpu_count() or 1
    return max(1, min(cores, cores - _other_runnable()))


def _other_runnable(loadavg: str = "/proc/loadavg") -> int:
    """Processes running or ready to run now, this one left out (Linux's /proc/loadavg counts
    them at this instant; the 1-minute load average, where that file is missing, lags by up to
    a minute and counts what just finished)."""
    try:
        with open(loadavg) as handle:
            running = int(handle.read().split()[3].split("/")[0])
        return max(0, running - 1)
    except (OSError, ValueError, IndexError):
        try:
            return round(os.getloadavg()[0])
        except OSError:  # no load average on this system
            return 0


def apply_threads(requested: int = 0, auto: bool = True) -> int:
    """``choose_threads`` applied to torch; the number torch now uses."""
    threads = choose_threads(requested, auto)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str, local_rank: int = 0, auto_mps: bool = False) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> the torch device. 'cuda' is GPU
    ``local_rank`` (a process's own GPU under torchrun); 'auto' takes a CUDA GPU, else (with
    ``auto_mps``: inference, which MPS runs; training there is untested) Apple's MPS, else the
    CPU. A device that is not there is a RuntimeError saying what is."""
    name = str(name).strip().lower()
    if name == "auto":
        name = ("cuda" if torch.cuda.is_available()
                else "mps" if auto_mps and _mps_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise RuntimeError("device mps: Apple's Metal (MPS) backend is not available here; "
                               "use auto or cpu")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise ValueError(f"device must be {DEVICES}, got {name!r}")
    index = int(match[1]) if match[1] is not None else local_rank
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise RuntimeError(f"device {name}: no CUDA GPU is visible; use auto or cpu")
    if index >= count:
        raise RuntimeError(f"device {name}: only {count} CUDA GPU(s) are visible "
                           f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())




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


INFERENCE_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_inference_precision(name: str, device: torch.device) -> torch.dtype | None:
    """'auto' | 'fp32' | 'bf16' | 'fp16' -> the autocast dtype of inference, None for fp32.

    auto: bf16 where the hardware computes it (a CUDA GPU that supports it, a CPU with
    AVX512-BF16/AMX), else fp32. fp16 only on a CUDA GPU: CPUs have no fast fp16 convolutions
    and its range (65,504) is the risk bf16 avoids. A choice the device cannot run is a
    ValueError saying what it can."""
    if name not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got "
                         f"{name!r}")
    if name == "fp16":
        if device.type != "cuda":
            raise ValueError(f"precision fp16 needs a CUDA GPU (the device is {device}); use "
                             "bf16 or fp32")
        return torch.float16
    if name == "auto" and device.type not in ("cpu", "cuda"):
        return None  # MPS: fp32, the one precision every MPS op runs in
    return resolve_precision(name, device)


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
    threads = torch.get_num_threads()
    return f"{name}, {threads} thread{'' if threads == 1 else 's'}, {bf16}"


def describe_device(device: torch.device) -> str:
    """The machine a run used, for its provenance: the GPU's name on CUDA, else describe_cpu()."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return describe_cpu()
