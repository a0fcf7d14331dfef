"""Model cards: one JSON file per network, validated by a JSON schema, parsed once into frozen dataclasses.

A card says what the network is (architecture and arguments), how its input is prepared (grid spacing,
orientation, HU window, liver crop), how it is run (whole volume or sliding windows), what its output
channels mean (with SNOMED codes), and which weights file it loads (file name, sha256, URL).

The schema is ``SmoothSegNetLib/schemas/model_card.schema.json`` (id ``smoothsegnet.model_card/1``).
Network axes are the canonical grid's ``(i, j, k)`` axes: ``roi_size_ijk`` and ``spacing_mm`` are in that
order, and tensors are fed as ``[batch, channel, i, j, k]`` like MONAI's readers produce.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from SmoothSegNetLib.errors import ModelError

CARD_SCHEMA_ID = "smoothsegnet.model_card/1"
_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "model_card.schema.json"


@dataclass(frozen=True)
class InputSpec:
    """How the CT is prepared for the network.

    Attributes:
        spacing_mm: grid spacing along the network axes (i, j, k); ``None`` = native resolution.
        orientation: three letters; letter n is the anatomical direction the n-th network axis points to.
        hu_window: ``(low, high)`` HU; values are clipped and scaled to [0, 1].
        crop_margin_mm: tumor stage: margin around the liver bounding box.
        crop_to_liver: tumor stage: run on the liver box (True) or sweep the whole volume (the reference app).
        crop_to_body_hu: liver stage: run on the box of voxels above this HU (+ margin) instead of the whole
            field of view (air around the body costs time and holds no liver); ``None`` = whole field of view.
        mask_outside_liver: tumor stage: voxels outside the liver are set to the window's low value.
        liver_mask_dilation_mm: tumor stage: the liver is filled and grown by this many millimetres before it
            masks the image and bounds the tumors (0 = the liver stage's mask as it is), so the network sees
            the liver's border and corrects the liver stage there.
    """

    spacing_mm: tuple[float, float, float] | None
    orientation: str
    hu_window: tuple[float, float]
    crop_margin_mm: float = 10.0
    mask_outside_liver: bool = True
    crop_to_liver: bool = True
    crop_to_body_hu: float | None = None
    liver_mask_dilation_mm: float = 0.0


@dataclass(frozen=True)
class InferenceSpec:
    """How the network is run: ``whole`` volume (padded) or ``sliding`` windows with Gaussian blending."""

    mode: str
    roi_size_ijk: tuple[int, int, int] | None = None
    overlap: float = 0.25
    batch_size: int = 1
    size_divisible_by: int = 16
    max_voxels: int | None = None
    mirror_axes: tuple[int, ...] = ()


@dataclass(frozen=True)
class OutputClass:
    """One output channel of the network."""

    channel: int
    id: str
    name: str
    color_rgb: tuple[int, int, int] | None = None
    snomed_category: dict[str, str] | None = None
    snomed_type: dict[str, str] | None = None


@dataclass(frozen=True)
class PostSpec:
    """Post-processing defaults (the pipeline's options may override them)."""

    largest_component: bool = True
    fill_holes: bool = True
    chan_vese_iterations: int = 0
    chan_vese_grid: str = "isotropic"
    min_lesion_ml: float = 0.1
    liver_from_tumor_stage: bool = False
    min_lesion_confidence: float = 0.0
    min_lesion_hu: float | None = None
    min_lesion_score: float | None = None
    # The lesion classifier as the card states it (features, centre, scale, weights, intercept, fitted_on); the
    # pipeline builds the model from it (SmoothSegNetLib.inference.lesion_classifier).
    lesion_classifier: dict[str, Any] | None = field(default=None, hash=False)
    candidate_probability: float | None = None
    candidate_fine_spacing_mm: float | None = None
    candidate_limit: int | None = None
    # At most this many findings of the liver scan (SmoothSegNetLib.correction.scan) per case; 0 / None = off.
    candidate_scan: int | None = None


@dataclass(frozen=True)
class WeightsSpec:
    """The weights file: name (beside the card or in the registry cache), sha256 (``None`` = must be pinned)."""

    file: str
    sha256: str | None
    format: str
    url: str | None = None
    state_dict_key: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class OnnxSpec:
    """The network exported as an ONNX graph (for the torch-free CPU runtime): file name (beside the card or in
    the registry cache), its sha256 (verified before every load, like the weights), the opset, and the versions
    of the tools that exported it (``exported_with``: torch, onnx, exporter)."""

    file: str
    sha256: str
    opset: int
    exported_with: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """A parsed, validated model card. ``path`` is where it was read from (weights resolve beside it)."""

    id: str
    title: str
    version: str
    task: str
    architecture: str
    architecture_args: dict[str, Any] = field(hash=False, compare=False)
    input: InputSpec
    inference: InferenceSpec
    classes: tuple[OutputClass, ...]
    activation: str
    post: PostSpec
    weights: WeightsSpec
    license: str
    training: dict[str, Any] = field(hash=False, compare=False)
    intended_use: str
    limitations: str
    onnx: OnnxSpec | None = None
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def out_channels(self) -> int:
        return max(c.channel for c in self.classes) + 1

    def channel_of(self, class_id: str) -> int:
        """The output channel of ``class_id`` (``"liver"`` or ``"tumor"``)."""
        for item in self.classes:
            if item.id == class_id:
                return item.channel
        raise ModelError(f"model card {self.id!r}: output.classes has no class with id {class_id!r}; add it")

    @property
    def target_class(self) -> str:
        """The class this stage segments: ``liver`` for the global stage, ``tumor`` for the local one."""
        return self.task

    def weights_path(self) -> Path:
        """Where the weights are expected beside the card."""
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / self.weights.file

    def onnx_path(self) -> Path | None:
        """Where the ONNX graph is expected beside the card (``None``: the card has none)."""
        if self.onnx is None:
            return None
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / self.onnx.file


@lru_cache(maxsize=1)
def card_schema() -> dict[str, Any]:
    """The model card JSON schema."""
    with open(_SCHEMA_PATH, encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _field_path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def validate_card_dict(data: Any, source: str) -> None:
    """Check ``data`` against the schema and the rules a schema cannot express.

    Raises:
        ModelError: naming ``source``, the field and the rule broken.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(card_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise ModelError(
            f"model card {source}: field {_field_path(first)} is invalid: {first.message}; "
            "fix the card (schema smoothsegnet.model_card/1)"
        )
    _check_semantics(data, source)


def _check_semantics(data: dict[str, Any], source: str) -> None:
    low, high = data["input"]["hu_window"]
    if not low < high:
        raise ModelError(
            f"model card {source}: field input.hu_window must be [low, high] with low < high, got {[low, high]}"
        )
    channels = [c["channel"] for c in data["output"]["classes"]]
    if len(set(channels)) != len(channels):
        raise ModelError(f"model card {source}: field output.classes repeats a channel: {channels}")
    ids = [c["id"] for c in data["output"]["classes"]]
    if data["task"] not in ids:
        raise ModelError(
            f"model card {source}: field output.classes has no class with id {data['task']!r} "
            f"(the card's task); classes are {ids}"
        )
    out = data["architecture"]["args"].get("out_channels")
    if out is not None and int(out) != max(channels) + 1:
        raise ModelError(
            f"model card {source}: field architecture.args.out_channels is {out} but output.classes use "
            f"channels {sorted(channels)}; make them agree"
        )
    if data["output"]["activation"] == "softmax" and len(channels) < 2:
        raise ModelError(f"model card {source}: field output.activation softmax needs at least 2 classes")
    orientation = data["input"]["orientation"]
    axes = {"L": "LR", "R": "LR", "P": "PA", "A": "PA", "I": "IS", "S": "IS"}
    if len({axes[c] for c in orientation}) != 3:
        raise ModelError(
            f"model card {source}: field input.orientation {orientation!r} must name each anatomical axis once "
            "(one of L/R, one of P/A, one of I/S)"
        )
    dilation = float(data["input"].get("liver_mask_dilation_mm", 0.0))
    margin = float(data["input"].get("crop_margin_mm", 10.0))
    if dilation > margin:
        raise ModelError(
            f"model card {source}: field input.liver_mask_dilation_mm {dilation:g} must not exceed "
            f"input.crop_margin_mm {margin:g} (the grown liver would be cut by the crop)"
        )
    if data.get("postprocessing", {}).get("liver_from_tumor_stage", False):
        class_ids = {c["id"] for c in data["output"]["classes"]}
        if (
            data["task"] != "tumor"
            or data["output"]["activation"] != "softmax"
            or not {"background", "liver"} <= class_ids
        ):
            raise ModelError(
                f"model card {source}: field postprocessing.liver_from_tumor_stage needs a tumor model with a "
                "softmax output and background and liver classes"
            )
    graph = data.get("onnx")
    if graph is not None and graph["file"] == data["weights"]["file"]:
        raise ModelError(f"model card {source}: field onnx.file must differ from weights.file ({graph['file']!r})")
    inference = data["inference"]
    if inference["mode"] == "sliding" and "roi_size_ijk" not in inference:
        raise ModelError(
            f"model card {source}: field inference.roi_size_ijk is required when inference.mode is sliding"
        )


def _code(value: dict[str, str] | None) -> dict[str, str] | None:
    return dict(value) if value else None


def card_from_dict(data: dict[str, Any], path: Path | None = None, source: str = "<dict>") -> ModelCard:
    """Validate ``data`` and build the :class:`ModelCard`."""
    validate_card_dict(data, source)
    inp = data["input"]
    inf = data["inference"]
    post = data.get("postprocessing", {})
    w = data["weights"]
    spacing = inp["spacing_mm"]
    roi = inf.get("roi_size_ijk")
    return ModelCard(
        id=data["id"],
        title=data["title"],
        version=data["version"],
        task=data["task"],
        architecture=data["architecture"]["name"],
        architecture_args=dict(data["architecture"]["args"]),
        input=InputSpec(
            spacing_mm=None if spacing is None else (float(spacing[0]), float(spacing[1]), float(spacing[2])),
            orientation=inp["orientation"],
            hu_window=(float(inp["hu_window"][0]), float(inp["hu_window"][1])),
            crop_margin_mm=float(inp.get("crop_margin_mm", 10.0)),
            mask_outside_liver=bool(inp.get("mask_outside_liver", True)),
            crop_to_liver=bool(inp.get("crop_to_liver", True)),
            crop_to_body_hu=None if inp.get("crop_to_body_hu") is None else float(inp["crop_to_body_hu"]),
            liver_mask_dilation_mm=float(inp.get("liver_mask_dilation_mm", 0.0)),
        ),
        inference=InferenceSpec(
            mode=inf["mode"],
            roi_size_ijk=None if roi is None else (int(roi[0]), int(roi[1]), int(roi[2])),
            overlap=float(inf.get("overlap", 0.25)),
            batch_size=int(inf.get("batch_size", 1)),
            size_divisible_by=int(inf.get("size_divisible_by", 16)),
            max_voxels=inf.get("max_voxels"),
            mirror_axes=tuple(int(a) for a in inf.get("mirror_axes", [])),
        ),
        classes=tuple(
            OutputClass(
                channel=int(c["channel"]),
                id=c["id"],
                name=c["name"],
                color_rgb=tuple(c["color_rgb"]) if "color_rgb" in c else None,  # type: ignore[arg-type]
                snomed_category=_code(c.get("snomed_category")),
                snomed_type=_code(c.get("snomed_type")),
            )
            for c in data["output"]["classes"]
        ),
        activation=data["output"]["activation"],
        post=PostSpec(
            largest_component=bool(post.get("largest_component", True)),
            fill_holes=bool(post.get("fill_holes", True)),
            chan_vese_iterations=int(post.get("chan_vese_iterations", 0)),
            chan_vese_grid=str(post.get("chan_vese_grid", "isotropic")),
            min_lesion_ml=float(post.get("min_lesion_ml", 0.1)),
            liver_from_tumor_stage=bool(post.get("liver_from_tumor_stage", False)),
            min_lesion_confidence=float(post.get("min_lesion_confidence", 0.0)),
            min_lesion_hu=None if post.get("min_lesion_hu") is None else float(post["min_lesion_hu"]),
            min_lesion_score=None if post.get("min_lesion_score") is None else float(post["min_lesion_score"]),
            lesion_classifier=None if post.get("lesion_classifier") is None else dict(post["lesion_classifier"]),
            candidate_probability=(
                None if post.get("candidate_probability") is None else float(post["candidate_probability"])
            ),
            candidate_fine_spacing_mm=(
                None if post.get("candidate_fine_spacing_mm") is None else float(post["candidate_fine_spacing_mm"])
            ),
            candidate_limit=None if post.get("candidate_limit") is None else int(post["candidate_limit"]),
            candidate_scan=None if post.get("candidate_scan") is None else int(post["candidate_scan"]),
        ),
        weights=WeightsSpec(
            file=w["file"],
            sha256=w["sha256"],
            format=w["format"],
            url=w.get("url"),
            state_dict_key=w.get("state_dict_key"),
            size_bytes=w.get("size_bytes"),
        ),
        license=data["license"],
        training=dict(data["training"]),
        intended_use=data["intended_use"],
        limitations=data["limitations"],
        onnx=_onnx_spec(data.get("onnx")),
        path=path,
        raw=data,
    )


def _onnx_spec(data: dict[str, Any] | None) -> OnnxSpec | None:
    if data is None:
        return None
    return OnnxSpec(
        file=data["file"],
        sha256=data["sha256"],
        opset=int(data["opset"]),
        exported_with={str(k): str(v) for k, v in data.get("exported_with", {}).items()},
        size_bytes=data.get("size_bytes"),
    )


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate a model card file.

    Raises:
        ModelError: the file is missing or not JSON, or a field breaks a rule (the message names the file
            and the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(f"model card {path} does not exist: check the path or run 'smoothsegnet models list'") from exc
    except OSError as exc:
        raise ModelError(f"model card {path} cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix the file") from exc
    if not isinstance(data, dict):
        raise ModelError(f"model card {path} must hold a JSON object, got {type(data).__name__}")
    return card_from_dict(data, path=path.resolve(), source=str(path))


def write_card_file(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Validate ``data`` and write it as a card (atomically). Returns the path."""
    from SmoothSegNetLib.outputs import atomic_path

    path = Path(path)
    validate_card_dict(data, str(path))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
