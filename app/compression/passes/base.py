"""The pass contract: a config, a transform, and run(), the template every pass goes through.

Recipes (and so the API) import this module to validate configs: it must not load onnx. The
implementation modules of the passes load it, and are imported only when a pass is looked up.
"""

from __future__ import annotations

import builtins
import importlib
import tempfile
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, final

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import numpy as np
    from onnx import ModelProto


class PassConfig(BaseModel):
    """Base of every pass config; `type` is the discriminator of a recipe's pass list."""

    model_config = ConfigDict(extra="forbid")

    type: str


class PassReport(BaseModel):
    """What a pass did, in numbers a user can check."""

    type: str
    summary: str = Field(description="One sentence on what changed.")
    details: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class PassContext(BaseModel):
    """What a pass may need beyond its config: data and shapes from the job."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    calibration_path: Path | None = Field(
        default=None, description="A validated .npz: arrays named after inputs, axis 0 = samples."
    )
    input_shapes: dict[str, list[int]] | None = Field(
        default=None, description="Concrete shapes for inputs with symbolic dims."
    )
    default_dim: int = Field(default=1, description="Value of a symbolic dim left open.")
    seed: int = Field(default=0, description="Seed of any synthetic data the pass draws.")
    input_values: dict[str, Any] | None = Field(
        default=None, description="Constant inputs (JSON numbers or nested lists) for every feed."
    )

    def sample_feeds(
        self, model: ModelProto, num_samples: int
    ) -> tuple[list[dict[str, np.ndarray]], bool]:
        """(feeds, synthetic): the calibration dataset's samples, else synthetic ones."""
        # numpy and onnx load only where a pass runs, not where recipes are validated.
        from app.compression.graph import analysis, npz

        return npz.calibration_samples(
            analysis.graph_inputs(model),
            self.calibration_path,
            num_samples=num_samples,
            input_shapes=self.input_shapes,
            default_dim=self.default_dim,
            seed=self.seed,
            input_values=self.input_values,
        )


@dataclass
class PassOutcome:
    """What a transform reports; run() turns it into the pass's PassReport."""

    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class PassWork:
    """One run of a pass: the model it reads, where it writes, and the job's data."""

    input_path: Path
    output_path: Path
    context: PassContext
    # Whether the output goes out with its weights in a side file; set when the input is read.
    external_data: bool = False

    def scratch_dir(self, prefix: str) -> tempfile.TemporaryDirectory[str]:
        """A private folder next to the output for staged copies, never in the input's folder."""
        return tempfile.TemporaryDirectory(dir=self.output_path.parent, prefix=prefix)


ConfigT = TypeVar("ConfigT", bound=PassConfig)


def _config_argument(cls: builtins.type[Any]) -> builtins.type[PassConfig] | None:
    """The config class a pass class names as its type argument, or None while still generic."""
    for base in getattr(cls, "__orig_bases__", ()):
        for argument in typing.get_args(base):
            if isinstance(argument, builtins.type) and issubclass(argument, PassConfig):
                return argument
    return None


class CompressionPass(ABC, Generic[ConfigT]):
    """One technique. Subclasses name their config as the type argument (its `type` and
    `config_cls` come from it), write transform_files (or, for a model rewritten in memory,
    subclass ModelPass) and register with @register_pass."""

    type: ClassVar[str]
    config_cls: ClassVar[builtins.type[PassConfig]]
    # run() loads the output in onnxruntime and calls it "the <loads_as> model" if that fails;
    # None where the transform checks it itself, or only rewrites weight values.
    loads_as: ClassVar[str | None] = None
    # run() has onnx's checker read the output: for passes that rewire the graph by hand.
    onnx_checked: ClassVar[bool] = False
    # The output keeps external data whenever the input has it (True), or only where it would
    # not fit in one protobuf (False: a small model's weights are written inline).
    keeps_external_data: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = _config_argument(cls)
        if config is None:  # a template still generic in its config, such as ModelPass
            return
        # Unless the class sets them itself: the config says the pass's type once, for both.
        if "config_cls" not in cls.__dict__:
            cls.config_cls = config
        if "type" not in cls.__dict__:
            cls.type = config.model_fields["type"].default

    @final
    def run(
        self,
        input_path: Path,
        config: ConfigT,
        output_path: Path,
        context: PassContext | None = None,
    ) -> PassReport:
        """Read the model at input_path, write the result to output_path, report the change."""
        # onnx loads only where a pass runs, not where recipes are validated.
        from app.compression.graph import model_io

        work = PassWork(input_path, output_path, context or PassContext())
        try:
            outcome = self.transform_files(work, config)
            if self.onnx_checked:
                model_io.check_graph(output_path)
            if self.loads_as is not None:
                problem = model_io.ort_load_error(output_path)
                if problem is not None:
                    raise model_io.unloadable(self.loads_as, problem + self.load_hint(work))
        except Exception:
            model_io.remove_model(output_path)  # a failed pass leaves no model behind
            raise
        return PassReport(
            type=self.type,
            summary=outcome.summary,
            details=outcome.details,
            warnings=outcome.warnings,
        )

    @abstractmethod
    def transform_files(self, work: PassWork, config: ConfigT) -> PassOutcome:
        """Write the compressed model to work.output_path and say what changed."""

    def load_hint(self, work: PassWork) -> str:
        """Advice appended when onnxruntime cannot load the output; none by default."""
        return ""


