"""Config loading: overrides, and one clear line for every kind of mistake."""
import pytest

from pipelines.config import ConfigError, load_config


def test_demo_config_loads_and_overrides_apply(tmp_path):
    cfg = load_config("configs/pipeline.yaml", ["clean.outliers.iqr_k=2.5", "run.name=x1", "clean.normalize.stem=porter"])
    assert cfg.clean.outliers.iqr_k == 2.5 and cfg.run.name == "x1" and cfg.clean.normalize.stem == "porter"
    assert cfg.clean.missing.fields["crawl_ts"].rule == "interpolate"


def test_defaults_without_a_file():
    cfg = load_config(None, ["clean.quality.c4.enabled=true"])
    assert cfg.clean.quality.c4.enabled and cfg.clean.outliers.enabled


@pytest.mark.parametrize(
    "override, expected",
    [
        ("clean.outliers.iqr_kk=2", "clean.outliers.iqr_kk: unknown key"),
        ("clean.outliers.iqr_k=abc", "clean.outliers.iqr_k: Input should be a valid number"),
        ("clean.outliers.iqr_k=-1", "clean.outliers.iqr_k: Input should be greater than 0"),
        ("clean.normalize.stem=lancaster", "clean.normalize.stem: Input should be 'porter', 'snowball' or 'wordnet'"),
        ("clean.bad_records.per_kind.bogus=drop", "unknown bad-record kind 'bogus'"),
        ("clean.bad_records.default=explode", "clean.bad_records.default: Input should be 'quarantine', 'drop' or 'fail'"),
        ("run.name=has space", "run.name: String should match pattern"),
        ("run.name=..", "run.name: Value error, '..' is not a run folder name"),  # the runs folder's parent
        ("run.name=.", "run.name: Value error, '.' is not a run folder name"),
        ("run.name=", "run.name: String should have at least 1 character"),
        ("clean.missing.fields.x.rule=constant", "config error: clean.missing.fields.x: Value error, rule 'constant' needs a 'value'"),
        ("nokey", "expected KEY=VALUE"),
        ("sft.max_steps=true", "sft.max_steps: Input should be a number, not a boolean (got true)"),  # was 1 step
        # numpy's seeding raised these as a traceback after the stage had started
        ("rl.seed=-1", "rl.seed: Input should be greater than or equal to 0 (got -1)"),
        ("sft.seed=4294967296", "sft.seed: Input should be less than 4294967296 (got 4294967296)"),
        ("dpo.seed=-5", "dpo.seed: Input should be greater than or equal to 0"),
        ("pretrain.seed=4294967296", "pretrain.seed: Input should be less than 4294967296"),
        ("train.seed=-1", "train.seed: Input should be greater than or equal to 0"),
        # an inf learning rate was a sampling traceback; an inf KL weight a "complete" run of skipped steps
        ("rl.lr=inf", "rl.lr: Input should be a finite number (got 'inf')"),
        ("rl.kl_coef=.inf", "rl.kl_coef: Input should be a finite number (got inf)"),
        ("sft.grad_clip=1e999", "sft.grad_clip: Input should be a finite number"),
        ("dpo.beta=.nan", "dpo.beta: Input should be a finite number"),
        ("rl.rewards.per_token=.inf", "rl.rewards.per_token: Input should be a finite number"),
        ("pretrain.generate.temperature=.inf", "pretrain.generate.temperature: Input should be a finite number"),
        ("train.lr=.inf", "train.lr: Input should be a finite number"),
        ("rl.lr=1e39", "rl.lr: Input should be less than or equal to 1"),  # finite, but a float32 overflow in AdamW
        # the data stages' options took these silently: NaN imputed into every missing value, no fence at all
        ("clean.missing.fields.x.value=.nan", "clean.missing.fields.x.value: Input should be a finite number (got nan)"),
        ("clean.outliers.iqr_k=.inf", "clean.outliers.iqr_k: Input should be a finite number (got inf)"),
        ("clean.outliers.features.n_chars.fixed_max=.nan", "clean.outliers.features.n_chars.fixed_max: Input should be a finite number"),
        ("clean.quality.gopher_quality.max_mean_word_len=.inf", "clean.quality.gopher_quality.max_mean_word_len: Input should be a finite number"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config("configs/pipeline.yaml", [override])
    message = str(err.value)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize("key", [
    "rl.train_file", "sft.train_file", "reward.train_file", "dpo.train_file", "lora.heldout_file", "dpo.eval_file",
    "rl.rewards.reward_model_dir", "rl.base", "sft.pretrain_data", "pretrain.input", "pretrain.init_from",
    "pack.tokenizer", "run.root", "clean.outliers.thresholds_file", "sample_data.output",
])
def test_an_empty_path_is_refused_not_read_as_the_current_folder_or_a_default(key):
    # `--set rl.train_file=$UNSET` was a FileNotFoundError traceback; an empty thresholds_file silently computed them
    with pytest.raises(ConfigError) as err:
        load_config("configs/pipeline.yaml", [f"{key}="])
    assert f"{key}: Value error, a path cannot be empty" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, says", [
    ("run: [unclosed\n", "not valid YAML"),
    ("run:\n\tname: x\n", "line 2: not valid YAML: found character '\\\\t' that cannot start any token"),  # what, not only where
    ("- a\n- b\n", "expected a mapping"),
    ("run: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    # PyYAML keeps the last of two equal keys silently: a section written twice lost its first half
    ("dedup:\n  threshold: 0.8\n  threshold: 0.9\n", "line 3: not valid YAML: duplicate key 'threshold' \\(first on line 2\\)"),
    ("dedup:\n  threshold: 0.8\nclean: {}\ndedup:\n  threshold: 0.9\n", "duplicate key 'dedup'"),
])
def test_bad_files(tmp_path, content, says):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    with pytest.raises(ConfigError, match=says) as err:
        load_config(str(bad))
    assert "\n" not in str(err.value)


def test_merge_keys_still_work_and_a_key_after_one_overrides_it(tmp_path):
    merged = tmp_path / "merged.yaml"
    merged.write_text("train: &shared\n  lr: 0.002\nsft:\n  <<: *shared\n  max_steps: 7\nlora:\n  <<: *shared\n  lr: 0.004\n")
    cfg = load_config(str(merged))
    assert (cfg.sft.lr, cfg.sft.max_steps, cfg.lora.lr) == (0.002, 7, 0.004)


def test_a_config_path_that_is_not_a_file_says_what_it_is(tmp_path):
    for path, says in ((str(tmp_path), "is a directory"), ("/dev/null", "is not a regular file"), ("", "not found: ''")):
        with pytest.raises(ConfigError, match=says):
            load_config(path)


def test_cli_run_name_empty_is_refused_and_a_wrapped_ctrl_c_counts_as_one(capsys):
    from pipelines import cli

    assert cli.main(["config", "--show", "--config", "configs/pipeline.yaml", "--run-name", ""]) == 2
    assert "run.name: String should have at least 1 character" in capsys.readouterr().err
    try:  # what Beam raises for a Ctrl-C inside a DoFn: main says "interrupted" (130), not a traceback
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("KeyboardInterrupt [while running 'Score/ParDo(ScoreDocument)']") from None
    except RuntimeError as err:
        wrapped = err
    assert cli._interrupted(wrapped) == cli._interrupted(KeyboardInterrupt()) == "interrupted"
    assert cli._interrupted(RuntimeError(f"{cli._TERMINATED_NAME} [while running 'Score']")) == "terminated"
    assert cli._interrupted(RuntimeError("ValueError: bad [while running 'Score']")) is None


def test_sigterm_stops_a_command_with_one_line_and_status_143(monkeypatch, capsys):
    """A scheduler's SIGTERM unwinds as Ctrl-C does (Python's default ends the process without a
    word): one line, exit 128 + 15, and the handler from before main is back after it."""
    import os
    import signal

    from pipelines import cli

    def unhandled(*_):  # were main to leave SIGTERM alone, this fails the test instead of ending pytest
        raise AssertionError("main did not handle SIGTERM")

    before = signal.signal(signal.SIGTERM, unhandled)
    args = cli.build_parser().parse_args(["config", "--show"])

    def killed(*_):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal did not stop the command")

    args.func = killed
    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {"parse_args": lambda self, argv: args})())
    capsys.readouterr()
    try:
        assert cli.main(["config", "--show"]) == 143
        assert capsys.readouterr().err == "llmpipe: terminated\n" and signal.getsignal(signal.SIGTERM) is unhandled
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("argv, option", [
    (["generate", "--model", "", "--prompt", "x"], "--model"),
    (["rl", "--output", ""], "--output"),
    (["sft", "--base", ""], "--base"),
    (["clean", "--input", ""], "--input"),
    (["reward", "score", "--model", "", "--input", "rows.jsonl"], "--model"),
    (["generate", "--model", "m", "--prompt", "x", "--best-of", "2", "--reward-model", ""], "--reward-model"),
    (["run", "--config", ""], "--config"),
    (["clean", "--thresholds", ""], "--thresholds"),
    (["pack", "--tokenizer", ""], "--tokenizer"),
])
def test_an_empty_path_option_is_one_line(argv, option, capsys):
    """An empty path (an unset shell variable) is refused before anything runs, not taken for the
    option's default or the current folder."""
    from pipelines.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"llmpipe: error: {option} is empty: give a path (an unset shell variable?)\n"
