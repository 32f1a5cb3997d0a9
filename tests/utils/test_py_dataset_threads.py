"""`PyDataset` worker processes run torch with one intra-op thread, as a DataLoader's workers do,
and leave the parent's thread count alone."""

from __future__ import annotations

import gc
import os

import pytest
import torch

from lamina.utils import PyDataset, iterate_batches


class ThreadReport(PyDataset):
    """Module-level so the worker processes can unpickle it."""

    def __len__(self):
        return 6

    def __getitem__(self, index):
        return torch.get_num_threads(), os.getpid()


@pytest.mark.skipif(os.cpu_count() == 1, reason="torch's default is one thread already")
def test_workers_use_one_torch_thread_and_the_parent_keeps_its_own():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the session runs with 1; 2 shows a change in either direction
    dataset = ThreadReport(workers=2, use_multiprocessing=True)
    try:
        reports = list(iterate_batches(dataset))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        del dataset
        gc.collect()
    assert {pid for _, pid in reports}.isdisjoint({os.getpid()})
    assert [threads for threads, _ in reports] == [1] * 6
