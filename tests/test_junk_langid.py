"""Junk scores, language labels and per-script word features on text written by hand, with the
junk made the way the reported cases were (random CJK lines, UTF-8 read as Latin-1/cp1252)."""
import random
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.features import document_features
from llmdata.junk import char_entropy, common_cjk, junk_reason, junk_scores, mojibake_score, rare_char_ratio
from llmdata.langid import code_line_share, identify, sample

GOOD = {
    "en": "The library opens at nine on weekdays and at ten on Saturdays. Members may borrow up to twelve books at a time.",
    "zh": "今天早上下了一场大雨，街道上到处都是积水。很多人只好穿着雨靴去上班，公交车也比平时来得晚一些。",
    "zh_tw": "這座古橋建於明代，全部用石頭砌成。幾百年來經歷了多次洪水，至今仍然可以通行，是當地人最喜歡的散步地點。",
    "ja": "駅の近くに新しいパン屋さんができました。朝早くから焼きたてのパンが買えるので、いつも人がたくさん並んでいます。",
    "ko": "이 도서관은 평일 아침 아홉 시에 문을 엽니다. 한 번에 열 권까지 빌릴 수 있고 인터넷으로 대출 기간을 연장할 수도 있습니다.",
    "ru": "Библиотека открывается в девять часов утра по будним дням. Читатели могут взять до двенадцати книг.",
    "ar": "تفتح المكتبة أبوابها في الساعة التاسعة صباحا أيام الأسبوع. يمكن للأعضاء استعارة اثني عشر كتابا في المرة الواحدة.",
    "th": "ห้องสมุดเปิดเวลาเก้าโมงเช้าในวันธรรมดา สมาชิกสามารถยืมหนังสือได้ครั้งละสิบสองเล่ม และต่ออายุการยืมทางอินเทอร์เน็ตได้",
    "fr": "Ça va ? L'été dernier, nous sommes allés à Zürich — « très » bien, et le café était naïf.",
}


def random_cjk_lines(seed: int, lines: int = 5) -> str:
    rng = random.Random(seed)
    return "\n".join("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(20, 80))) + "。"
                     for _ in range(lines))


def test_good_text_of_every_script_is_not_junk():
    for lang, text in GOOD.items():
        scores = junk_scores(text, text)
        assert scores["rare_char_ratio"] == 0.0 and scores["mojibake_ratio"] == 0.0, lang
        assert junk_reason(scores) is None, lang


def test_random_cjk_in_lines_is_random_chars_whatever_the_line_breaks():
    for seed in range(20):
        for text in (random_cjk_lines(seed), random_cjk_lines(seed).replace("\n", "")):
            scores = junk_scores(text, text)
            assert scores["rare_char_ratio"] > 0.5
            assert junk_reason(scores) == "junk:random_chars"
    rng = random.Random(0)
    hangul = " ".join("".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(rng.randint(2, 5))) for _ in range(40))
    assert junk_reason(junk_scores(hangul, hangul)) == "junk:random_chars"
    # Too few ideographs to judge: a short name in an English text is not junk.
    assert junk_reason(junk_scores("Ask 龘靐齉 for the key.", "Ask 龘靐齉 for the key.")) is None


def test_common_sets_hold_daily_characters():
    common = common_cjk()
    assert {"的", "是", "這", "語", "駅", "한", "국"} <= common and "龘" not in common
    text = GOOD["zh"] + GOOD["zh_tw"] + GOOD["ja"] + GOOD["ko"]
    n_cjk = sum(1 for c in text if unicodedata.name(c, "").startswith(("CJK UNIFIED", "HANGUL SYLLABLE")))
    assert rare_char_ratio(text) == (0.0, n_cjk)


def test_mojibake_of_chinese_and_japanese_is_caught():
    for lang in ("zh", "ja", "ko", "ru"):
        for codec in ("latin-1", "cp1252"):
            broken = GOOD[lang].encode("utf-8").decode(codec, errors="replace")
            scores = junk_scores(broken, broken)
            assert junk_reason(scores) == "junk:mojibake", (lang, codec, scores)
    # A few accented words read with the wrong codec inside a long ASCII text are still mojibake.
    mostly_ascii = ("plain ascii words " * 40) + "caf\u00c3\u00a9 na\u00c3\u00afve r\u00c3\u00a9sum\u00c3\u00a9 \u00c3\u00a9t\u00c3\u00a9 \u00c3\u00a0 la"
    assert junk_reason(junk_scores(mostly_ascii, mostly_ascii)) == "junk:mojibake"
    assert mojibake_score("pure ascii") == (0.0, 0)


def test_char_entropy_separates_random_letters_from_prose():
    rng = random.Random(1)
    for alphabet, prose in (("abcdefghijklmnopqrstuvwxyz", GOOD["en"] * 5),
                            ("абвгдежзийклмнопрстуфхцчшщъыьэюя", GOOD["ru"] * 5)):
        words = []
        while sum(map(len, words)) < 600:
            words.append("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9))))
        assert char_entropy(" ".join(words)) > 3.3 > 3.0 > char_entropy(prose)
    assert char_entropy("short") == 0.0


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)  # the first call loads the language model
def test_scores_are_finite_for_any_text(text):
    scores = junk_scores(text, text)
    assert all(0.0 <= v < float("inf") for v in scores.values())
    assert 0.0 <= scores["rare_char_ratio"] <= 1.0
    lang, p = identify(text)
    assert isinstance(lang, str) and 0.0 <= p <= 1.0


def test_language_labels_of_hand_written_paragraphs():
    for lang, text in GOOD.items():
        got, p = identify(text)
        assert got == lang.split("_")[0] and p > 0.5, (lang, got, p)
    assert identify("12345 !!! ---") == ("und", 0.0)


def test_code_is_labelled_code_and_prose_with_commas_is_not():
    code = "def parse(path):\n    with open(path) as f:\n        data = json.load(f)\n    return data\n"
    c_src = "int main(void) {\n    int total = 0;\n    printf(\"%d\\n\", total);\n    return 0;\n}\n"
    assert identify(code)[0] == "code" and identify(c_src)[0] == "code"
    wrapped = ("We walked along the river, past the mill,\nand over the old stone bridge (built in 1820),\n"
               "until the path turned north, into the woods,\nwhere the birds were singing.\n")
    assert code_line_share(wrapped) == 0.0 and identify(wrapped)[0] == "en"
    assert code_line_share("x = 1") == 0.0  # fewer than three lines: no call


def test_sample_is_bounded_start_and_middle():
    text = "a" * 5000 + "b" * 5000
    s = sample(text, 1000)
    assert len(s) == 1001 and s.startswith("a" * 500) and s.endswith("b" * 500)
    assert sample("short") == "short"


def test_word_features_mean_the_same_in_every_script():
    # A Chinese or Japanese word is a character; a Thai word comes from the newmm segmenter.
    zh = document_features(GOOD["zh"])
    assert zh["mean_word_len"] == 1.0 and zh["n_words"] == sum(1 for c in GOOD["zh"] if c.isalpha())
    ja = document_features(GOOD["ja"])
    assert 1.0 <= ja["mean_word_len"] < 1.1
    th = document_features(GOOD["th"])
    assert 2.0 < th["mean_word_len"] < 6.0 and th["n_words"] > 15
    en = document_features(GOOD["en"])
    assert 3.5 < en["mean_word_len"] < 5.5
