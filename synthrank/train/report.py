"""What a finished run leaves for people: a model card and PNG plots of the loss and the dev metric."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from synthrank.data.jsonl import atomic_write

logger = logging.getLogger(__name__)

LOSS_TITLES = {
    "lce": "Localized Contrastive Estimation (softmax cross-entropy of the positive over its group)",
    "bce": "pointwise binary cross-entropy on labels",
    "listwise": "listwise KL distillation of the LLM grades",
}


def _smooth(values: list[float], window: int) -> list[float]:
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def write_plots(metrics: dict[str, Any], output_dir: Path) -> list[Path]:
    """``loss.png`` (per step and smoothed) and, with a dev set, ``dev_ndcg.png``; returns the files written.

    Uses matplotlib's object API with the Agg canvas, so no GUI backend and no global pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written: list[Path] = []
    history = metrics.get("history") or []
    if history:
        steps = [h["step"] for h in history]
        losses = [h["loss"] for h in history]
        fig = Figure(figsize=(6.4, 4.0))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="per step")
        window = max(1, len(losses) // 20)
        if window > 1:
            ax.plot(steps, _smooth(losses, window), color="#08519c", linewidth=1.6, label=f"mean of {window}")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"{metrics.get('config', {}).get('loss', '')} loss")
        ax.set_title("training loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = output_dir / "loss.png"
        fig.savefig(str(path), dpi=110)
        written.append(path)
    dev_history = metrics.get("dev_history") or []
    metric = metrics.get("dev_metric", "nDCG@10")
    if dev_history:
        fig = Figure(figsize=(6.4, 4.0))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([d["step"] for d in dev_history], [d[metric] for d in dev_history], marker="o", color="#a63603",
                label="reranker")
        baseline = (metrics.get("dev") or {}).get("baseline", {}).get(metric)
        if baseline is not None:
            ax.axhline(baseline, color="grey", linestyle="--", label="first stage")
        best = metrics.get("best_step")
        if best is not None:
            ax.axvline(best, color="#31a354", linestyle=":", label=f"best (step {best})")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"dev {metric}")
        ax.set_title(f"dev {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = output_dir / "dev_ndcg.png"
        fig.savefig(str(path), dpi=110)
        written.append(path)
    return written


def model_card(metrics: dict[str, Any]) -> str:
    """A README.md for the model folder: data, loss, hyper-parameters, evaluation numbers, use."""
    bi = metrics["config"].get("architecture") == "bi-encoder"
    lines = [
        *_card_head(metrics["config"]),
        *_card_training(metrics),
        "",
        "## Evaluation",
        "",
        *_card_evaluation(metrics),
        "",
        "## Use",
        "",
        "```python",
        *_card_use(bi),
        "```",
        "",
        "Check the licences of the backbone, of the corpus and of the LLM that wrote the training "
        "queries before redistributing this model.",
    ]
    return "\n".join(lines) + "\n"


def _card_head(cfg: dict[str, Any]) -> list[str]:
    """The card's metadata block, title and one-paragraph description of what the model scores."""
    if cfg.get("architecture") == "bi-encoder":
        merged = cfg.get("merge_with_base") or 0.0
        return [
            "---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
            "tags: [bi-encoder, reranker, synthrank]", "---", "", "# synthrank bi-encoder reranker", "",
            "A sentence embedder tuned as a reranker: score = cosine of the mean-pooled embeddings of query and "
            f"passage (LCE saw cosine / {cfg.get('similarity_temperature', 0.05)}). Trained by `synthrank train` "
            "on synthetic training groups, starting from its backbone"
            + (f"; the saved weights are {1 - merged:.2f} x tuned + {merged:.2f} x backbone (WiSE-FT)." if merged else "."),
            "",
        ]  # fmt: skip
    return [
        "---", "library_name: transformers", "pipeline_tag: text-classification",
        "tags: [cross-encoder, reranker, synthrank]", "---", "", "# synthrank cross-encoder reranker", "",
        "A one-logit sequence-classification cross-encoder: score = the logit for a (query, passage) pair; "
        "higher means more relevant. Trained by `synthrank train` on synthetic training groups.",
        "",
    ]  # fmt: skip


def _card_training(metrics: dict[str, Any]) -> list[str]:
    """The training data, the loss and the hyper-parameters, as the run used them."""
    cfg, data = metrics["config"], metrics["data"]
    lines = [
        "## Training data",
        "",
        f"- groups: {data['groups_used']} used of {data['groups_read']} read ({data['source']}); "
        f"{data['groups_without_negatives']} had no usable negative",
        f"- mean negative pool per group: {data['mean_pool_size']:.1f}; false negatives dropped: "
        f"{data['false_negatives_dropped']}",
        "",
        "## Loss and hyper-parameters",
        "",
        f"- loss: `{cfg['loss']}` -- {LOSS_TITLES.get(cfg['loss'], cfg['loss'])}",
        f"- group size {cfg['group_size']} (1 positive + {cfg['group_size'] - 1} negatives, "
        f"sampling `{cfg['negative_sampling']}`, pool depth {cfg['negative_pool'] or 'all'})",
        f"- backbone `{cfg['model']}` (`{metrics.get('base_model_path', cfg['model'])}`), max length {cfg['max_length']}",
        f"- AdamW lr {cfg['learning_rate']}, weight decay {cfg['weight_decay']}, warm-up {cfg['warmup_ratio']:.0%} "
        f"then linear decay, clip {cfg['max_grad_norm']}",
        f"- batch {cfg['batch_size']} groups x accumulation {cfg['gradient_accumulation']}, "
        f"{metrics['global_step']} of {metrics['total_steps']} steps ({cfg['epochs']} epoch(s) planned), seed {cfg['seed']}",
        f"- device {metrics['device']}, precision {metrics['precision']}, "
        f"{metrics['train_seconds']:.0f} s of training ({metrics['groups_per_second']:.2f} groups/s)",
        f"- final training loss (mean of the last 10 steps): {metrics['final_loss']:.4f}",
    ]
    if metrics.get("stopped_early"):
        lines.append(f"- stopped early after {cfg['early_stopping_patience']} evaluations without improvement")
    return lines


def _card_evaluation(metrics: dict[str, Any]) -> list[str]:
    """The dev table: first stage, the kept checkpoint and (bi-encoder) the merged weights."""
    dev = metrics.get("dev")
    if not dev:
        return ["No dev set was given: the folder holds the weights of the last step."]
    metric = metrics.get("dev_metric", "nDCG@10")
    lines = [
        f"Dev set: {dev['name']} ({dev['queries']} queries, {dev['pairs']} pairs reranked).",
        "",
        "| system | " + " | ".join(dev["baseline"]) + " |",
        "|---|" + "---|" * len(dev["baseline"]),
        "| first stage | " + " | ".join(f"{v:.4f}" for v in dev["baseline"].values()) + " |",
    ]
    best = metrics.get("best_dev") or {}
    if best:
        lines.append(
            f"| this model (step {metrics['best_step']}) | "
            + " | ".join(f"{best.get(k, float('nan')):.4f}" for k in dev["baseline"]) + " |"
        )
    merged_dev = metrics.get("merged_dev") or {}
    if merged_dev:
        lines.append(
            f"| this model merged with its backbone ({metrics.get('merge_with_base')}) | "
            + " | ".join(f"{merged_dev.get(k, float('nan')):.4f}" for k in dev["baseline"]) + " |"
        )
    lines += ["", f"The model folder holds the checkpoint with the best dev {metric}."]
    return lines


def _card_use(bi: bool) -> list[str]:
    """A code sample that loads the model with synthrank and with sentence-transformers."""
    if bi:
        return [
            "from synthrank.rerank import load_scorer",
            "reranker = load_scorer('path/to/model')          # a BiEncoderScorer",
            "scores = reranker.score_pairs([query, query], [passage_a, passage_b])",
            "",
            "from sentence_transformers import SentenceTransformer   # also loads it",
            "SentenceTransformer('path/to/model').encode([query, passage_a])",
        ]
    return [
        "from synthrank.rerank import CrossEncoderReranker",
        "reranker = CrossEncoderReranker('path/to/model')",
        "scores = reranker.score_pairs([query, query], [passage_a, passage_b])",
        "",
        "from sentence_transformers import CrossEncoder      # also loads it (predict applies a sigmoid)",
        "CrossEncoder('path/to/model').predict([(query, passage_a)])",
    ]


def write_model_card(metrics: dict[str, Any], *folders: Path) -> None:
    text = model_card(metrics)
    for folder in folders:
        with atomic_write(folder / "README.md") as fh:
            fh.write(text)
