"""The prompt blocklist: normalisation in English and Russian, whole-word matching, the shipped file.

Most cases use neutral words in a test blocklist file, so the normalisation is shown on words anyone
can read; the shipped list is checked for loading and for passing ordinary prompts.
"""

from pathlib import Path

import pytest

from prompting.safety import DEFAULT_BLOCKLIST, TextFilter, load_blocklist, normalised_forms

TEST_BLOCKLIST = """\
# neutral stand-ins for abusive words
banana
grass
apple*
red panda
арбуз
кот
огур*
синий кит
"""


@pytest.fixture(scope="module")
def text_filter(tmp_path_factory) -> TextFilter:
    path = tmp_path_factory.mktemp("blocklist") / "blocklist.txt"
    path.write_text(TEST_BLOCKLIST, encoding="utf-8")
    return TextFilter.from_file(path)


def test_file_format(text_filter):
    assert text_filter.entries == ["banana", "grass", "apple*", "red panda", "арбуз", "кот", "огур*", "синий кит"]


@pytest.mark.parametrize(
    ("prompt", "entry"),
    [
        # plain, case
        ("a banana on a table", "banana"),
        ("A BANANA on a table", "banana"),
        ("Banana!", "banana"),
        ("(banana)", "banana"),
        # separators inside a word and between spelled-out letters
        ("b.a.n.a.n.a", "banana"),
        ("b-a-n-a-n-a split", "banana"),
        ("a b a n a n a", None),  # the article runs into the spelled word: "abanana" is not an entry
        ("the b a n a n a is ripe", "banana"),
        ("ban_ana", "banana"),
        ("ban\u200bana", "banana"),  # zero-width space
        ("b🍌a🍌n🍌a🍌n🍌a", "banana"),
        # repeated letters
        ("baaaanaaaana", "banana"),
        ("bbaannaannaa", "banana"),
        ("graaaassss", "grass"),
        # leetspeak digits
        ("b4n4n4", "banana"),
        ("6r4$$", None),  # "6" is not a Latin leet letter (it is Cyrillic "б")
        ("gr@ss", "grass"),
        ("gr4ss", "grass"),
        # Cyrillic look-alikes inside an English word
        ("bаnаnа", "banana"),  # Cyrillic а
        ("grаss", "grass"),
        # full-width and accented letters
        ("ｂａｎａｎａ", "banana"),
        ("bänäna", "banana"),
        # prefix entries
        ("applesauce", "apple*"),
        ("APPLES", "apple*"),
        # phrases, across separators and spaces
        ("a red panda eating", "red panda"),
        ("a red-panda", "red panda"),
        ("RED  PANDA", "red panda"),
        ("red pаndа", "red panda"),
        # Russian: case, look-alikes both ways, leetspeak, separators, repeats, ё/е
        ("большой арбуз", "арбуз"),
        ("АРБУЗ", "арбуз"),
        ("apбуз", "арбуз"),  # Latin a and p
        ("ap6y3", "арбуз"),  # Latin a, p, y; digits read as Cyrillic б and з
        ("а.р.б.у.з", "арбуз"),
        ("а р б у з", "арбуз"),
        ("арррбууузз", "арбуз"),
        ("kot", "кот"),  # all three letters Latin look-alikes
        ("к0т", "кот"),
        ("КОТ", "кот"),
        ("огурец", "огур*"),
        ("огурцы", "огур*"),
        ("синий-кит", "синий кит"),
        ("СИНИЙ КИТ", "синий кит"),
    ],
)
def test_blocked_after_normalisation(text_filter, prompt, entry):
    assert text_filter.check(prompt) == entry


@pytest.mark.parametrize(
    "prompt",
    [
        # words that merely contain an entry
        "bananas in a bowl",  # an entry without * is the word itself
        "bananabread",
        "grassland at dawn",
        "seagrass meadow",
        "gras",  # the entry's double letter needs two
        "pineapple",  # a prefix entry matches at the start of a word only
        "crabapple tree",
        "a red pandas",
        "red and panda",
        "арбузный сок",
        "скот на лугу",
        "котёнок",  # ё folded to е, still a different word
        "котлета",
        "кит синий",
        # ordinary prompts
        "a cat in a spacesuit, 4k",
        "собака в скафандре",
        "2024 year 100 cherries",  # digits alone are numbers, not leetspeak
        "",
    ],
)
def test_passes(text_filter, prompt):
    assert text_filter.check(prompt) is None, normalised_forms(prompt)


def test_separators_are_word_boundaries_between_words(text_filter):
    # Between multi-letter pieces a separator is a word boundary: both pieces are words.
    assert text_filter.check("grass-hopper") == "grass"
    assert text_filter.check("grasshopper") is None
    assert text_filter.check("green.grass") == "grass"


def test_empty_blocklist_blocks_nothing():
    assert TextFilter([]).check("banana") is None
    assert TextFilter(["  ", "***"]).entries == []


