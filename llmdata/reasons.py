"""The names the data stages write and their readers match: record fields, outcome kinds, and
every reason a record leaves a stage (quarantine kinds, reject reasons, duplicate kinds).

Every name is a plain `str` (a class attribute of a `Names` group), so the JSON the stages write
is the same as with literal strings and Beam encodes records with its fast coder (an Enum member
would fall back to pickling). The docstring under each name says what it means. A reason that
carries detail (`gopher_quality:min_words`, `outlier:n_chars:high`, `invalid JSON: ...`) is built
by one function here, and `parse_reason` turns any reason a data stage writes back into its parts,
raising `UnknownReasonError` for one this module does not name. Readers match kinds through
`Names.check`, which raises on an unknown kind instead of reading it as zero.

No Beam, DeepSpeed or torch import: the trainer, the stages and the reports all read this module.
"""
from __future__ import annotations

import re
from typing import ClassVar, NamedTuple

from llmdata.errors import LlmpipeError


class UnknownReasonError(LlmpipeError, ValueError):
    """A reason, outcome or kind that `llmdata.reasons` does not name (a writer and a reader that
    disagree, or a misspelling)."""


class Names:
    """A group of names: each UPPER_CASE `str` attribute of a subclass is one member.

    `values()` lists the members in declaration order, `check(value)` returns `value` when it is
    a member and raises UnknownReasonError otherwise.
    """

    _members: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._members = tuple(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every member, in declaration order."""
        return cls._members

    @classmethod
    def check(cls, value: str) -> str:
        """`value` when it is a member; UnknownReasonError (naming the known ones) otherwise."""
        if value not in cls._members:
            raise UnknownReasonError(f"unknown {cls.__name__} {value!r} (known: {', '.join(cls._members)})")
        return value


# ---------------------------------------------------------------- record fields


class RecordField(Names):
    """Fields of a document record as the data stages write it (jsonl, one object per line)."""

    ID = "id"
    """The document's id: the input's own id field, else a hash of (file, position) (`records.stable_id`)."""
    TEXT = "text"
    """The document's text (after clean: normalized, and rewritten by C4's line filter when it runs)."""
    SOURCE = "source"
    """Where the document came from: the input's own `source` field, else the file, relative to the input glob."""
    META = "meta"
    """Every other input field (numeric ones imputed by the clean stage)."""
    ORIGIN = "origin"
    """{"file", "line"}: the raw unit the record was parsed from, kept from the first stage on."""
    SCORES = "scores"
    """{feature: value}: the clean stage's document features, junk scores and rule scores."""
    IMPUTED = "imputed"
    """The meta fields the clean stage filled in, with the rule that filled each."""
    REASON = "reason"
    """Why the record was rejected (clean's rejected/: a junk, rule or outlier reason)."""
    CLUSTER = "cluster"
    """The duplicate cluster (dedup): the id of its root; absent for a document without duplicates."""
    DUPLICATE_OF = "duplicate_of"
    """The id of the document a removed duplicate was matched to (dedup's removed/)."""
    DUP_KIND = "dup_kind"
    """Why dedup removed the record: a `DupKind`."""
    LINES_REMOVED = "lines_removed"
    """How many repeated lines dedup's line-level pass removed from the document."""
    LANG = "lang"
    """The identified language code (`und`: no letters, `code`: mostly source code)."""
    LANG_SCORE = "lang_score"
    """The language identifier's probability for `lang`."""
    SCRIPT = "script"
    """The dominant Unicode script of the text (`llmdata.scripts`)."""
    GROUP = "group"
    """The outlier filter's group of the document (`llmdata.outliers.group_name`)."""
    THRESHOLD_GROUP = "threshold_group"
    """The group whose outlier thresholds judged the document (null: not judged)."""


#: Fields a stage adds to a record; reading a stage's output back keeps them where they were.
STAGE_FIELDS = (RecordField.ORIGIN, RecordField.SCORES, RecordField.IMPUTED, RecordField.REASON, RecordField.CLUSTER,
                RecordField.DUPLICATE_OF, RecordField.DUP_KIND, RecordField.LINES_REMOVED)
#: Fields the clean stage adds about the document's language, script and outlier group.
LANGUAGE_FIELDS = (RecordField.LANG, RecordField.LANG_SCORE, RecordField.SCRIPT, RecordField.GROUP,
                   RecordField.THRESHOLD_GROUP)


class QuarantineField(Names):
    """Fields of a quarantine entry (`quarantine/part-*.jsonl.gz` of every data stage)."""

    REASON = "reason"
    """The kind of bad record: a `BadRecord`."""
    DETAIL = "detail"
    """One line saying what exactly is wrong (the JSON error and its column, the offending byte...)."""
    SOURCE = "source"
    """The file, relative to the input glob."""
    LINE = "line"
    """The line (jsonl), row (parquet) or first line (text document) in that file, from 1."""
    RAW = "raw"
    """The raw unit as text, when it is valid UTF-8."""
    RAW_B64 = "raw_b64"
    """The raw unit base64-encoded, when it is not valid UTF-8."""


