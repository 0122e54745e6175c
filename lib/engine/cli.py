"""The training command line (``python -m lib.engine.train --help``), generated from the configuration dataclasses.

Every field of :class:`lib.dsp.features.FeatureConfig`, :class:`lib.augment.AugmentConfig` and
:class:`lib.engine.train.TrainConfig` is an option ``--field-name`` with the field's type and default, its help taken
from the class docstring's ``Attributes:`` section (or the field's ``metadata["help"]``). So a run trained in the
app can be trained again from the command line: :func:`config_to_argv` writes the options of a run's configs.

A few fields keep the names the command line always had: ``--feature-kind`` (``FeatureConfig.kind``),
``--backbone`` (another name of ``--model``, for the pretrained ones),
``--augment-domain`` (``AugmentConfig.domain``), ``--freq-masks`` / ``--time-masks`` (``n_freq_masks`` /
``n_time_masks``, also accepted under their field names). Values: ``none`` for an optional field left unset,
comma-separated words for a tuple (``--noise-kinds white,pink``), ``--mixed-precision`` /
``--no-mixed-precision`` for a switch.

The dataset options (built-in set, folder, CSV or catalog key), ``--data-dir`` and ``--out`` (default: the
operator's folders, :func:`lib.settings.settings`) and the run's name come on top.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lib.augment import AugmentConfig
from lib.config import ConfigDict
from lib.data.sources import AudioDataset
from lib.dsp.features import KINDS, NORMALIZATIONS, FeatureConfig
from lib.models import MODELS
from lib.engine.runs import new_run_id
from lib.settings import settings
from lib.engine.train import (MEMORY_FORMATS, OPTIMIZERS, SCHEDULERS, DoneEvent, EpochEvent, StartEvent, StepEvent,
                       TrainConfig, iter_training)

__all__ = ["CONFIG_GROUPS", "config_options", "parser", "add_dataset_options", "add_config_options",
           "add_runs_option", "configs_from_args", "config_to_argv", "load_dataset_arg", "main"]

#: The configuration dataclasses on the command line, by group name (the group names the ``argparse`` dests).
CONFIG_GROUPS: dict[str, type[ConfigDict]] = {"feature": FeatureConfig, "augment": AugmentConfig,
                                              "train": TrainConfig}

#: Option names other than ``--field-name`` (the first is the one :func:`config_to_argv` writes).
OPTION_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("feature", "kind"): ("--feature-kind",),
    ("augment", "domain"): ("--augment-domain",),
    ("train", "model"): ("--model", "--backbone"),
    ("augment", "n_freq_masks"): ("--freq-masks", "--n-freq-masks"),
    ("augment", "n_time_masks"): ("--time-masks", "--n-time-masks"),
}

#: Allowed values of the fields that name one of a few choices (the dataclasses check them again).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("feature", "kind"): KINDS, ("feature", "normalization"): NORMALIZATIONS, ("train", "model"): tuple(MODELS),
    ("train", "optimizer"): OPTIMIZERS, ("train", "scheduler"): SCHEDULERS,
    ("train", "memory_format"): MEMORY_FORMATS,
}


# --------------------------------------------------------------------------------------------- the options
@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """One dataclass field as a command-line option.

    Attributes:
        group: the key of :data:`CONFIG_GROUPS` (``"feature"``, ``"augment"`` or ``"train"``).
        field: the dataclass field.
        names: the option strings, ``--field-name`` or those of :data:`OPTION_NAMES`.
        kind: the value's type: ``bool``, ``int``, ``float``, ``str`` or ``tuple`` (of words).
        optional: ``None`` is allowed (written ``none``).
        default: the field's default.
        help: what the field means.
    """

    group: str
    field: dataclasses.Field
    names: tuple[str, ...]
    kind: type
    optional: bool
    default: Any
    help: str

    @property
    def dest(self) -> str:
        """The ``argparse`` attribute: ``<group>__<field>``."""
        return f"{self.group}__{self.field.name}"

    def parse(self, text: str) -> Any:
        """The value of ``text`` on the command line."""
        if self.optional and text.strip().lower() == "none":
            return None
        if self.kind is tuple:
            return tuple(word.strip() for word in text.split(",") if word.strip())
        return self.kind(text)

    def format(self, value: Any) -> str:
        """``value`` as this option's text (what :meth:`parse` reads back as the same value)."""
        if value is None:
            return "none"
        if isinstance(value, tuple):
            return ",".join(value)
        return repr(value) if isinstance(value, float) else str(value)


