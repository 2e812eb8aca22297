"""The review loop: analysts judge sampled facts → fact status, monthly quality, training data.

    sample.py   a seeded, stratified sample of recent documents saved as a review batch
    items.py    reading batches and items back
    judge.py    one document's judgement: checked whole, claimed atomically, applied to the graph
    metrics.py  precision / recall / F1, macro-F1, Wilson and bootstrap intervals, the drift alert
    report.py   quality per batch over time
    export.py   judged documents as training examples for `persona train`
"""

from engine.review.export import ExportReport, export_training
from engine.review.items import get_batch, get_item, list_batches
from engine.review.judge import judge_document
from engine.review.model import (
    Batch,
    BatchDetail,
    DocumentJudgement,
    ItemView,
    JudgeResult,
    ReviewConflict,
    ReviewError,
    ReviewGone,
    ReviewInvalid,
    ReviewNotFound,
)
from engine.review.report import QualityReport, quality_report
from engine.review.sample import SampleReport, sample_batch

__all__ = [
    "Batch",
    "BatchDetail",
    "DocumentJudgement",
    "ExportReport",
    "ItemView",
    "JudgeResult",
    "QualityReport",
    "ReviewConflict",
    "ReviewError",
    "ReviewGone",
    "ReviewInvalid",
    "ReviewNotFound",
    "SampleReport",
    "export_training",
    "get_batch",
    "get_item",
    "judge_document",
    "list_batches",
    "quality_report",
    "sample_batch",
]