class ModelPass(CompressionPass[ConfigT]):
    """A pass that rewrites the model in memory: the template reads and writes the files."""

    # Re-infer shapes on the written file: for passes that change the shapes of weights.
    infer_shapes: ClassVar[bool] = False
    # Run prepare_model before transform and report what it did (see WeightPass).
    prepares_model: ClassVar[bool] = False

    @final
    def transform_files(self, work: PassWork, config: ConfigT) -> PassOutcome:
        # onnx loads only where a pass runs, not where recipes are validated.
        from app.compression.graph import model_io, prepare

        model, work.external_data = model_io.load_model(
            work.input_path, keep_external=self.keeps_external_data
        )
        prep = None
        if self.prepares_model:
            model, prep = prepare.prepare_model(model)
        model, outcome = self.transform(model, config, work)
        if prep is not None:
            outcome.details["prepared"] = prep.notes
            outcome.warnings[:0] = prep.warnings
        model_io.save_model(
            model, work.output_path, work.external_data, infer_shapes=self.infer_shapes
        )
        return self.finish(work, outcome)

    @abstractmethod
    def transform(
        self, model: ModelProto, config: ConfigT, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
        """The compressed model (this one changed in place, or a new one) and what changed."""

    def finish(self, work: PassWork, outcome: PassOutcome) -> PassOutcome:
        """Add what only the written file tells (such as its size); nothing by default."""
        return outcome


class WeightPass(ModelPass[ConfigT]):
    """A ModelPass that rewrites weight initializers. Constant-node and Transpose'd weights are
    made initializers first, as the quantizers see them: the outcome's `prepared` detail lists
    what that changed, and its warnings come first."""

    prepares_model = True


class ReshapingPass(WeightPass[ConfigT]):
    """A WeightPass that changes the shapes of weights and rewires the nodes around them by
    hand: shapes are re-inferred on the written file and onnx's checker reads it."""

    infer_shapes = True
    onnx_checked = True


# Modules of the built-in passes, imported on the first lookup of a pass.
BUILTIN_PASS_MODULES = tuple(
    f"app.compression.passes.{name}"
    for name in (
        "quantize_dynamic",
        "convert_fp16",
        "prune_magnitude",
        "prune_channels",
        "factorize_low_rank",
        "cluster_weights",
        "optimize_graph",
        "quantize_static",
        "quantize_weight_only",
    )
)

# Config class per pass type: what a recipe may hold. Built-in configs register in configs.py.
PASS_CONFIGS: dict[str, builtins.type[PassConfig]] = {}

PassConfigT = TypeVar("PassConfigT", bound=builtins.type[PassConfig])


def register_config(cls: PassConfigT) -> PassConfigT:
    """Class decorator: let recipes hold this config, under the default of its `type`."""
    config: builtins.type[PassConfig] = cls
    kind = config.model_fields["type"].default
    if PASS_CONFIGS.setdefault(kind, config) is not config:
        raise ValueError(f"pass config type {kind!r} registered twice")
    return cls


class _PassRegistry(Mapping[str, builtins.type[CompressionPass[Any]]]):
    """Pass classes by type; looking one up first imports the built-in passes' modules."""

    def __init__(self) -> None:
        self._passes: dict[str, builtins.type[CompressionPass[Any]]] = {}
        self._loaded = False

    def add(self, cls: builtins.type[CompressionPass[Any]]) -> None:
        if cls.type in self._passes:
            raise ValueError(f"pass type {cls.type!r} registered twice")
        self._passes[cls.type] = cls

    def _all(self) -> dict[str, builtins.type[CompressionPass[Any]]]:
        if not self._loaded:
            self._loaded = True
            for module in BUILTIN_PASS_MODULES:
                importlib.import_module(module)  # each registers its pass
        return self._passes

    def __getitem__(self, kind: str) -> builtins.type[CompressionPass[Any]]:
        return self._all()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


PASS_REGISTRY = _PassRegistry()

PassT = TypeVar("PassT", bound=builtins.type[CompressionPass[Any]])


def register_pass(cls: PassT) -> PassT:
    """Class decorator: make a pass reachable from recipes by its `type`."""
    PASS_REGISTRY.add(cls)
    if PASS_CONFIGS.setdefault(cls.type, cls.config_cls) is not cls.config_cls:
        raise ValueError(f"pass type {cls.type!r} has another config registered")
    return cls
