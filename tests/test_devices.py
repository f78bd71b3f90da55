"""Device picking with a simulated GPU count: concurrent jobs on one workstation each get their own
GPU through per-device lock files, and a scheduler's allocation is respected."""
import multiprocessing as mp
import os
import time

import pytest
import torch

from contrastlab.operations import devices
from contrastlab.operations.devices import DevicesBusy, DeviceUnavailable, pick_device

CTX = mp.get_context("fork")  # a process per claimer, like a Snakemake job (fork: no torch re-import)


@pytest.fixture(autouse=True)
def _release_locks():
    """Release the locks this test's own claims took (a job's exit releases its locks)."""
    yield
    for path in list(devices._held):
        os.close(devices._held.pop(path))


def _claimer(requested, count, env, lock_dir, wait_s, results, release, jobs_per_gpu=1):
    """Claim a device like a training job would, report it, hold it until told to exit."""
    try:
        results.put(str(pick_device(requested, jobs_per_gpu=jobs_per_gpu, device_count=count, env=env,
                                    lock_dir=lock_dir, wait_s=wait_s, poll_s=0.05)))
    except Exception as e:  # reported to the test, not swallowed
        results.put(f"{type(e).__name__}: {e}")
    release.wait(30)


def _start(requested, count, lock_dir, results, release, env=None, wait_s=0.0, jobs_per_gpu=1):
    p = CTX.Process(target=_claimer, args=(requested, count, env or {}, str(lock_dir), wait_s, results, release,
                                           jobs_per_gpu))
    p.start()
    return p


def test_two_concurrent_jobs_get_different_gpus_and_a_third_required_one_fails_naming_the_locks(tmp_path):
    results, release = CTX.Queue(), CTX.Event()
    holders = [_start("auto", 2, tmp_path, results, release) for _ in range(2)]
    try:
        got = sorted(results.get(timeout=60) for _ in holders)
        assert got == ["cuda:0", "cuda:1"]
        with pytest.raises(DevicesBusy, match=r"all 2 GPUs \(0,1\) stayed locked .*gpu-\*\.lock"):
            pick_device("cuda", device_count=2, env={}, lock_dir=tmp_path, wait_s=0.3, poll_s=0.05)
        # `auto` does not wait: a busy machine means the CPU
        assert pick_device("auto", device_count=2, env={}, lock_dir=tmp_path) == torch.device("cpu")
    finally:
        release.set()
        for p in holders:
            p.join(30)
    assert [p.exitcode for p in holders] == [0, 0]


def test_a_waiting_job_gets_the_gpu_freed_when_its_holder_exits(tmp_path):
    results, release, waiter_release = CTX.Queue(), CTX.Event(), CTX.Event()
    holder = _start("auto", 1, tmp_path, results, release)
    try:
        assert results.get(timeout=60) == "cuda:0"
        waiter = _start("cuda", 1, tmp_path, results, waiter_release, wait_s=60)
        time.sleep(1.0)
        assert results.empty()  # still waiting while the holder lives
    finally:
        release.set()
        holder.join(30)
    assert results.get(timeout=60) == "cuda:0"  # the lock died with the holder process
    waiter_release.set()
    waiter.join(30)


def test_lock_is_per_physical_gpu_named_in_cuda_visible_devices(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert pick_device("auto", device_count=2, env=env, lock_dir=tmp_path) == torch.device("cuda:0")
    assert (tmp_path / "gpu-2.slot0.lock").exists() and not (tmp_path / "gpu-0.slot0.lock").exists()
    # the same process claiming again gets the next GPU, not the one it already holds
    assert pick_device("auto", device_count=2, env=env, lock_dir=tmp_path) == torch.device("cuda:1")
    assert (tmp_path / "gpu-3.slot0.lock").exists()


def test_a_gpu_allocated_by_slurm_is_used_as_cuda0_without_a_lock(tmp_path):
    env = {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "5"}
    for _ in range(2):  # two jobs on one node, each with its own allocated GPU: no contention
        assert pick_device("auto", device_count=1, env=env, lock_dir=tmp_path) == torch.device("cuda:0")
    assert not list(tmp_path.iterdir())


def test_a_slurm_job_without_a_gpu_allocation_leaves_the_node_gpus_alone(tmp_path):
    env = {"SLURM_JOB_ID": "42"}
    assert pick_device("auto", device_count=4, env=env, lock_dir=tmp_path) == torch.device("cpu")
    with pytest.raises(DeviceUnavailable, match="the scheduler allocated none"):
        pick_device("cuda", device_count=4, env=env, lock_dir=tmp_path)


def test_explicit_devices_are_used_as_given_and_no_gpu_means_cpu(tmp_path):
    assert pick_device("cpu", device_count=2, env={}, lock_dir=tmp_path) == torch.device("cpu")
    assert pick_device("cuda:1", device_count=2, env={}, lock_dir=tmp_path) == torch.device("cuda:1")
    assert pick_device("auto", device_count=0, env={}, lock_dir=tmp_path) == torch.device("cpu")
    with pytest.raises(DeviceUnavailable, match="no CUDA device is visible"):
        pick_device("cuda", device_count=0, env={}, lock_dir=tmp_path)
    with pytest.raises(ValueError, match="got 'gpu'"):
        pick_device("gpu", env={}, lock_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_slots_spread_jobs_over_the_gpus_then_share_each_and_the_cpu_takes_the_rest(tmp_path):
    results, release = CTX.Queue(), CTX.Event()
    # 2 GPUs x 2 jobs per GPU: four concurrent jobs get a GPU, slot 0 of each GPU before slot 1
    holders = []
    try:
        for _ in range(4):
            holders.append(_start("auto", 2, tmp_path, results, release, jobs_per_gpu=2))
        got = [results.get(timeout=60) for _ in holders]
        assert sorted(got) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "gpu-0.slot0.lock", "gpu-0.slot1.lock", "gpu-1.slot0.lock", "gpu-1.slot1.lock"]
        # a fifth job: every slot is held
        assert pick_device("auto", jobs_per_gpu=2, device_count=2, env={}, lock_dir=tmp_path) == torch.device("cpu")
        with pytest.raises(DevicesBusy, match=r"all 2 GPUs \(0,1\) x 2 slots stayed locked"):
            pick_device("cuda", jobs_per_gpu=2, device_count=2, env={}, lock_dir=tmp_path, wait_s=0.2, poll_s=0.05)
    finally:
        release.set()
        for p in holders:
            p.join(30)


def test_the_first_jobs_take_slot_zero_of_each_gpu(tmp_path):
    # one process claiming three times (it never re-takes a lock it holds): GPU 0, GPU 1, then GPU 0 again
    got = [pick_device("auto", jobs_per_gpu=4, device_count=2, env={}, lock_dir=tmp_path) for _ in range(3)]
    assert got == [torch.device("cuda:0"), torch.device("cuda:1"), torch.device("cuda:0")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-0.slot0.lock", "gpu-0.slot1.lock", "gpu-1.slot0.lock"]


def test_one_job_per_gpu_has_one_slot(tmp_path):
    assert pick_device("auto", device_count=1, env={}, lock_dir=tmp_path) == torch.device("cuda:0")
    assert pick_device("auto", device_count=1, env={}, lock_dir=tmp_path) == torch.device("cpu")
    assert [p.name for p in tmp_path.iterdir()] == ["gpu-0.slot0.lock"]
