"""The training command line (lib.engine.cli): options generated from the config dataclasses, round trips, old names."""

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lib.augment import AugmentConfig
from lib.engine.cli import CONFIG_GROUPS, config_options, config_to_argv, configs_from_args, main, parser
from lib.dsp.features import FeatureConfig
from lib.settings import settings
from lib.engine.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _configs(argv: list[str]) -> tuple[FeatureConfig, TrainConfig]:
    return configs_from_args(parser().parse_args(argv))


def test_every_config_field_has_an_option_with_help():
    options = {(o.group, o.field.name): o for o in config_options()}
    for group, cls in CONFIG_GROUPS.items():
        for field in dataclasses.fields(cls):
            if field.name == "augment" and cls is TrainConfig:
                continue  # the augment group
            assert (group, field.name) in options, f"{cls.__name__}.{field.name} has no command-line option"
            assert options[(group, field.name)].help, f"{cls.__name__}.{field.name} has no help text"
    flags = [name for o in options.values() for name in o.names]
    assert len(flags) == len(set(flags))  # no two fields share an option
    assert "--hop-length" in flags and "--n-fft" in flags and "--mixed-precision" in flags


def test_no_options_give_the_default_configs():
    assert _configs([]) == (FeatureConfig(), TrainConfig())


def _unusual_configs() -> tuple[FeatureConfig, TrainConfig]:
    feature = FeatureConfig(sample_rate=22050, clip_seconds=1.5, kind="linear", n_fft=1024, win_length=None,
                            hop_length=128, n_mels=64, f_min=0.0, f_max=8000.0, power=1.0, top_db=None, n_mfcc=20,
                            normalization="per_bin", lifter=20)
    augment = AugmentConfig(time_shift_sec=0.2, noise_probability=0.3, snr_db_min=0.0, snr_db_max=20.0,
                            noise_kinds=("pink",), gain_db=4.5, freq_mask_param=5, n_freq_masks=1,
                            time_mask_param=7, n_time_masks=3, freq_warp=0.1, time_stretch=0.15,
                            reverb_probability=0.25, rt60_sec_max=0.9, mixup_alpha=0.2, eq_probability=0.4,
                            eq_db=6.0, domain="waveform")
    train = TrainConfig(model="resnet18", epochs=3, batch_size=32, optimizer="sgd", learning_rate=0.003,
                        weight_decay=1e-4, momentum=0.8, scheduler="cosine", label_smoothing=0.0, augment=augment,
                        validation_fraction=0.2, test_fraction=0.1, test_fold=2, validation_fold=1, seed=11,
                        device="cpu", mixed_precision=False, memory_format="channels_last", max_batches=5,
                        steps=40, finetune="last",
                        backbone_lr_scale=0.05, backbone_run="my-words", weights_file="my-imagenet.pth")
    return feature, train


@pytest.mark.parametrize("every_field", [False, True])
@pytest.mark.parametrize("which", ["default", "unusual"])
def test_configs_round_trip_through_the_command_line(which, every_field):
    feature, train = (FeatureConfig(), TrainConfig()) if which == "default" else _unusual_configs()
    argv = config_to_argv(feature, train, every_field=every_field)
    assert _configs(argv) == (feature, train)
    assert _configs(shlex.split(shlex.join(argv))) == (feature, train)  # as typed into a shell
    if which == "default" and not every_field:
        assert argv == []
    # every field but `pretrained` differs from its default in the unusual configs, so each one is written
    # (`pretrained=False` cannot go with a weights file: test_pretrained_false_round_trips)
    if which == "unusual":
        assert len([a for a in argv if a.startswith("--")]) == len(config_options()) - (0 if every_field else 1)


def test_pretrained_false_round_trips_and_refuses_a_weights_file():
    train = TrainConfig(model="resnet18", pretrained=False)
    assert config_to_argv(FeatureConfig(), train) == ["--model", "resnet18", "--no-pretrained"]
    assert _configs(["--model", "resnet18", "--no-pretrained"])[1] == train
    with pytest.raises(ValueError, match="pretrained is False"):
        TrainConfig(model="resnet18", pretrained=False, weights_file="mine.pth")


def test_the_makefile_default_model_command_keeps_its_meaning():
    """The options `make default-model` uses, with the meaning they had before the options were generated."""
    line = re.search(r"-m lib\.engine\.train (.*?)\n\n", (ROOT / "Makefile").read_text(), re.S).group(1)
    args = parser().parse_args(shlex.split(line.replace("\\\n", " ")))
    feature, train = configs_from_args(args)
    assert feature == FeatureConfig()
    assert train == TrainConfig(model="kws_resnet_x5", epochs=20, memory_format="contiguous",
                                augment=AugmentConfig(freq_warp=0.15, time_stretch=0.2, noise_probability=0.5,
                                                      reverb_probability=0.3, domain="waveform"))
    assert (args.dataset, args.piper_clips_per_word, args.kokoro_clips_per_word) == ("builtin", 100, 250)
    assert (args.run_id, args.out, args.force) == ("default", "models", True)