# ---------------------------------------------------------------- outcomes


class Outcome(Names):
    """Where a record ends in a stage; the manifest's `counts` has one entry per outcome."""

    KEPT = "kept"
    """Passed every check and went on (clean and dedup's kept/)."""
    REJECTED = "rejected"
    """Parsed, but refused by a junk rule, a fixed web rule or the outlier filter (clean's rejected/, with its reason)."""
    QUARANTINED = "quarantined"
    """Could not become a usable record; written with its `BadRecord` reason to quarantine/."""
    DROPPED = "dropped"
    """A bad record whose policy is `drop`: counted by reason, not written."""
    REMOVED = "removed"
    """A duplicate (dedup's removed/, with its `DupKind`)."""
    TRAIN = "train"
    """A document the tokenizer trains on, or that pack writes to its train split."""
    HELDOUT = "heldout"
    """A document the tokenizer holds out to measure compression."""
    VAL = "val"
    """A document pack writes to its validation split."""


class EvalOutcome(Names):
    """The outcome of a labelled document in the clean stage's evaluation against planted labels."""

    KEPT = Outcome.KEPT
    """Written to kept/."""
    REJECTED = Outcome.REJECTED
    """Written to rejected/."""
    QUARANTINED_OR_ABSENT = "quarantined_or_absent"
    """Not among the scored records: quarantined, dropped, or not in the input."""


# ---------------------------------------------------------------- quarantine kinds


class BadRecord(Names):
    """Kinds of bad input: each has a policy (`bad_records.per_kind`: quarantine, drop or fail)."""

    BLANK_LINE = "blank_line"
    """A jsonl line holding nothing but whitespace."""
    INVALID_UTF8 = "invalid_utf8"
    """Bytes that are not UTF-8."""
    INVALID_JSON = "invalid_json"
    """A jsonl line that is not JSON (or nested too deeply, or a number Python cannot convert)."""
    INVALID_UNICODE = "invalid_unicode"
    """JSON holding an unpaired surrogate escape (\\ud800-\\udfff), which no UTF-8 file can hold."""
    NOT_AN_OBJECT = "not_an_object"
    """JSON that is not an object (a list, a number, a string)."""
    MISSING_TEXT = "missing_text"
    """An object without the text field."""
    NULL_TEXT = "null_text"
    """The text field is null."""
    NON_STRING_TEXT = "non_string_text"
    """The text field is not a string."""
    EMPTY_TEXT = "empty_text"
    """The text field (or a text file) is empty."""
    WHITESPACE_TEXT = "whitespace_text"
    """The text is whitespace only."""
    INVALID_ID = "invalid_id"
    """The id field is not a string or integer, or is blank."""
    DUPLICATE_ID = "duplicate_id"
    """A second record with an id already seen (the first by file and line is kept)."""
    EMPTY_AFTER_NORMALIZATION = "empty_after_normalization"
    """No visible character left after normalization (only controls, zero-width or bidi marks)."""
    UNREADABLE_FILE = "unreadable_file"
    """The rest of a file that broke off (corrupt compression, an unreadable parquet footer)."""


# ---------------------------------------------------------------- reject reasons (clean)


class Junk(Names):
    """The junk rules' reject reasons (`llmdata.junk.junk_reason`)."""

    MOJIBAKE = "junk:mojibake"
    """UTF-8 decoded as Latin-1/cp1252 (ftfy's badness on a large share of the text)."""
    RANDOM_CHARS = "junk:random_chars"
    """Han/kana drawn at random: a high share of rare characters."""
    RANDOM_LETTERS = "junk:random_letters"
    """Letters drawn at random: each letter tells little about the next (letter dependence)."""


class RuleSet(Names):
    """The fixed web-text rule sets (`llmdata.quality.RULES`); each is the prefix of its reasons."""

    C4 = "c4"
    """C4's line filters (Raffel et al. 2020)."""
    GOPHER_REPETITION = "gopher_repetition"
    """Gopher's repetition rules (Rae et al. 2021, appendix A)."""
    GOPHER_QUALITY = "gopher_quality"
    """Gopher's quality rules (Rae et al. 2021, appendix A)."""
    FINEWEB = "fineweb"
    """FineWeb's rules (Penedo et al. 2024)."""


class C4Check(Names):
    """C4's checks: a reason `c4:<check>`."""

    LOREM_IPSUM = "lorem_ipsum"
    """The text holds "lorem ipsum"."""
    CURLY_BRACKET = "curly_bracket"
    """The text holds a "{" (C4 drops code and templates this way)."""
    NO_LINES_LEFT = "no_lines_left"
    """The line filters removed every line."""
    MIN_SENTENCES = "min_sentences"
    """Fewer sentences than `min_sentences` left after the line filters."""


