import pytest

from kdpipe.data.overlap import drop_overlapping, words

pytestmark = pytest.mark.fast  # runs no pipeline


def test_words_ignore_case_and_punctuation_but_keep_contractions():
    assert words("Don't PANIC -- it's 42!") == ("don't", "panic", "it's", "42")


def test_a_sentence_inside_a_held_out_text_is_dropped_whatever_its_case_and_punctuation():
    held = ["He said: to be or not to be, that is the question. Then he left the room."]
    texts = ["To be, or not to be: that is the question!",    # 10 words, 8 of them in a row held out
             "then he left the room",                        # shorter than 8 words, inside a held-out text
             "To be honest, the question is not that hard.",  # the same words, not in that order
             "She left."]                                    # two words, not in a row in the held-out text
    kept, dropped = drop_overlapping(texts, held)
    assert kept == texts[2:] and dropped == 2


def test_seven_shared_words_do_not_make_an_overlap():
    held = ["one two three four five six seven eight nine"]
    assert drop_overlapping(["zero one two three four five six seven"], held) == (
        ["zero one two three four five six seven"], 0)
    assert drop_overlapping(["zero one two three four five six seven eight"], held) == ([], 1)


def test_nothing_held_out_keeps_everything_in_order():
    texts = ["b text", "a text", ""]
    assert drop_overlapping(texts, []) == (texts, 0)
