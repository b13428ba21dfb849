"""synthrank for PyTerrier: BM25 first stages, the synthrank re-ranker, the synthetic-data stages, and training.

Example:
    >>> import pyterrier as pt
    >>> from pyterrier_synthrank import SynthBM25, SynthReranker
    >>> bm25 = SynthBM25.from_documents(corpus_iter, num_results=100)
    >>> pt.Experiment([bm25, bm25 >> SynthReranker("runs/medquad/model")], topics, qrels, ["nDCG@10"])
"""

from __future__ import annotations

from pyterrier_synthrank.artifact import SynthRerankerArtifact
from pyterrier_synthrank.bm25 import CorpusTextLoader, SynthBM25, pisa_bm25, terrier_bm25
from pyterrier_synthrank.frames import documents_from, qrels_frame, topics_frame
from pyterrier_synthrank.labeler import RelevanceLabeler
from pyterrier_synthrank.mining import HardNegativeMiner, groups_from_frame, write_groups_frame
from pyterrier_synthrank.querygen import QueryGenerator
from pyterrier_synthrank.reranker import SynthReranker, load_pair_scorer
from pyterrier_synthrank.training import fit_reranker

__version__ = "0.1.0"

__all__ = [
    "CorpusTextLoader",
    "HardNegativeMiner",
    "QueryGenerator",
    "RelevanceLabeler",
    "SynthBM25",
    "SynthReranker",
    "SynthRerankerArtifact",
    "__version__",
    "documents_from",
    "fit_reranker",
    "groups_from_frame",
    "load_pair_scorer",
    "pisa_bm25",
    "qrels_frame",
    "terrier_bm25",
    "topics_frame",
    "write_groups_frame",
]
