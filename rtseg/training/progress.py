"""How far a run has come: steps, the best round so far, and the totals of the current round.

The one mutable piece of a run (its parts are frozen, see `rtseg.training.run`). `Progress`
goes into last.pt as a plain dict of named counters and comes back from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

SELECTS = ("miou", "loss", "last")  # what picks the checkpoint: see Progress.record_round


@dataclass(frozen=True)
class RoundTotals:
    """Sums over the optimizer steps of one round (between two evaluations)."""

    loss_sum: float = 0.0
    steps: int = 0
    images: int = 0
    wait_s: float = 0.0  # waiting for the loader
    compute_s: float = 0.0  # forward, backward, optimizer step

    def added(self, loss: float, images: int, wait_s: float, compute_s: float) -> RoundTotals:
        """These totals plus one step."""
        return replace(self, loss_sum=self.loss_sum + loss, steps=self.steps + 1,
                       images=self.images + images, wait_s=self.wait_s + wait_s,
                       compute_s=self.compute_s + compute_s)

    def rates(self) -> tuple[float, float]:
        """(loader images/s, train-step images/s) over these steps."""
        return (self.images / max(self.wait_s, 1e-9), self.images / max(self.compute_s, 1e-9))

    def summary(self) -> dict:
        """Mean train loss and the two rates, as CSV columns."""
        loader, step = self.rates()
        return {"train_loss": self.loss_sum / max(self.steps, 1), "loader_img_s": loader,
                "step_img_s": step}


@dataclass
class Progress:
    """Step count, best value of the selection metric and where it was, rounds since."""

    step: int = 0
    best: float | None = None
    best_step: int = 0
    bad_rounds: int = 0
    best_metrics: dict = field(default_factory=dict)
    this_round: RoundTotals = field(default_factory=RoundTotals)

    def add_step(self, loss: float, images: int, wait_s: float, compute_s: float) -> None:
        """Account one optimizer step."""
        self.step += 1
        self.this_round = self.this_round.added(loss, images, wait_s, compute_s)

    def end_round(self) -> RoundTotals:
        """The totals of the round just ended; the next round starts from zero."""
        ended, self.this_round = self.this_round, RoundTotals()
        return ended

    def record_round(self, metrics: dict, select: str) -> bool:
        """Fold a validation result into best / bad_rounds; True if it is the new best.

        select: "loss" (lower is better), "miou" (higher is better) or "last" (every round
        is kept, so the run ends with the weights of its last round, chosen by no val score).
        """
        value = metrics["loss"] if select == "loss" else metrics["miou"]
        better = self.best is None or select == "last" or (
            value < self.best if select == "loss" else value > self.best)
        if better:
            self.best, self.best_step, self.bad_rounds = value, self.step, 0
            self.best_metrics = {**metrics, "step": self.step}
        else:
            self.bad_rounds += 1
        return better

    def counters(self) -> dict:
        """What last.pt keeps. It is written between rounds, so no round totals."""
        return {"step": self.step, "best": self.best, "best_step": self.best_step,
                "bad_rounds": self.bad_rounds, "best_metrics": dict(self.best_metrics)}

    @classmethod
    def from_counters(cls, counters: dict) -> Progress:
        """Progress back from `counters()` as read from last.pt (other keys are ignored)."""
        return cls(step=int(counters["step"]), best=counters["best"],
                   best_step=int(counters["best_step"]),
                   bad_rounds=int(counters["bad_rounds"]),
                   best_metrics=dict(counters["best_metrics"]))
