"""Training/validation loaders: per-sample seeded augmentation and one sampler for 1..N ranks.

Every random choice of a training sample is a function of (seed, epoch, index), and the
order of an epoch a function of (seed, epoch): a resumed run, or N ranks under torchrun,
see exactly the batches one uninterrupted process would.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rtseg.training.distributed import World


class SeededSamples(Dataset):
    """Item (epoch, i) is sample i drawn under torch seed (seed, epoch, i): augmentation
    never touches the global RNG and does not depend on which process loads it."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF)
            return self.dataset[index]


class EpochSampler(Sampler[tuple[int, int]]):
    """This rank's share of epoch `epoch`'s permutation as (epoch, index) keys:
    perm[rank::world], equal lengths, after `skip` of its own (to resume mid-epoch)."""

    def __init__(self, size: int, seed: int, epoch: int, world: World, skip: int = 0):
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(size, generator=generator).tolist()
        per_rank = size // world.size
        self.indices = [(epoch, i) for i in perm[world.rank::world.size][:per_rank][skip:]]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def steps_per_epoch(size: int, batch_size: int, world: World) -> int:
    """Full batches per rank and epoch."""
    return (size // world.size) // batch_size


def epoch_loader(samples: SeededSamples, batch_size: int, epoch: int, world: World,
                 workers: int, skip_batches: int = 0) -> DataLoader:
    """Batches (N,3,H,W) float, (N,H,W) int64 of one epoch for this rank."""
    sampler = EpochSampler(len(samples), samples.seed, epoch, world, skip_batches * batch_size)
    return DataLoader(samples, batch_size=batch_size, sampler=sampler, drop_last=True,
                      num_workers=workers, pin_memory=torch.cuda.is_available())


def val_loader(dataset: Dataset, world: World, workers: int) -> DataLoader:
    """Batch size 1 (labels keep their native size); rank r scores samples r, r+N, ..."""
    indices = list(range(world.rank, len(dataset), world.size))
    return DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=1,
                      num_workers=workers)