def test_extra_entries(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("banana\n", encoding="utf-8")
    flt = TextFilter.from_file(path, extra=["cherry"])
    assert flt.check("a cherry") == "cherry"
    assert flt.check("a banana") == "banana"


# -- the shipped blocklist -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> TextFilter:
    return TextFilter.from_file()


def test_shipped_blocklist_loads(shipped):
    entries = load_blocklist(DEFAULT_BLOCKLIST)
    assert Path(DEFAULT_BLOCKLIST).name == "blocklist.txt"
    assert len(shipped) == len(entries) > 50
    assert any("а" <= ch <= "я" for e in entries for ch in e)  # Russian entries
    assert any("a" <= ch <= "z" for e in entries for ch in e)  # English entries


@pytest.mark.parametrize(
    "prompt",
    ["porn", "p.o.r.n", "p0rn", "pоrn", "PORNOGRAPHY", "порно", "пoрнo", "п о р н о", "порнуха"],
)
def test_shipped_blocklist_blocks(shipped, prompt):
    assert shipped.check(prompt) is not None


@pytest.mark.parametrize(
    "prompt",
    [
        "a class of students, the teacher's assistant, a passage",
        "Essex and Sussex countryside, asexual reproduction of plants",
        "a therapist's office, grapes, a scraped knee",
        "a cocktail at a bar, shiitake mushrooms, Scunthorpe town",
        "употреблять в пищу, оскорблять нельзя, застрахуй машину",
        "потребляют, колебания, корабля",
        "рыжая лиса в заснеженном лесу, цифровое искусство",
        "Moby Dick, a naked mole rat, cherry blossom",
    ],
)
def test_shipped_blocklist_passes_ordinary_prompts(shipped, prompt):
    assert shipped.check(prompt) is None


@pytest.mark.parametrize(
    ("prompt", "entry"),
    [
        # Look-alikes from other scripts, read through Unicode's confusables data (issue 14)
        ("bαnαnα", "banana"),  # Greek small alpha
        ("ΒΑΝΑΝΑ", "banana"),  # Greek capitals
        ("ցrass", "grass"),  # Armenian co
        ("a pink ɢʀᴀꜱꜱ field", "grass"),  # small capitals
        ("ʙᴀɴᴀɴᴀ split", "banana"),
        ("ᴀᴘᴘʟᴇ pie", "apple*"),
        ("rеd pαndα", "red panda"),  # Cyrillic е, Greek α
        ("κοτ", "кот"),  # Greek kappa, omicron, tau read as Cyrillic
        ("օгурец", "огур*"),  # Armenian oh in a Russian word
        ("ϲat and a bαnαnα", "banana"),  # lunate sigma (NFKC would make it a sigma)
        # Invisible characters that are letters to Python: the Hangul fillers
        ("banㅤana", "banana"),
        ("ba\u115fna\u1160na", "banana"),
        ("gr\uffa0ass", "grass"),
    ],
)
def test_other_scripts_and_fillers_are_seen_through(text_filter, prompt, entry):
    assert text_filter.check(prompt) == entry


@pytest.mark.parametrize(
    "prompt",
    ["Ελλάδα, the Aegean sea at noon", "Հայաստան, mount Ararat", "café crème, ñandú, straße", "ʜᴇʟʟᴏ ᴡᴏʀʟᴅ"],
)
def test_other_scripts_pass_when_clean(text_filter, prompt):
    assert text_filter.check(prompt) is None


@pytest.mark.parametrize("prompt", ["ㅤ", "\u3164\u3164", "\u200b\u2800", " \u115f\u1160 ", "\ufe0f\u2060"])
def test_invisible_only_prompts_are_empty(prompt):
    from handlers.common import PromptError, validate_prompt

    with pytest.raises(PromptError) as err:
        validate_prompt(prompt)
    assert err.value.code == "prompt-empty"
    with pytest.raises(PromptError):
        validate_prompt("ㅤ🙂ㅤ")  # nothing but an emoji
    assert validate_prompt("ㅤa fox ㅤ") == "ㅤa fox ㅤ".strip()


def test_a_mark_that_normalises_to_a_space_splits_the_word(text_filter):
    # "¨" (U+00A8) is, in compatibility form, a space and a combining diaeresis: two words.
    assert text_filter.check("cat¨banana") == "banana"
    assert text_filter.check("ban¨ana") is None


def test_words_normalised_before_read_the_same_in_any_prompt(text_filter):
    """Normalised words are remembered between prompts; what a word means still depends on its
    neighbours (single letters spelled out), not on the prompt it was first seen in."""
    assert text_filter.check("k o t") == "кот"
    assert text_filter.check("k o") is None
    assert text_filter.check("o t k") is None
    assert text_filter.check("a big k o t here") == "кот"
    assert text_filter.check("a red  panda") == "red panda"
    assert text_filter.check("red pandas") is None


def test_long_words_are_read_each_time_not_kept(text_filter):
    """Hostile prompts of long unbroken runs do not fill memory: only short words are remembered."""
    from prompting import safety

    before = safety._chunk_words.cache_info().currsize
    long_word = "x" * 200 + "banana"
    assert text_filter.check(long_word) is None  # one word: "xxx...banana" is not "banana"
    assert text_filter.check(f"{'y' * 100} banana") == "banana"
    assert safety._chunk_words.cache_info().currsize - before <= 1  # "banana" at most
