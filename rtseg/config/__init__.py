"""Frozen configuration dataclasses, parsed once from TOML + flags and never mutated:
training recipes (`rtseg.config.recipe`) and the commands' settings
(`rtseg.config.commands`), all importable from here."""

from rtseg.config.commands import (
    COMPILE_FORMATS,
    DEFAULT_ENDPOINT,
    ENGINE_FORMATS,
    FLIPS,
    MASK_SIZES,
    OVERLAP_MODES,
    PRECISIONS,
    ROTATIONS,
    RUN_ENGINES,
    BenchConfig,
    CompileConfig,
    RunConfig,
    check_choice,
    parse_crop,
    parse_mask_size,
    parse_size,
)
from rtseg.config.recipe import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    ModelConfig,
    OutputConfig,
    TrainConfig,
    TrainParams,
    apply_overrides,
    build_dataclass,
    load_train_config,
)

__all__ = [
    "COMPILE_FORMATS", "DEFAULT_ENDPOINT", "ENGINE_FORMATS", "FLIPS", "MASK_SIZES",
    "OVERLAP_MODES", "PRECISIONS", "ROTATIONS", "RUN_ENGINES", "AugmentConfig", "BenchConfig",
    "CompileConfig", "DataConfig", "DistillConfig", "ModelConfig", "OutputConfig", "RunConfig",
    "TrainConfig", "TrainParams",
    "apply_overrides", "build_dataclass", "check_choice", "load_train_config",
    "parse_crop", "parse_mask_size", "parse_size",
]
