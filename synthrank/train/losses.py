"""The losses a cross-encoder is trained with; all take the logits of a batch of groups.

Shapes: ``logits`` is ``[B, G]`` (one row per query, column 0 = the positive). Each loss returns
the mean over the B groups, so gradient accumulation can weight micro-batches by their size.

- :func:`lce_loss` -- Localized Contrastive Estimation (Gao et al., 2021): softmax cross-entropy of
  the positive over its group of hard negatives; the model learns to *rank* within the first
  stage's top results, which is exactly its job at inference.
- :func:`bce_loss` -- pointwise binary cross-entropy on labels (1/0, thresholded grades, or the
  judge's probabilities): the usual baseline.
- :func:`listwise_loss` -- KL divergence from a softmax over the LLM grades to the model's softmax:
  distillation of the judge's graded preferences.
- :func:`margin_mse_loss` -- MarginMSE (Hofstätter et al., 2020; GPL's loss): the student's score margin
  between the positive and each negative regresses on the teacher's margin (here the judge's log-odds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def lce_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean over groups of ``-log softmax(logits)[0]`` (the positive sits in column 0).

    Example:
        >>> lce_loss(torch.tensor([[2.0, 0.0, 0.0]]))  # -log(e^2 / (e^2 + 2))
        tensor(0.2395)
    """
    import torch

    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return torch.nn.functional.cross_entropy(logits.float(), target)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pointwise binary cross-entropy with logits, averaged over pairs then groups (labels in [0, 1])."""
    import torch

    per_pair = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return per_pair.mean(dim=1).mean()


def listwise_loss(logits: torch.Tensor, grades: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``KL(softmax(grades / T) || softmax(logits))`` per group, averaged (batchmean)."""
    import torch

    target = torch.softmax(grades.float() / temperature, dim=1)
    log_probs = torch.log_softmax(logits.float(), dim=1)
    return torch.nn.functional.kl_div(log_probs, target, reduction="batchmean")


def teacher_logits(probabilities: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """A judge's P(relevant) as log-odds, the scale margins are taken on (clipped so 0 and 1 stay finite)."""
    import torch

    return torch.logit(probabilities.float().clamp(eps, 1.0 - eps))


def margin_mse_loss(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the student's and the teacher's margins ``s(pos) - s(neg_j)``, over all
    negatives then groups; ``teacher`` holds the teacher's scores in the same ``[B, G]`` layout.

    Example:
        >>> margin_mse_loss(torch.tensor([[3.0, 1.0]]), torch.tensor([[2.0, 1.0]]))  # (2 - 1)^2
        tensor(1.)
    """
    import torch

    student = logits.float()[:, :1] - logits.float()[:, 1:]
    target = teacher.float()[:, :1] - teacher.float()[:, 1:]
    return torch.nn.functional.mse_loss(student, target, reduction="none").mean(dim=1).mean()
