"""The fixed rule sets are declared once (RULES) and run in the order the YAML names."""
import re

import pytest

from llmdata.quality import DEFAULT_ORDER, RULES, QualityOptions, apply_rules
from pipelines.config import ConfigError, load_config

SHORT = "Too short.\nToo short.\nToo short."  # fails Gopher quality (min_words) and FineWeb (duplicated lines)
PROSE = ("The quick brown fox jumps over the lazy dog and then it runs into the forest to find the other animals. "
         "It is not the first time that the fox has done this, and it will not be the last time either.\n") * 3


def _declared(spec) -> re.Pattern:
    return re.compile("|".join(re.escape(s).replace(r"\{n\}", r"\d+") for s in spec.scores))


def test_each_rule_set_writes_exactly_the_scores_it_declares():
    for name, spec in RULES.items():
        opts = QualityOptions(**{name: {"enabled": True}})
        declared = _declared(spec)
        for text in (SHORT, PROSE):
            _, scores, _ = apply_rules(text, opts, lang="en")
            assert all(declared.fullmatch(k) for k in scores), (name, sorted(scores))
        _, scores, _ = apply_rules(PROSE, opts, lang="en")
        for pattern in spec.scores:  # every declared score is written on a text that passes
            assert any(re.fullmatch(re.escape(pattern).replace(r"\{n\}", r"\d+"), k) for k in scores), (name, pattern)
    assert list(RULES) == list(DEFAULT_ORDER)


def test_the_order_decides_which_failing_rule_names_the_reason():
    both = {"gopher_quality": {"enabled": True}, "fineweb": {"enabled": True}}
    first, _, _ = apply_rules(SHORT, QualityOptions(**both), lang="en")
    assert first.startswith("gopher_quality:")
    reordered, _, _ = apply_rules(SHORT, QualityOptions(order=["fineweb", "gopher_quality"], **both), lang="en")
    assert reordered.startswith("fineweb:")


@pytest.mark.parametrize("override, says", [
    ("clean.quality.order=[c4, c5]", "order: unknown rule set 'c5'"),
    ("clean.quality.order=[c4, c4]", "order: a rule set is named twice"),
])
def test_a_bad_order_is_one_config_error(override, says):
    with pytest.raises(ConfigError, match=says):
        load_config("configs/pipeline.yaml", [override])
    assert load_config("configs/pipeline.yaml").clean.quality.order == list(DEFAULT_ORDER)
