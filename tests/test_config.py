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
        ("clean.missing.fields.x.rule=constant", "config error: clean.missing.fields.x: Value error, rule 'constant' needs a 'value'"),
        ("nokey", "expected KEY=VALUE"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config("configs/pipeline.yaml", [override])
    message = str(err.value)
    assert expected in message and "\n" not in message


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(str(listy))
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("run: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        load_config(str(unsafe))