def test_backbone_is_another_name_for_model():
    assert _configs(["--backbone", "efficientnet_lite0", "--finetune", "frozen"])[1].model == "efficientnet_lite0"
    assert "--backbone" in parser().format_help()


def test_older_option_names_still_work():
    feature, train = _configs(["--feature-kind", "mfcc", "--augment-domain", "waveform", "--freq-masks", "1",
                               "--time-masks", "3", "--n-mels", "64", "--clip-seconds", "2", "--test-fold", "2"])
    assert (feature.kind, feature.n_mels, feature.clip_seconds) == ("mfcc", 64, 2.0)
    augment = train.augment
    assert (augment.domain, augment.n_freq_masks, augment.n_time_masks, train.test_fold) == ("waveform", 1, 3, 2)
    assert _configs(["--n-freq-masks", "4"])[1].augment.n_freq_masks == 4


def test_folders_default_to_the_operators():
    args = parser().parse_args([])
    assert Path(args.data_dir) == settings().data_dir and Path(args.out) == settings().runs_dir


@pytest.mark.parametrize("argv, message", [(["--hop-length", "0"], "hop_length"),
                                           (["--noise-probability", "2"], "noise_probability"),
                                           (["--augment-domain", "fourier"], "domain"),
                                           (["--noise-kinds", "purple"], "noise_kinds")])
def test_out_of_range_values_are_refused_with_the_field_named(argv, message, capsys):
    assert main(argv + ["--dataset", "does-not-matter"]) == 2
    assert message in capsys.readouterr().err


def test_a_value_of_the_wrong_type_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--hop-length", "many"])
    assert exit_info.value.code == 2 and "--hop-length" in capsys.readouterr().err


def test_python_m_lib_train_still_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "lib.engine.train", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--hop-length" in done.stdout and "--piper-clips-per-word" in done.stdout


def test_command_line_trains_and_saves(builtin_cache, tmp_path, capsys):
    code = main(["--dataset", "builtin", "--words", "yes,no,up", "--clips-per-word", "24", "--data-seed", "7",
                 "--data-dir", str(builtin_cache.parent), "--model", "tutorial_cnn", "--epochs", "1",
                 "--batch-size", "16", "--out", str(tmp_path), "--run-id", "cli"])
    out = capsys.readouterr().out
    assert code == 0 and "saved run cli" in out and (tmp_path / "cli" / "model.pt").is_file()


def test_cross_validation_over_official_folds(builtin_cache, tiny_dataset, tmp_path, capsys):
    # a CSV manifest with a fold column over the tiny built-in clips (fold = clip number mod 3)
    manifest = tmp_path / "folds.csv"
    rows = [f"{path},{tiny_dataset.class_names[label]},{i % 3 + 1}"
            for i, (path, label) in enumerate(zip(tiny_dataset.paths, tiny_dataset.labels))]
    manifest.write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    code = main(["--dataset", str(manifest), "--model", "tutorial_cnn", "--epochs", "1", "--batch-size", "16",
                 "--cross-validate", "--out", str(tmp_path / "runs"), "--run-id", "cv"])
    out = capsys.readouterr().out
    assert code == 0 and "3-fold cross-validation: test accuracy" in out and "±" in out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["cv-fold1", "cv-fold2", "cv-fold3"]


def test_command_line_passes_recipe_flags_into_the_saved_run(tiny_dataset, tmp_path, capsys):
    import json

    manifest = tmp_path / "tiny.csv"
    manifest.write_text("path,label\n" + "\n".join(f"{p},{tiny_dataset.class_names[y]}"
                                                   for p, y in zip(tiny_dataset.paths, tiny_dataset.labels)) + "\n")
    code = main(["--dataset", str(manifest), "--model", "kws_resnet_x3", "--epochs", "1", "--batch-size", "16",
                 "--freq-warp", "0.15", "--reverb-probability", "0.3", "--rt60-sec-max", "0.4",
                 "--eq-probability", "0.5", "--eq-db", "8", "--gain-db", "3", "--lifter", "20",
                 "--out", str(tmp_path / "runs"), "--run-id", "recipe"])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "runs" / "recipe" / "config.json").read_text())
    augment = saved["train_config"]["augment"]
    assert saved["model"] == "kws_resnet_x3" and saved["feature_config"]["lifter"] == 20
    assert (augment["freq_warp"], augment["reverb_probability"], augment["rt60_sec_max"], augment["eq_probability"],
            augment["eq_db"], augment["gain_db"]) == (0.15, 0.3, 0.4, 0.5, 8.0, 3.0)
