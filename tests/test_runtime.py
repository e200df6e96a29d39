"""gan.runtime.resolve_device: every device name a user can type, on a machine that has or
lacks each kind of accelerator (the accelerators are simulated: the tests run on any CPU)."""

from __future__ import annotations

import pytest
import torch

from gan import runtime
from gan.runtime import resolve_device


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA GPUs (and say whether MPS is there)."""
    def have(n: int, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(runtime, "_mps_available", lambda: mps)
    return have


def test_auto_takes_a_gpu_else_mps_for_inference_else_the_cpu(gpus):
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    gpus(0, mps=True)
    assert resolve_device("auto", auto_mps=True) == torch.device("mps")
    assert resolve_device("auto") == torch.device("cpu")  # training stays off MPS unless asked
    gpus(0)
    assert resolve_device("auto", auto_mps=True) == torch.device("cpu")


def test_cuda_n_names_a_gpu_and_cuda_is_the_local_rank(gpus):
    gpus(4)
    assert resolve_device("cuda:3") == torch.device("cuda", 3)
    assert resolve_device("CUDA:1") == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=2) == torch.device("cuda", 2)


@pytest.mark.parametrize("name, have, message", [
    ("cuda:2", 2, r"device cuda:2: only 2 CUDA GPU\(s\) are visible \(cuda:0\.\.cuda:1\)"),
    ("cuda:1", 1, r"only 1 CUDA GPU\(s\) are visible \(cuda:0\)"),
    ("cuda", 0, r"device cuda: no CUDA GPU is visible"),
    ("mps", 0, r"device mps: Apple's Metal \(MPS\) backend is not available"),
])
def test_a_device_that_is_not_there_is_named(gpus, name, have, message):
    gpus(have)
    with pytest.raises(RuntimeError, match=message):
        resolve_device(name)


@pytest.mark.parametrize("name", ["tpu", "cuda:", "cuda:x", "gpu0", ""])
def test_an_unknown_device_lists_the_accepted_forms(name):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


def test_threads_come_from_the_option_then_ppe_threads_then_the_idle_cores(monkeypatch):
    from gan.runtime import THREADS_VARIABLE, choose_threads

    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert choose_threads(3) == 3
    assert choose_threads(auto=False) is None  # train: torch's default unless asked
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr("gan.runtime._other_runnable", lambda: 6)
    assert choose_threads() == 2  # 8 cores, 6 of them busy
    monkeypatch.setattr("gan.runtime._other_runnable", lambda: 20)
    assert choose_threads() == 1
    monkeypatch.setattr("gan.runtime._other_runnable", lambda: 0)
    assert choose_threads() == 8
    monkeypatch.setenv(THREADS_VARIABLE, "4")
    assert choose_threads() == 4 and choose_threads(auto=False) == 4 and choose_threads(2) == 2
    monkeypatch.setenv(THREADS_VARIABLE, "many")
    with pytest.raises(ValueError, match="PPE_THREADS='many': must be a whole number"):
        choose_threads()


def test_the_other_runnable_processes_are_read_from_proc_loadavg(tmp_path):
    from gan.runtime import _other_runnable

    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.87 0.98 1.15 3/211 12345\n")
    assert _other_runnable(str(loadavg)) == 2  # this process left out
    loadavg.write_text("0.10 0.10 0.10 1/180 12345\n")
    assert _other_runnable(str(loadavg)) == 0