def _field_docs(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of ``cls``'s Google-style docstring."""
    docs, name, indent, inside = {}, None, None, False
    for line in (inspect.getdoc(cls) or "").splitlines():
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if line.strip() and not line.startswith(" "):
            break  # the next section
        match = re.match(r"^(\s+)(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent, name = len(match.group(1)), match.group(2)
            docs[name] = match.group(3)
        elif name and line.strip():
            docs[name] += " " + line.strip()
    return docs


def _plain(text: str) -> str:
    """Docstring markup as plain ``--help`` text (roles and double backquotes dropped, ``%`` escaped)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
    return text.replace("%", "%%")


def _value_type(annotation: Any) -> tuple[type, bool]:
    """``(kind, optional)`` of a field's resolved annotation, e.g. ``int | None`` gives ``(int, True)``."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _value_type(inner)[0], True
    if typing.get_origin(annotation) is tuple:
        return tuple, False
    if annotation in (bool, int, float, str):
        return annotation, False
    raise TypeError(f"no command-line type for the annotation {annotation!r}")


def config_options() -> list[ConfigOption]:
    """One :class:`ConfigOption` per field of the configuration dataclasses (a nested config is its own group)."""
    options = []
    for group, cls in CONFIG_GROUPS.items():
        hints, docs = typing.get_type_hints(cls), _field_docs(cls)
        for field in dataclasses.fields(cls):
            if isinstance(hints[field.name], type) and issubclass(hints[field.name], ConfigDict):
                continue  # TrainConfig.augment: the "augment" group
            kind, optional = _value_type(hints[field.name])
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            names = OPTION_NAMES.get((group, field.name), ("--" + field.name.replace("_", "-"),))
            options.append(ConfigOption(group, field, names, kind, optional, default,
                                        field.metadata.get("help") or docs.get(field.name, "")))
    return options


def _add_option(group: argparse._ArgumentGroup, option: ConfigOption) -> None:
    shown = option.format(option.default) if option.kind is not bool else str(option.default).lower()
    text = _plain(option.help.rstrip(". ") + f" (default: {shown})")
    if option.kind is bool:
        group.add_argument(*option.names, dest=option.dest, action=argparse.BooleanOptionalAction,
                           default=option.default, help=text)
        return
    choices = CHOICES.get((option.group, option.field.name))
    group.add_argument(*option.names, dest=option.dest, type=option.parse, default=option.default, choices=choices,
                       metavar=None if choices else option.field.name.upper(), help=text)


def parser() -> argparse.ArgumentParser:
    """The training command line's parser: dataset options, one option per config field, the run's name."""
    p = argparse.ArgumentParser(prog="python -m lib.engine.train", description="Train an audio classifier and save the run.")
    add_dataset_options(p)
    p.add_argument("--cross-validate", action="store_true",
                   help="k-fold cross-validation over the dataset's official folds; reports mean ± std accuracy")
    add_config_options(p)
    run = p.add_argument_group("the saved run")
    run.add_argument("--run-id", help="name of the saved run (default: time-model-suffix)")
    add_runs_option(run)
    run.add_argument("--force", action="store_true", help="overwrite a run of the same name")
    return p


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """The dataset options (``--dataset``, the built-in set's, ``--data-dir``) that :func:`load_dataset_arg` reads."""
    from lib.data.synth.builtin import BuiltinSpec

    builtin, folders = BuiltinSpec(), settings()
    data = p.add_argument_group("dataset")
    data.add_argument("--dataset", default="builtin",
                      help="'builtin', a real dataset key (see `python -m lib.data.download --list`), a folder of class "
                           "sub-folders, or a CSV manifest")
    data.add_argument("--words", help="built-in set: comma-separated words (default: the ten Speech Commands "
                                      "keywords)")
    data.add_argument("--clips-per-word", type=int, default=builtin.clips_per_word,
                      help="built-in set: clips of each word (and of _unknown_ / _silence_ when included)")
    data.add_argument("--n-speakers", type=int, default=builtin.n_speakers,
                      help="built-in set: synthetic speakers (eSpeak accent + voice variant identities)")
    data.add_argument("--female-share", type=float, default=builtin.female_share,
                      help="built-in set: fraction of female voices (-1: draw every eSpeak variant alike)")
    data.add_argument("--piper-clips-per-word", type=int, default=builtin.piper_clips_per_word,
                      help="built-in set: extra clips of each word said by the Piper neural voice")
    data.add_argument("--kokoro-clips-per-word", type=int, default=builtin.kokoro_clips_per_word,
                      help="built-in set: extra clips of each word said by Kokoro neural voices (slower to make)")
    data.add_argument("--unknown", action="store_true", help="built-in set: add the _unknown_ class")
    data.add_argument("--silence", action="store_true", help="built-in set: add the _silence_ class")
    data.add_argument("--data-seed", type=int, default=0, help="built-in set: generation seed")
    data.add_argument("--data-dir", default=str(folders.data_dir),
                      help="where datasets are downloaded and cached (default: $AUDIOWB_DATA_DIR or the "
                           "repository's data/)")


def add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per field of the configuration dataclasses, in three groups (:func:`configs_from_args` reads)."""
    groups = {"feature": p.add_argument_group("features (lib.dsp.features.FeatureConfig)"),
              "augment": p.add_argument_group("augmentation (lib.augment.AugmentConfig)"),
              "train": p.add_argument_group("training (lib.engine.train.TrainConfig)")}
    for option in config_options():
        _add_option(groups[option.group], option)


def add_runs_option(group: argparse._ActionsContainer) -> None:
    """``--out``: the folder of saved runs (default: the operator's)."""
    group.add_argument("--out", default=str(settings().runs_dir),
                       help="folder of saved runs (default: $AUDIOWB_RUNS_DIR or the repository's models/)")


def configs_from_args(args: argparse.Namespace) -> tuple[FeatureConfig, TrainConfig]:
    """The feature and training configs the parsed options describe.

    Raises:
        ValueError: A value is out of its field's range (the message names the field).
    """
    values: dict[str, dict[str, Any]] = {group: {} for group in CONFIG_GROUPS}
    for option in config_options():
        values[option.group][option.field.name] = getattr(args, option.dest)
    return (FeatureConfig(**values["feature"]),
            TrainConfig(**values["train"], augment=AugmentConfig(**values["augment"])))


def config_to_argv(feature_config: FeatureConfig, train_config: TrainConfig, every_field: bool = False) -> list[str]:
    """The options that give these configs back through :func:`parser` and :func:`configs_from_args`.

    Args:
        feature_config: the run's features.
        train_config: the run's training settings (its augmentation included).
        every_field: write every field, not only those that differ from their defaults (a command line that
            still means the same run if a default changes later).

    Returns:
        The option strings, e.g. ``["--hop-length", "128", "--epochs", "20"]``.
    """
    configs = {"feature": feature_config, "augment": train_config.augment, "train": train_config}
    argv = []
    for option in config_options():
        value = getattr(configs[option.group], option.field.name)
        if value == option.default and not every_field:
            continue
        if option.kind is bool:
            argv.append(option.names[0] if value else "--no-" + option.names[0][2:])
        else:
            argv += [option.names[0], option.format(value)]
    return argv


# --------------------------------------------------------------------------------------------- the command
def load_dataset_arg(spec: str, args: argparse.Namespace, feature_config: FeatureConfig) -> AudioDataset:
    """``builtin``, a catalog key (``esc50``, ``speech_commands_v2``, ...), a folder of class sub-folders, or a CSV.

    A catalog dataset is cached at the features' sample rate and clip length, as the app does.
    """
    from lib.data.synth.builtin import BuiltinSpec
    from lib.data.catalog import CATALOG
    from lib.data.sources import load_source

    data_dir = Path(args.data_dir)
    if spec in CATALOG:
        from lib.data.download import fetch_dataset

        source = {"kind": "catalog", "key": spec, "root": str(fetch_dataset(spec, data_dir)),
                  "clip_seconds": feature_config.clip_seconds, "sample_rate": feature_config.sample_rate}
    elif spec == "builtin":
        options = {}
        if args.words:
            options["words"] = tuple(w.strip() for w in args.words.split(",") if w.strip())
        options.update(clips_per_word=args.clips_per_word, include_unknown=args.unknown,
                       include_silence=args.silence, seed=args.data_seed, n_speakers=args.n_speakers,
                       female_share=None if args.female_share < 0 else args.female_share,
                       piper_clips_per_word=args.piper_clips_per_word,
                       kokoro_clips_per_word=args.kokoro_clips_per_word)
        source = {"kind": "builtin", "spec": asdict(BuiltinSpec(**options))}
    else:
        source = {"kind": "csv" if Path(spec).suffix.lower() == ".csv" else "folder", "path": spec}
    return load_source(source, data_dir)


def main(argv: list[str] | None = None) -> int:
    """Train (or cross-validate) from the command line; returns the exit status (0 done, 1 failed, 2 bad input)."""
    args = parser().parse_args(argv)
    try:
        feature_config, config = configs_from_args(args)
        dataset = load_dataset_arg(args.dataset, args, feature_config)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if dataset.failed:
        print(f"skipped {len(dataset.failed)} file(s) that could not be decoded", file=sys.stderr)
    if args.cross_validate:
        return _cross_validate(dataset, feature_config, config, args)
    return _train_once(dataset, feature_config, config, args)


def _cross_validate(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig,
                    args: argparse.Namespace) -> int:
    """Train once per official fold held out for test; print each fold's and the mean ± std test accuracy."""
    if dataset.folds is None:
        print(f"error: {dataset.name!r} has no official folds to cross-validate over", file=sys.stderr)
        return 2
    accuracies = []
    for fold in sorted(set(dataset.folds)):
        run_id = f"{args.run_id or new_run_id(config.model)}-fold{fold}"
        print(f"--- fold {fold} held out for test")
        code = _train_once(dataset, feature_config, config.replace(test_fold=fold, validation_fold=None), args,
                           run_id=run_id, on_done=lambda done: accuracies.append(done.metrics["test"]["accuracy"]))
        if code != 0:
            return code
    mean, std = float(np.mean(accuracies)), float(np.std(accuracies))
    print(f"{len(accuracies)}-fold cross-validation: test accuracy {mean:.1%} ± {std:.1%} "
          f"({', '.join(f'{a:.1%}' for a in accuracies)})")
    return 0


def _train_once(dataset: AudioDataset, feature_config: FeatureConfig, config: TrainConfig, args: argparse.Namespace,
                run_id: str | None = None, on_done: Callable[[DoneEvent], None] | None = None) -> int:
    from tqdm import tqdm

    bar = None
    for event in iter_training(dataset, feature_config, config, runs_root=args.out, run_id=run_id or args.run_id,
                               overwrite=args.force):
        if isinstance(event, StartEvent):
            print(f"{dataset.name}: {event.n_train} train / {event.n_validation} validation / {event.n_test} test "
                  f"clips, {len(dataset.class_names)} classes; {config.model} ({event.n_parameters:,} parameters) "
                  f"on {event.device}")
            bar = tqdm(total=event.total_steps, unit="step", dynamic_ncols=True)
        elif isinstance(event, StepEvent):
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.3f}", samples_s=f"{event.samples_per_sec:.0f}")
        elif isinstance(event, EpochEvent):
            bar.write(f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.3f} "
                      f"acc {event.train_accuracy:.1%} | val loss {event.val_loss:.3f} acc {event.val_accuracy:.1%}")
        elif isinstance(event, DoneEvent):
            if bar:
                bar.close()
            print(event.message)
            if event.run_path:
                print(f"saved run {event.run_id} in {event.run_path}")
            if on_done and event.status != "failed":
                on_done(event)
            return 0 if event.status != "failed" else 1
    return 1


if __name__ == "__main__":
    from lib.device import keep_freed_memory

    keep_freed_memory()  # a process of its own that trains
    sys.exit(main())
