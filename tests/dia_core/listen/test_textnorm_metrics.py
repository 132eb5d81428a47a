"""Normalization and word metrics on hand-made transcripts (no audio)."""
from dia_core.listen.metrics import word_metrics
from dia_core.listen.textnorm import words


def test_text_and_transcript_normalize_alike():
    lexicon = {"Caerwyn": "Kair-win"}
    text = "[S1] Chapter 12: the keeper's (laughs) log at Kair-win, 2.5 miles."
    assert words(text, lexicon) == ["chapter", "twelve", "the", "keeper's", "log", "at", "caerwyn",
                                    "two", "point", "five", "miles"]
    assert words("CHAPTER twelve -- the Keeper’s log at kair win two point five miles", lexicon) == \
        words(text, lexicon)


def test_truncation_loop_insertion_and_rate():
    ref = "the lamp turned slowly over the dark water every night of the year".split()
    cut = word_metrics(ref, ref[:6], active_s=3.0)
    assert cut["missing_at_end"] == 7 and cut["hit_ratio"] == round(6 / 13, 4)
    loop = word_metrics(ref, ref[:6] + ["slowly", "over", "the"] * 2 + ref[6:], active_s=6.0)  # said 3 times
    assert loop["repeated_ngrams"] and all("slowly over" in g for g in loop["repeated_ngrams"])
    assert loop["inserted"] == 6
    assert word_metrics(ref, ref, active_s=6.0) | {} == {**word_metrics(ref, ref, active_s=6.0),
                                                        "wer": 0.0, "missing_at_end": 0, "repeated_ngrams": []}
    assert word_metrics(ref, ref, active_s=6.0)["words_per_minute"] == 130.0
    assert word_metrics(ref, [], active_s=1.0)["hit_ratio"] == 0.0