class GopherQualityCheck(Names):
    """Gopher's quality checks: a reason `gopher_quality:<check>`, named for the option it breaks."""

    MIN_WORDS = "min_words"
    """Fewer words than `min_words`."""
    MAX_WORDS = "max_words"
    """More words than `max_words`."""
    MIN_MEAN_WORD_LEN = "min_mean_word_len"
    """Mean word length below `min_mean_word_len`."""
    MAX_MEAN_WORD_LEN = "max_mean_word_len"
    """Mean word length above `max_mean_word_len`."""
    MAX_SYMBOL_WORD_RATIO = "max_symbol_word_ratio"
    """Too many "#" and ellipses per word."""
    MAX_BULLET_LINES_RATIO = "max_bullet_lines_ratio"
    """Too many lines starting with a bullet."""
    MAX_ELLIPSIS_LINES_RATIO = "max_ellipsis_lines_ratio"
    """Too many lines ending with an ellipsis."""
    MIN_ALPHA_WORDS_RATIO = "min_alpha_words_ratio"
    """Too few words holding a letter."""
    MIN_STOP_WORDS = "min_stop_words"
    """Fewer stop words of the document's language than `min_stop_words`."""


class GopherRepetitionCheck(Names):
    """Gopher's repetition checks: a reason `gopher_repetition:<check>`; the n-gram checks are
    `top_<n>gram` and `dup_<n>gram` (`ngram_check`)."""

    MAX_DUP_PARA_FRAC = "max_dup_para_frac"
    """Too many paragraphs repeat an earlier one."""
    MAX_DUP_PARA_CHAR_FRAC = "max_dup_para_char_frac"
    """Too many characters in repeated paragraphs."""
    MAX_DUP_LINE_FRAC = "max_dup_line_frac"
    """Too many lines repeat an earlier one."""
    MAX_DUP_LINE_CHAR_FRAC = "max_dup_line_char_frac"
    """Too many characters in repeated lines."""


class NgramCheck(Names):
    """The two n-gram repetition checks of Gopher; with n they make `top_<n>gram`, `dup_<n>gram`."""

    TOP = "top"
    """The most frequent n-gram covers too large a share of the word characters."""
    DUP = "dup"
    """N-grams that already occurred cover too large a share of the word characters."""


class FineWebCheck(Names):
    """FineWeb's checks: a reason `fineweb:<check>`."""

    LINE_PUNCT_RATIO = "line_punct_ratio"
    """Too few lines end with the script's terminal punctuation."""
    SHORT_LINE_RATIO = "short_line_ratio"
    """Too many short lines."""
    DUP_LINE_CHAR_RATIO = "dup_line_char_ratio"
    """Too many characters in repeated lines."""
    NEWLINE_WORD_RATIO = "newline_word_ratio"
    """Too many newlines per word."""


#: The checks of each rule set (the n-gram checks of gopher_repetition are matched by pattern).
RULE_CHECKS: dict[str, type[Names]] = {
    RuleSet.C4: C4Check,
    RuleSet.GOPHER_REPETITION: GopherRepetitionCheck,
    RuleSet.GOPHER_QUALITY: GopherQualityCheck,
    RuleSet.FINEWEB: FineWebCheck,
}
_NGRAM_CHECK = re.compile(r"(top|dup)_([1-9][0-9]*)gram")


def ngram_check(kind: str, n: int) -> str:
    """The name of a Gopher n-gram check: `top_<n>gram` or `dup_<n>gram` (`kind` an NgramCheck,
    n >= 1); ValueError otherwise."""
    NgramCheck.check(kind)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UnknownReasonError(f"n-gram size must be a positive integer, got {n!r}")
    return f"{kind}_{n}gram"


def _rule_check_known(rule_set: str, check: str) -> bool:
    if check in RULE_CHECKS[rule_set].values():
        return True
    return rule_set == RuleSet.GOPHER_REPETITION and _NGRAM_CHECK.fullmatch(check) is not None


def rule_reason(rule_set: str, check: str) -> str:
    """The reject reason of a fixed rule set's check: `<rule set>:<check>` (`gopher_quality:min_words`).
    Raises UnknownReasonError for a rule set or check this module does not name."""
    RuleSet.check(rule_set)
    if not _rule_check_known(rule_set, check):
        raise UnknownReasonError(f"unknown {rule_set} check {check!r} (known: {', '.join(RULE_CHECKS[rule_set].values())})")
    return f"{rule_set}:{check}"


class OutlierSide(Names):
    """Which end of its interval a feature fell outside of (outlier reasons)."""

    LOW = "low"
    """Below the lower threshold."""
    HIGH = "high"
    """Above the upper threshold."""


