"""Task weights on disk: `<task>.safetensors` (LoRA adapter + head) and `<task>.json` (the adapter
shape, labels, calibration and the base encoder's sha256). A few MB, never the base model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from engine.extract.encoder.tasks import AdapterShape

PACKAGED = Path(__file__).resolve().parent / "weights"


class Calibration(BaseModel):
    """Platt scaling of a raw confidence (facts) or a softmax temperature (sentiment), fit on dev."""

    kind: str  # "platt" | "temperature" | "none"
    a: float = 1.0
    b: float = 0.0
    temperature: float = 1.0

    def apply(self, raw: float) -> float:
        """A raw span confidence as a probability of being right (Platt); else unchanged."""
        if self.kind != "platt":
            return raw
        s = min(max(raw, 1e-6), 1 - 1e-6)
        z = min(max(self.a * math.log(s / (1 - s)) + self.b, -50.0), 50.0)  # exp stays finite
        return 1 / (1 + math.exp(-z))


class LanguagePolicy(BaseModel):
    """One language's own calibration and thresholds, fit on that language's dev sets: the raw
    confidences of a language with little training data mean something else than English ones."""

    calibration: Calibration
    thresholds: dict[str, float] = Field(default_factory=dict)


class TaskMeta(BaseModel):
    task: str
    shape: dict[str, Any]
    labels: list[str]
    calibration: Calibration = Field(default_factory=lambda: Calibration(kind="none"))
    thresholds: dict[str, float] = Field(default_factory=dict)
    # Languages with a dev set of their own (facts: en, zh); any other language uses the pooled
    # calibration and thresholds above.
    by_lang: dict[str, LanguagePolicy] = Field(default_factory=dict)
    base_sha256: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)

    def adapter_shape(self) -> AdapterShape:
        return AdapterShape(**self.shape)

    def calibration_for(self, lang: str) -> Calibration:
        policy = self.by_lang.get(lang)
        return policy.calibration if policy is not None else self.calibration

    def threshold(self, name: str, lang: str, default: float) -> float:
        policy = self.by_lang.get(lang)
        if policy is not None and name in policy.thresholds:
            return policy.thresholds[name]
        return self.thresholds.get(name, default)


class WeightsError(RuntimeError):
    pass


def save_task(folder: Path, meta: TaskMeta, state: dict[str, Any]) -> Path:
    """Write the task's tensors and metadata (temp files, then rename)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors, info = folder / f"{meta.task}.safetensors", folder / f"{meta.task}.json"
    tmp_t, tmp_i = tensors.with_suffix(".safetensors.tmp"), info.with_suffix(".json.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp_t))
    tmp_i.write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    tmp_t.replace(tensors)
    tmp_i.replace(info)
    return tensors


def load_task(folder: Path, task: str) -> tuple[TaskMeta, dict[str, Any]]:
    from safetensors.torch import load_file

    tensors, info = Path(folder) / f"{task}.safetensors", Path(folder) / f"{task}.json"
    if not tensors.is_file() or not info.is_file():
        raise WeightsError(f"no trained {task} weights in {folder}: run `persona train {task}`")
    meta = TaskMeta.model_validate(json.loads(info.read_text(encoding="utf-8")))
    return meta, load_file(str(tensors))