OUTLIER = "outlier"
"""The prefix of the outlier filter's reasons: `outlier:<feature>:<low|high>`."""


def outlier_reason(feature: str, side: str) -> str:
    """The outlier filter's reject reason: `outlier:<feature>:<low|high>` (`outlier:n_chars:high`).
    `feature` is a document feature name (no ':'); raises UnknownReasonError otherwise."""
    OutlierSide.check(side)
    if not feature or ":" in feature:
        raise UnknownReasonError(f"not a feature name: {feature!r}")
    return f"{OUTLIER}:{feature}:{side}"


# ---------------------------------------------------------------- dedup


class DupKind(Names):
    """Why dedup removed a record (its `dup_kind`, the manifest's `removed.by_reason`)."""

    EXACT = "exact"
    """The same text (after the exact key's normalization) as the cluster's keeper."""
    NEAR = "near"
    """MinHash near duplicate: Jaccard similarity of shingle sets at or above the threshold."""
    LINES = "lines"
    """Line-level dedup removed every line: each was repeated in a document with a smaller id."""


class ShingleUnit(Names):
    """How near dedup shingled a document that is too short to shingle (besides `word<n>`, `char<n>`)."""

    TOO_SHORT = "too_short"
    """Fewer shingles than near dedup needs: the document is matched only exactly."""


# ---------------------------------------------------------------- missing values


class ImputeAction(Names):
    """What the clean stage's imputation plan does with a numeric meta field (`llmdata.missing`)."""

    DROP = "drop"
    """Drop the field from every record (missing too often, or not numeric)."""
    KEEP = "keep"
    """Keep the field as it is: no record misses it."""
    IMPUTE = "impute"
    """Fill its missing values by the field's rule (mean, median, constant, interpolate, regression)."""


# ---------------------------------------------------------------- alignment rows


class BadRowKind(Names):
    """Kinds of unusable alignment (SFT, preference) rows; each BadRow reason starts with its kind."""

    INVALID_UTF8 = "invalid UTF-8"
    """The line is not UTF-8."""
    INVALID_JSON = "invalid JSON"
    """The line is not JSON."""
    NOT_AN_OBJECT = "not an object"
    """The line is JSON but not an object."""
    INVALID_UNICODE = "invalid Unicode"
    """A string of the line escapes a lone surrogate (\ud800-\udfff): no UTF-8 writer can write it."""
    UNREADABLE_FILE = "unreadable file"
    """The file breaks off (a truncated or corrupt .gz / .bz2 stream): the rest of it is one bad row."""


def bad_row_reason(kind: str, detail: str) -> str:
    """The reason of a BadRow (`llmdata.chat`) of kind `kind` (a BadRowKind):
    invalid UTF-8 -> "invalid UTF-8 at byte <detail>", invalid JSON and invalid Unicode ->
    "<kind>: <detail>" (unreadable file too), not an object -> "a JSON <detail>, not an object" (detail: the JSON type's
    Python name).
    A row in the wrong format carries the ValueError message of `chat.to_conversation` instead."""
    BadRowKind.check(kind)
    if kind == BadRowKind.INVALID_UTF8:
        return f"{kind} at byte {detail}"
    if kind in (BadRowKind.INVALID_JSON, BadRowKind.INVALID_UNICODE, BadRowKind.UNREADABLE_FILE):
        return f"{kind}: {detail}"
    return f"a JSON {detail}, not an object"


# ---------------------------------------------------------------- parsing


class Reason(NamedTuple):
    """A stage reason split into its parts: `family` (bad_record, junk, outlier, a RuleSet, dup),
    `name` (the kind, check or feature) and `detail` (the outlier side, else "")."""

    family: str
    name: str
    detail: str = ""


def parse_reason(reason: str) -> Reason:
    """Split a reason a data stage writes (a quarantine entry's or rejected record's `reason`, a
    removed record's `dup_kind`, a key of a manifest's `by_reason`) into a Reason.

    Raises UnknownReasonError for a reason no function or group of this module makes.
    """
    if not isinstance(reason, str):
        raise UnknownReasonError(f"a reason is a string, got {type(reason).__name__}")
    if reason in BadRecord.values():
        return Reason("bad_record", reason)
    if reason in Junk.values():
        return Reason("junk", reason.split(":", 1)[1])
    if reason in DupKind.values():
        return Reason("dup", reason)
    head, _, rest = reason.partition(":")
    if head == OUTLIER:
        feature, _, side = rest.rpartition(":")
        if feature and ":" not in feature and side in OutlierSide.values():
            return Reason(OUTLIER, feature, side)
    elif head in RuleSet.values() and _rule_check_known(head, rest):
        return Reason(head, rest)
    raise UnknownReasonError(f"unknown reason {reason!r}: not a name of llmdata.reasons")
